#pragma once
// Data-parallel runs of the training commands under mpirun (train/mpi.h): MPI is started and
// ended here, in the CLI, never in the library.
//
//   return RunDataParallel([&](DataParallel& dp) {
//     ... build the Dataset and the Trainer (rank 0 alone reads a checkpoint) ...
//     dp.Attach(trainer, data.Fingerprint());  // sums over the ranks, rank 0's state everywhere
//     ... train; only dp.root() prints and writes files ...
//   });
#include <functional>
#include <memory>

#include "train/trainer.h"

namespace smelt::train {
class MpiReducer;
}

namespace smelt::cli {

// The process's place in a data-parallel run. Started by mpirun (Open MPI's OMPI_COMM_WORLD_SIZE
// or PMI/PMIx variables in the environment), it is one rank of MPI_COMM_WORLD; started on its own
// it never touches MPI and is rank 0 of 1, so a plain run behaves as it always did.
class DataParallel {
 public:
  DataParallel();
  ~DataParallel();
  int rank() const;
  int ranks() const;
  bool root() const { return rank() == 0; }
  // Rank 0's value on every rank (e.g. whether a checkpoint exists to resume from).
  bool Agree(bool root_value) const;
  // Hands the trainer the reducer over all ranks and copies rank 0's trainer state (weights,
  // optimizer, counters) to the others; a single process changes nothing. Throws Error on a
  // rank whose model or data differs from rank 0's.
  void Attach(train::Trainer& t, uint64_t data_fingerprint);

 private:
  std::unique_ptr<train::MpiReducer> mpi_;
};

// Whether this process was started by an MPI launcher.
bool LaunchedByMpirun();

// Runs `body` as one rank: MPI_Init before it (under mpirun), MPI_Finalize after it. When a rank
// fails while others run, it prints its one line ("smelt: rank R: ...") and aborts them all
// (MPI_Abort), so no rank waits forever in a sum and mpirun exits non-zero; a single process lets
// the error go to main's handler as before.
int RunDataParallel(const std::function<int(DataParallel&)>& body);

}  // namespace smelt::cli
