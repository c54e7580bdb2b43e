#include "model/llama_staged.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "formats/types.h"
#include "kernels/blas.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/rope.h"
#include "model/llama.h"

namespace smelt {
namespace {

// y: (T, OC), row stride ldy = x: (T, C) · Wᵀ, W: (OC, C) row-major.
void Gemm(const float* x, int64_t T, int64_t C, const std::vector<float>& w, int64_t OC, float* y, int64_t ldy) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)OC, (int)C, 1.0f, x, (int)C, w.data(), (int)C,
              0.0f, y, (int)ldy);
}

std::vector<float> Read(const Model& m, const std::string& name) { return DequantizeAll(m.weights.Get(name)); }

// Causal GQA attention of one sequence at positions 0..T-1: q (T, Q), k and v (T, KV) -> att
// (T, Q). Per head, S = scale · Q_h K_hᵀ (T, T), row t softmaxed over keys 0..t and zero past
// them, then att_h = S · V_h. scores: scratch of T·T floats.
void CausalAttention(const ModelConfig& c, const BlockShape& b, const float* q, const float* k, const float* v,
                     int64_t T, float* att, float* scores) {
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  const int64_t Q = b.q_dim, KV = b.kv_dim;
  const float scale = 1.0f / std::sqrt((float)hd);
  for (int head = 0; head < b.n_heads; ++head) {
    const int64_t kv_head = head / group;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, hd, scale, q + head * hd, (int)Q,
                k + kv_head * hd, (int)KV, 0.0f, scores, (int)T);
    for (int64_t t = 0; t < T; ++t) {
      Softmax(scores + t * T, t + 1);
      std::fill(scores + t * T + t + 1, scores + (t + 1) * T, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, hd, (int)T, 1.0f, scores, (int)T,
                v + kv_head * hd, (int)KV, 0.0f, att + head * hd, (int)Q);
  }
}

}  // namespace

