#pragma once
// llama2.c checkpoints (karpathy/llama2.c run.c / export.py), fp32 only:
//  - "legacy": 7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
//    (negative: separate classifier), seq_len}, then fp32 weights in run.c's order:
//    token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim),
//    wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim),
//    w2 (L, dim, hidden), w3 (L, hidden, dim), rms_final (dim), freq_cis_real and _imag
//    (seq_len * head_size / 2 each, ignored), then wcls (vocab, dim) if not shared.
//  - "version 1": u32 magic 0x616b3432 ("ak42"), i32 version 1, the 7 int32 params, u8
//    shared_classifier, zero padding to 256 bytes; fp32 weights: attention norms (L, dim),
//    ffn norms (L, dim), final norm (dim), tok_embeddings, then wq, wk, wv, wo, w1, w2, w3 for
//    all layers each, then the classifier if not shared.
// Version 2 (int8 groups) is refused. w1 = ffn_gate, w2 = ffn_down, w3 = ffn_up. llama2.c's
// Q/K rows are already in llama.cpp's interleaved RoPE order (RopeLayout::kNormal): no permutation.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "model/model.h"

namespace smelt {

// Loads a checkpoint and its tokenizer .bin (tokenizer engineer's LoadLlama2cVocab). Weights
// are zero-copy views of the mapped checkpoint. Throws Error naming the file.
Model LoadLlama2cModel(const std::string& checkpoint, const std::string& tokenizer_bin);

// Parses a checkpoint image in memory (no vocabulary). Tensors point into `bytes`, kept alive
// by `owner` (may be null if the caller keeps the bytes alive). `source` names it in errors.
Model ParseLlama2cCheckpoint(std::span<const uint8_t> bytes, const std::string& source,
                             std::shared_ptr<const void> owner);

}  // namespace smelt
