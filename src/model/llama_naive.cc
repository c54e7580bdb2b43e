#include "model/llama_naive.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <string>

#include "core/error.h"
#include "formats/types.h"

namespace smelt {
namespace {

using Matrix = std::vector<double>;  // row-major

// The whole tensor as doubles.
Matrix Load(const Model& m, const std::string& name) {
  std::vector<float> f = DequantizeAll(m.weights.Get(name));
  return Matrix(f.begin(), f.end());
}

// y: (T, OC) = x: (T, C) · Wᵀ with W: (OC, C).
Matrix Linear(const Matrix& x, const Matrix& w, int64_t T, int64_t C, int64_t OC) {
  Matrix y(T * OC, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < OC; ++o) {
      double s = 0.0;
      for (int64_t c = 0; c < C; ++c) s += w[o * C + c] * x[t * C + c];
      y[t * OC + o] = s;
    }
  return y;
}

Matrix Norm(const Matrix& x, const Matrix& w, int64_t T, int64_t C, double eps) {
  Matrix y(T * C);
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += x[t * C + c] * x[t * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    for (int64_t c = 0; c < C; ++c) y[t * C + c] = x[t * C + c] * r * w[c];
  }
  return y;
}

// Frequencies of pair i, as HF's rotary-embedding initializers write them.
std::vector<double> Frequencies(const Model& m) {
  const ModelConfig& c = m.config;
  const int half = c.rope_dim / 2;
  std::vector<double> f(half);
  for (int i = 0; i < half; ++i) f[i] = 1.0 / std::pow((double)c.rope_theta, 2.0 * i / c.rope_dim);
  const RopeScaling& s = c.rope_scaling;
  if (const Tensor* factors = m.weights.Find("rope_freqs.weight")) {
    std::vector<float> r = DequantizeAll(*factors);
    for (int i = 0; i < half; ++i) f[i] /= r[i];
  } else if (s.type == "linear") {
    for (double& v : f) v /= s.factor;
  } else if (s.type == "llama3") {
    const double low_wl = s.original_context / (double)s.low_freq_factor;
    const double high_wl = s.original_context / (double)s.high_freq_factor;
    for (double& v : f) {
      const double wl = 2.0 * std::numbers::pi / v;
      const double scaled = wl > low_wl ? v / s.factor : v;
      const double smooth = (s.original_context / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      const bool medium = !(wl < high_wl) && !(wl > low_wl);
      v = medium ? (1.0 - smooth) * scaled / s.factor + smooth * scaled : scaled;
    }
  } else if (!s.type.empty() && s.type != "none") {
    Fail("{}: rope scaling type '{}' is not supported", m.source, s.type);
  }
  return f;
}

// Rotates `heads` heads of every row of x: (T, heads·head_dim) by position t.
void Rope(Matrix& x, int64_t T, int heads, const ModelConfig& c, const std::vector<double>& freq) {
  const int half = c.rope_dim / 2;
  const bool neox = c.rope_layout == RopeLayout::kNeox;
  for (int64_t t = 0; t < T; ++t)
    for (int h = 0; h < heads; ++h) {
      double* v = &x[(t * heads + h) * c.head_dim];
      for (int i = 0; i < half; ++i) {
        const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const std::complex<double> z = std::complex<double>(v[a], v[b]) * std::polar(1.0, (double)t * freq[i]);
        v[a] = z.real();
        v[b] = z.imag();
      }
    }
}

void AddBias(Matrix& x, const Model& m, const std::string& name, int64_t T, int64_t n) {
  if (!m.weights.Contains(name)) return;
  const Matrix b = Load(m, name);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i) x[t * n + i] += b[i];
}

}  // namespace

std::vector<float> NaiveLlamaLogits(const Model& m, std::span<const int32_t> tokens) {
  const ModelConfig& c = m.config;
  const int64_t T = (int64_t)tokens.size(), C = c.dim, hd = c.head_dim;
  const int64_t V = c.vocab;
  const std::vector<double> freq = Frequencies(m);

  const Matrix embd = Load(m, "token_embd.weight");
  Matrix x(T * C);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) x[t * C + i] = embd[tokens[t] * C + i];

  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [&](const char* suffix) { return BlockTensorName(l, suffix); };
    const BlockShape b = c.block(l);
    const int64_t Q = b.q_dim, KV = b.kv_dim;
    Matrix h = Norm(x, Load(m, name("attn_norm.weight")), T, C, c.norm_eps);
    Matrix q = Linear(h, Load(m, name("attn_q.weight")), T, C, Q);
    Matrix k = Linear(h, Load(m, name("attn_k.weight")), T, C, KV);
    Matrix v = Linear(h, Load(m, name("attn_v.weight")), T, C, KV);
    AddBias(q, m, name("attn_q.bias"), T, Q);
    AddBias(k, m, name("attn_k.bias"), T, KV);
    AddBias(v, m, name("attn_v.bias"), T, KV);
    Rope(q, T, b.n_heads, c, freq);
    Rope(k, T, b.n_kv_heads, c, freq);

    Matrix att(T * Q, 0.0);
    for (int head = 0; head < b.n_heads; ++head) {
      const int64_t kvh = head * b.n_kv_heads / b.n_heads;
      // scores: (T, T), -inf above the diagonal (a query never sees later keys).
      Matrix s(T * T, -std::numeric_limits<double>::infinity());
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double d = 0.0;
          for (int64_t e = 0; e < hd; ++e) d += q[i * Q + head * hd + e] * k[j * KV + kvh * hd + e];
          s[i * T + j] = d / std::sqrt((double)hd);
        }
      for (int64_t i = 0; i < T; ++i) {
        double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
        for (int64_t j = 0; j < T; ++j) mx = std::max(mx, s[i * T + j]);
        for (int64_t j = 0; j < T; ++j) sum += (s[i * T + j] = std::exp(s[i * T + j] - mx));
        for (int64_t j = 0; j < T; ++j)
          for (int64_t e = 0; e < hd; ++e) att[i * Q + head * hd + e] += s[i * T + j] / sum * v[j * KV + kvh * hd + e];
      }
    }
    const Matrix o = Linear(att, Load(m, name("attn_output.weight")), T, Q, C);
    for (int64_t i = 0; i < T * C; ++i) x[i] += o[i];

    h = Norm(x, Load(m, name("ffn_norm.weight")), T, C, c.norm_eps);
    const int64_t F = b.ff;
    Matrix g = Linear(h, Load(m, name("ffn_gate.weight")), T, C, F);
    const Matrix u = Linear(h, Load(m, name("ffn_up.weight")), T, C, F);
    for (int64_t i = 0; i < T * F; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    const Matrix d = Linear(g, Load(m, name("ffn_down.weight")), T, F, C);
    for (int64_t i = 0; i < T * C; ++i) x[i] += d[i];
  }
  const Matrix h = Norm(x, Load(m, "output_norm.weight"), T, C, c.norm_eps);
  const Matrix logits =
      Linear(h, Load(m, m.weights.Contains("output.weight") ? "output.weight" : "token_embd.weight"), T, C, V);
  return std::vector<float>(logits.begin(), logits.end());
}

}  // namespace smelt