void RunStaged(const Model& model, const std::vector<std::vector<int32_t>>& sequences, StagedObserver& observer,
               const StagedOptions& opt) {
  const ModelConfig& c = model.config;
  // The reference pass's checks (names, shapes, types) and its RoPE frequencies.
  const std::vector<float> inv_freq = LlamaForward(model, Activations::kExact).rope_inv_freq();
  if (opt.threads < 1) Fail("{}: threads {} must be >= 1", model.source, opt.threads);
  const int64_t C = c.dim, Q_max = c.q_dim(), KV_max = c.kv_dim(), F_max = c.ff;
  const int hd = c.head_dim, n_pairs = c.rope_dim / 2;
  const bool neox = c.rope_layout == RopeLayout::kNeox;
  const float eps = c.norm_eps;
  BlasThreads blas_threads(1);

  const size_t N = sequences.size();
  std::vector<int64_t> offset(N + 1, 0);  // sequence i's rows: offset[i] .. offset[i+1]
  int64_t max_t = 0;
  for (size_t i = 0; i < N; ++i) {
    const int64_t T = (int64_t)sequences[i].size();
    if (T == 0) Fail("{}: calibration sequence {} is empty", model.source, i);
    for (int32_t id : sequences[i])
      if (id < 0 || id >= c.vocab) Fail("{}: token id {} outside the vocabulary of {}", model.source, id, c.vocab);
    offset[i + 1] = offset[i] + T;
    max_t = std::max(max_t, T);
  }
  const int64_t rows = offset[N];

  std::vector<float> cos(max_t * n_pairs), sin(max_t * n_pairs);
  for (int64_t t = 0; t < max_t; ++t) RopeAngles(t, inv_freq.data(), n_pairs, &cos[t * n_pairs], &sin[t * n_pairs]);

  std::vector<float> x(rows * C);  // the residual stream of every sequence
  {
    const Tensor& embd = model.weights.Get("token_embd.weight");
    for (size_t i = 0; i < N; ++i)
      for (size_t t = 0; t < sequences[i].size(); ++t) ReadRowF32(embd, sequences[i][t], &x[(offset[i] + t) * C]);
  }
  // Sequences are independent: `threads` workers each take whole sequences, with their own
  // scratch and single-threaded GEMMs (no BLAS threads spinning beside the team).
  const int threads = (int)std::max<int64_t>(1, std::min<int64_t>(opt.threads, (int64_t)N));
  struct Scratch {
    std::vector<float> h, q, k, v, u, scores;
  };
  std::vector<Scratch> scratch(threads);
  for (Scratch& w : scratch) {
    w.h.resize(max_t * C), w.q.resize(max_t * Q_max), w.k.resize(max_t * KV_max), w.v.resize(max_t * KV_max);
    w.u.resize(max_t * F_max), w.scores.resize(max_t * max_t);
  }
  auto for_each_sequence = [&](const auto& fn) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (size_t i = 0; i < N; ++i) {
      int slot = 0;
#ifdef _OPENMP
      slot = omp_get_thread_num();
#endif
      fn(i, slot, scratch[slot]);
    }
  };
  // h = rmsnorm(rows of sequence i) · w
  auto norm_rows = [&](size_t i, const std::vector<float>& w, float* h) {
    for (int64_t t = offset[i]; t < offset[i + 1]; ++t) RmsNorm(&h[(t - offset[i]) * C], &x[t * C], w.data(), C, eps);
  };
  auto rows_of = [&](size_t i) { return offset[i + 1] - offset[i]; };
  auto vector_or_empty = [&](const std::string& name) {
    const Tensor* t = model.weights.Find(name);
    return t ? DequantizeAll(*t) : std::vector<float>{};
  };

  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* suffix) { return BlockTensorName(l, suffix); };
    const std::array<std::string, 3> qkv{name("attn_q.weight"), name("attn_k.weight"), name("attn_v.weight")};
    const std::array<std::string, 1> o{name("attn_output.weight")};
    const std::array<std::string, 2> gate_up{name("ffn_gate.weight"), name("ffn_up.weight")};
    const std::array<std::string, 1> down{name("ffn_down.weight")};

    // 1. the attention input
    std::vector<float> norm_w = Read(model, name("attn_norm.weight"));
    for_each_sequence([&](size_t i, int slot, Scratch& w) {
      norm_rows(i, norm_w, w.h.data());
      observer.OnGroupInput(slot, l, qkv, w.h.data(), rows_of(i), C);
    });
    observer.OnGroupDone(l, qkv);

    // 2. attention with the (possibly replaced) q, k, v projections
    const BlockShape shape = c.block(l);
    const int64_t Q = shape.q_dim, KV = shape.kv_dim;
    std::vector<float> att(rows * Q);
    {
      const std::vector<float> wq = Read(model, qkv[0]), wk = Read(model, qkv[1]), wv = Read(model, qkv[2]);
      const std::vector<float> bq = vector_or_empty(name("attn_q.bias")), bk = vector_or_empty(name("attn_k.bias")),
                               bv = vector_or_empty(name("attn_v.bias"));
      for_each_sequence([&](size_t i, int slot, Scratch& w) {
        const int64_t T = rows_of(i);
        float *h = w.h.data(), *q = w.q.data(), *k = w.k.data(), *v = w.v.data();
        norm_rows(i, norm_w, h);
        Gemm(h, T, C, wq, Q, q, Q);
        Gemm(h, T, C, wk, KV, k, KV);
        Gemm(h, T, C, wv, KV, v, KV);
        for (int64_t t = 0; t < T; ++t) {
          if (!bq.empty()) AddInPlace(&q[t * Q], bq.data(), Q);
          if (!bk.empty()) AddInPlace(&k[t * KV], bk.data(), KV);
          if (!bv.empty()) AddInPlace(&v[t * KV], bv.data(), KV);
          ApplyRope(&q[t * Q], shape.n_heads, hd, c.rope_dim, &cos[t * n_pairs], &sin[t * n_pairs], neox);
          ApplyRope(&k[t * KV], shape.n_kv_heads, hd, c.rope_dim, &cos[t * n_pairs], &sin[t * n_pairs], neox);
        }
        float* att_i = &att[offset[i] * Q];
        CausalAttention(c, shape, q, k, v, T, att_i, w.scores.data());
        observer.OnGroupInput(slot, l, o, att_i, T, Q);
      });
    }
    observer.OnGroupDone(l, o);

    // 3. the attention output joins the residual; the FFN input
    norm_w = Read(model, name("ffn_norm.weight"));
    {
      const std::vector<float> wo = Read(model, o[0]);
      for_each_sequence([&](size_t i, int slot, Scratch& w) {
        const int64_t T = rows_of(i);
        Gemm(&att[offset[i] * Q], T, Q, wo, C, w.h.data(), C);
        AddInPlace(&x[offset[i] * C], w.h.data(), T * C);
        norm_rows(i, norm_w, w.h.data());
        observer.OnGroupInput(slot, l, gate_up, w.h.data(), T, C);
      });
    }
    att = {};
    observer.OnGroupDone(l, gate_up);

    // 4. the FFN
    const int64_t F = shape.ff;
    std::vector<float> g(rows * F);
    {
      const std::vector<float> wg = Read(model, gate_up[0]), wu = Read(model, gate_up[1]);
      for_each_sequence([&](size_t i, int slot, Scratch& w) {
        const int64_t T = rows_of(i);
        float* g_i = &g[offset[i] * F];
        norm_rows(i, norm_w, w.h.data());
        Gemm(w.h.data(), T, C, wg, F, g_i, F);
        Gemm(w.h.data(), T, C, wu, F, w.u.data(), F);
        SwiGlu(g_i, g_i, w.u.data(), T * F);
        observer.OnGroupInput(slot, l, down, g_i, T, F);
      });
    }
    observer.OnGroupDone(l, down);
    {
      const std::vector<float> wd = Read(model, down[0]);
      for_each_sequence([&](size_t i, int, Scratch& w) {
        const int64_t T = rows_of(i);
        Gemm(&g[offset[i] * F], T, F, wd, C, w.h.data(), C);
        AddInPlace(&x[offset[i] * C], w.h.data(), T * C);
      });
    }
    if (opt.progress) opt.progress(l + 1, c.n_layers + 1);
  }

  // The head's input.
  const std::array<std::string, 1> head{model.weights.Contains("output.weight") ? "output.weight"
                                                                                 : "token_embd.weight"};
  const std::vector<float> norm_w = Read(model, "output_norm.weight");
  for_each_sequence([&](size_t i, int slot, Scratch& w) {
    norm_rows(i, norm_w, w.h.data());
    observer.OnGroupInput(slot, c.n_layers, head, w.h.data(), rows_of(i), C);
  });
  observer.OnGroupDone(c.n_layers, head);
  if (opt.progress) opt.progress(c.n_layers + 1, c.n_layers + 1);
}

}  // namespace smelt
