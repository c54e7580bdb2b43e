#include "eval/kld.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/mapped_file.h"
#include "runtime/session.h"

namespace smelt {
namespace {

constexpr char kMagic[8] = {'S', 'M', 'L', 'T', 'L', 'O', 'G', 'P'};
constexpr uint32_t kLogprobFileVersion = 1;
// Log-probs below max - kRange are stored as the floor (their probability is < e^-kRange).
constexpr float kRange = 40.0f;

struct LogitFileHeader {
  char magic[8];
  uint32_t version;
  uint32_t n_vocab;
  uint32_t n_windows;
  uint32_t reserved;
  uint64_t n_positions;
};
static_assert(sizeof(LogitFileHeader) == 32);

// Quantizes a log-prob row to u16 over [lo, 0] (log-probs are <= 0).
void PackRow(std::span<const float> lp, std::vector<uint8_t>& out) {
  float mx = -INFINITY;
  for (float v : lp) mx = std::max(mx, v);
  const float lo = mx - kRange;
  const float step = kRange / 65535.0f;
  size_t at = out.size();
  out.resize(at + 8 + 2 * lp.size());
  std::memcpy(&out[at], &lo, 4);
  std::memcpy(&out[at + 4], &step, 4);
  uint16_t* q = reinterpret_cast<uint16_t*>(&out[at + 8]);
  for (size_t i = 0; i < lp.size(); ++i) {
    float v = std::clamp((lp[i] - lo) / step, 0.0f, 65535.0f);
    uint16_t u = (uint16_t)std::lround(v);
    std::memcpy(q + i, &u, 2);
  }
}

void UnpackRow(const uint8_t* p, std::span<float> lp) {
  float lo, step;
  std::memcpy(&lo, p, 4);
  std::memcpy(&step, p + 4, 4);
  for (size_t i = 0; i < lp.size(); ++i) {
    uint16_t u;
    std::memcpy(&u, p + 8 + 2 * i, 2);
    lp[i] = lo + step * (float)u;
  }
  // Renormalise after quantization so the row is a distribution again.
  double s = 0;
  for (float v : lp) s += std::exp((double)v);
  const float ls = (float)std::log(s);
  for (float& v : lp) v -= ls;
}

struct Accumulator {
  std::vector<double> kld, dp;
  int64_t same = 0;
  double nll_base = 0, nll_model = 0;

  void Add(std::span<const float> lp_base, std::span<const float> lp_model, int32_t next) {
    double k = 0;
    size_t top_b = 0, top_m = 0;
    for (size_t i = 0; i < lp_base.size(); ++i) {
      const double pb = std::exp((double)lp_base[i]);
      k += pb * ((double)lp_base[i] - (double)lp_model[i]);
      if (lp_base[i] > lp_base[top_b]) top_b = i;
      if (lp_model[i] > lp_model[top_m]) top_m = i;
    }
    kld.push_back(std::max(k, 0.0));
    same += top_b == top_m;
    dp.push_back(std::exp((double)lp_model[next]) - std::exp((double)lp_base[next]));
    nll_base -= lp_base[next];
    nll_model -= lp_model[next];
  }

