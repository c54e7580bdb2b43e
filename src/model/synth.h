#pragma once
// Deterministic random Llama models for speed benchmarks and format tests: the same options
// give the same weights on every machine. The weights are random (N(0, 1/sqrt(fan_in))-like), so
// the text they produce is meaningless; they exist to measure speed and to exercise formats.
#include <cstdint>

#include "model/model.h"

namespace smelt {

struct SynthOptions {
  int dim = 256;
  int layers = 4;
  int heads = 8;
  int kv_heads = 0;  // 0: same as heads
  int ff = 0;        // 0: llama's rule (2/3 * 4 * dim rounded up to a multiple of 32)
  int vocab = 512;
  int context = 2048;
  uint64_t seed = 1;
  bool tied = false;
  // Fraction of each row of the block matrices (attention and feed-forward projections) set to
  // zero, the smallest magnitudes first: an unstructured-sparse model for the sparse formats'
  // benchmarks. 0 (dense) to below 1; the embeddings and the output head stay dense.
  double sparsity = 0.0;
};

// A model with F32 weights and a synthetic SentencePiece-style vocabulary (<unk>, <s>, </s>,
// 256 byte tokens, then generated pieces), so that llama.cpp can load it once written as GGUF.
Model SynthesizeModel(const SynthOptions& opt);

// The vocabulary SynthesizeModel uses, on its own.
Vocab SyntheticVocab(int size);

}  // namespace smelt
