#include "data_parallel.h"

#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#include "core/error.h"
#include "train/mpi.h"

namespace smelt::cli {

bool LaunchedByMpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(var)) return true;
  return false;
}

DataParallel::DataParallel() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) mpi_ = std::make_unique<train::MpiReducer>();
}

DataParallel::~DataParallel() = default;

int DataParallel::rank() const { return mpi_ ? mpi_->rank() : 0; }
int DataParallel::ranks() const { return mpi_ ? mpi_->ranks() : 1; }

bool DataParallel::Agree(bool root_value) const { return mpi_ ? mpi_->Broadcast(root_value) : root_value; }

void DataParallel::Attach(train::Trainer& t, uint64_t data_fingerprint) {
  if (!mpi_) return;
  mpi_->SyncFromRoot(t, data_fingerprint);
  t.set_reducer(mpi_.get());
}

int RunDataParallel(const std::function<int(DataParallel&)>& body) {
  if (!LaunchedByMpirun()) {
    DataParallel alone;
    return body(alone);
  }
  int provided = 0;  // only the main thread calls MPI; OpenMP threads never do
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  auto abort_all = [&](const char* what) {
    std::fprintf(stderr, "smelt: rank %d: %s\n", rank, what);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  };
  int rc = 0;
  try {
    DataParallel dp;
    rc = body(dp);
  } catch (const Error& e) {
    if (ranks > 1) return abort_all(e.what());
    MPI_Finalize();
    throw;
  } catch (const std::bad_alloc&) {
    if (ranks > 1) return abort_all("out of memory");
    MPI_Finalize();
    throw;
  }
  MPI_Finalize();
  return rc;
}

}  // namespace smelt::cli