  KldResult Finish() const {
    KldResult r;
    r.n = (int64_t)kld.size();
    if (r.n == 0) Fail("no positions were scored");
    const double n = (double)r.n;
    double s = 0, s2 = 0;
    for (double v : kld) s += v, s2 += v * v;
    r.kld_mean = s / n;
    r.kld_stderr = r.n > 1 ? std::sqrt(std::max(s2 / n - r.kld_mean * r.kld_mean, 0.0) / (n - 1)) : 0;
    r.kld_median = Quantile(kld, 0.5);
    r.kld_p99 = Quantile(kld, 0.99);
    r.kld_p999 = Quantile(kld, 0.999);
    r.kld_max = *std::max_element(kld.begin(), kld.end());
    r.kld_min = *std::min_element(kld.begin(), kld.end());
    r.same_top = (double)same / n;
    r.same_top_stderr = r.n > 1 ? std::sqrt(r.same_top * (1 - r.same_top) / (n - 1)) : 0;
    double d = 0, d2 = 0;
    for (double v : dp) d += v, d2 += v * v;
    r.dp_mean = d / n;
    r.dp_rms = std::sqrt(d2 / n);
    r.dp_p01 = Quantile(dp, 0.01);
    r.dp_p99 = Quantile(dp, 0.99);
    r.ppl_base = std::exp(nll_base / n);
    r.ppl_model = std::exp(nll_model / n);
    r.ln_ppl_ratio = (nll_model - nll_base) / n;
    return r;
  }
};

size_t RowBytes(int n_vocab) { return 8 + 2 * (size_t)n_vocab; }

}  // namespace

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const double pos = q * (double)(v.size() - 1);
  const size_t lo = (size_t)std::floor(pos), hi = std::min(lo + 1, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double a = v[lo];
  const double b = hi == lo ? a : *std::min_element(v.begin() + lo + 1, v.end());
  return a + (b - a) * (pos - (double)lo);
}

KldResult KlDivergence(const Model& model, const Model* base, const std::string& text, const KldOptions& opt) {
  if (!base && opt.base_logits_in.empty()) Fail("KL-divergence needs a base model or a saved base log-prob file");
  int n_tokens = 0;
  std::vector<ScoringWindow> windows = PlanScoring(model, text, opt.ppl, &n_tokens);
  if (windows.empty()) Fail("text has no line long enough to score");
  const int vocab = model.config.vocab;
  if (base && base->config.vocab != vocab)
    Fail("base model has a vocabulary of {}, the model {}: they cannot be compared", base->config.vocab, vocab);

  // Saved base log-probs: check that they were made on the same token windows.
  std::shared_ptr<MappedFile> in;
  const uint8_t* cursor = nullptr;
  const uint8_t* end = nullptr;
  if (!opt.base_logits_in.empty()) {
    const std::string& path = opt.base_logits_in;
    in = MappedFile::Open(path);
    LogitFileHeader h{};
    if (in->size() < sizeof(h)) Fail("{}: too short for a smelt log-prob file", path);
    std::memcpy(&h, in->data(), sizeof(h));
    if (std::memcmp(h.magic, kMagic, 8) != 0) Fail("{}: not a smelt log-prob file (bad magic)", path);
    if (h.version != kLogprobFileVersion) Fail("{}: unsupported log-prob file version {}", path, h.version);
    if ((int)h.n_vocab != vocab) Fail("{}: saved for a vocabulary of {}, the model has {}", path, h.n_vocab, vocab);
    if (h.n_windows != windows.size())
      Fail("{}: saved for {} windows, this text and --ctx give {}", path, h.n_windows, windows.size());
    cursor = in->data() + sizeof(h);
    end = in->data() + in->size();
    for (const auto& w : windows) {
      uint32_t meta[2];
      if ((size_t)(end - cursor) < 8) Fail("{}: truncated", path);
      std::memcpy(meta, cursor, 8);
      cursor += 8;
      if (meta[0] != w.tokens.size() || (int)meta[1] != w.first_scored ||
          (size_t)(end - cursor) < 4 * w.tokens.size() ||
          std::memcmp(cursor, w.tokens.data(), 4 * w.tokens.size()) != 0)
        Fail("{}: saved for a different text or --ctx (token windows differ)", path);
      cursor += 4 * w.tokens.size();
    }
  }

  std::unique_ptr<AtomicFileWriter> out;
  if (!opt.base_logits_out.empty()) {
    if (!base) Fail("--save-base-logits needs --base MODEL");
    out = std::make_unique<AtomicFileWriter>(opt.base_logits_out);
    LogitFileHeader h{};
    std::memcpy(h.magic, kMagic, 8);
    h.version = kLogprobFileVersion;
    h.n_vocab = (uint32_t)vocab;
    h.n_windows = (uint32_t)windows.size();
    for (const auto& w : windows) h.n_positions += w.tokens.size() - 1 - w.first_scored;
    out->Write(&h, sizeof(h));
    for (const auto& w : windows) {
      uint32_t meta[2] = {(uint32_t)w.tokens.size(), (uint32_t)w.first_scored};
      out->Write(meta, 8);
      out->Write(w.tokens.data(), 4 * w.tokens.size());
    }
  }

  int ctx = 0;
  for (const auto& w : windows) ctx = std::max(ctx, (int)w.tokens.size());
  SessionOptions so;
  so.threads = opt.ppl.threads;
  so.context = ctx;
  std::unique_ptr<Session> sb;
  if (base && opt.base_logits_in.empty()) sb = std::make_unique<Session>(*base, so);
  so.kv = opt.ppl.kv;
  so.activations = opt.ppl.activations;
  Session sm(model, so);

  Accumulator acc;
  std::vector<float> lp_b(vocab), lp_m(vocab), base_logits;
  std::vector<uint8_t> packed;
  const size_t row_bytes = RowBytes(vocab);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t wi = 0; wi < windows.size(); ++wi) {
    const auto& w = windows[wi];
    if (sb) {
      sb->Reset();
      auto l = sb->Eval(w.tokens, true);
      base_logits.assign(l.begin(), l.end());
    }
    sm.Reset();
    std::span<const float> logits = sm.Eval(w.tokens, true);
    packed.clear();
    for (int pos = w.first_scored; pos + 1 < (int)w.tokens.size(); ++pos) {
      if (sb) {
        LogSoftmax(std::span<const float>(base_logits).subspan((size_t)pos * vocab, vocab), lp_b);
        if (out) PackRow(lp_b, packed);
      } else {
        if ((size_t)(end - cursor) < row_bytes) Fail("{}: truncated", opt.base_logits_in);
        UnpackRow(cursor, lp_b);
        cursor += row_bytes;
      }
      LogSoftmax(logits.subspan((size_t)pos * vocab, vocab), lp_m);
      acc.Add(lp_b, lp_m, w.tokens[pos + 1]);
    }
    if (out) out->Write(packed.data(), packed.size());
    if (opt.ppl.progress) opt.ppl.progress((int)wi + 1, (int)windows.size());
  }
  if (out) out->Commit();
  KldResult r = acc.Finish();
  r.n_chunks = (int)windows.size();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace smelt
