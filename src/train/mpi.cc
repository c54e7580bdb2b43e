#include "train/mpi.h"

#define OMPI_SKIP_MPICXX 1  // the C API only (the C++ bindings are deprecated)
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "core/error.h"

namespace smelt::train {
namespace {

// Messages are cut into pieces of at most this many elements (MPI counts are int).
constexpr int64_t kChunk = int64_t{1} << 26;

// Sums `n` elements over all ranks into every rank's `data`: reduce to rank 0, broadcast back.
template <typename T>
void SumOverRanks(T* data, int64_t n, MPI_Datatype type, int rank) {
  for (int64_t off = 0; off < n; off += kChunk) {
    const int count = (int)std::min(kChunk, n - off);
    if (rank == 0)
      MPI_Reduce(MPI_IN_PLACE, data + off, count, type, MPI_SUM, 0, MPI_COMM_WORLD);
    else
      MPI_Reduce(data + off, nullptr, count, type, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(data + off, count, type, 0, MPI_COMM_WORLD);
  }
}

template <typename T>
void BroadcastRange(T* data, int64_t n, MPI_Datatype type) {
  for (int64_t off = 0; off < n; off += kChunk)
    MPI_Bcast(data + off, (int)std::min(kChunk, n - off), type, 0, MPI_COMM_WORLD);
}

}  // namespace

MpiReducer::MpiReducer() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) Fail("data-parallel training: MPI is not initialised");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
}

int64_t MpiReducer::SumCount(int64_t local) {
  SumOverRanks(&local, 1, MPI_INT64_T, rank_);
  return local;
}

double MpiReducer::SumValue(double local) {
  SumOverRanks(&local, 1, MPI_DOUBLE, rank_);
  return local;
}

void MpiReducer::SumInPlace(std::span<float> values) {
  SumOverRanks(values.data(), (int64_t)values.size(), MPI_FLOAT, rank_);
}

bool MpiReducer::Broadcast(bool value) const {
  int v = value ? 1 : 0;
  MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return v != 0;
}

void MpiReducer::SyncFromRoot(Trainer& t, uint64_t data_fingerprint) const {
  TrainModel& m = t.model();
  // What the ranks must agree on first, then the state itself.
  int64_t head[5] = {(int64_t)m.params().size(), t.step(), t.micro_batches(), (int64_t)t.losses().size(),
                     (int64_t)data_fingerprint};
  int64_t local[5];
  std::copy(head, head + 5, local);
  MPI_Bcast(head, 5, MPI_INT64_T, 0, MPI_COMM_WORLD);
  if (head[0] != local[0])
    Fail("rank {}: the model has {} parameters, rank 0's has {} (the ranks need the same model flags)", rank_,
         local[0], head[0]);
  if (head[4] != local[4])
    Fail("rank {}: the training data differs from rank 0's (every machine needs the same --data file)", rank_);
  BroadcastRange(m.params().data(), head[0], MPI_FLOAT);
  std::vector<float> adam_m = t.optimizer().m(), adam_v = t.optimizer().v(), losses = t.losses();
  losses.resize(head[3]);
  BroadcastRange(adam_m.data(), head[0], MPI_FLOAT);
  BroadcastRange(adam_v.data(), head[0], MPI_FLOAT);
  BroadcastRange(losses.data(), head[3], MPI_FLOAT);
  if (rank_ != 0) t.Restore(head[1], head[2], std::move(losses), std::move(adam_m), std::move(adam_v));
}

}  // namespace smelt::train
