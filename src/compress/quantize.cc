#include "compress/quantize.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>

#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"

namespace smelt {
namespace {

// `t` with its data replaced by `bytes` of type `type` (owned by the result).
Tensor FromBytes(const Tensor& t, DType type, std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Tensor out = t;
  out.type = type;
  out.data = buf->data();
  out.nbytes = buf->size();
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  return out;
}

// Encodes tensor t (any readable type) as `type`, row by row over `threads` threads. With
// `importance` (ne[0] values, shared by every row) the weighted encoder is used.
Tensor Encode(const Tensor& t, DType type, const float* importance, int threads) {
  const TypeTraits& tr = Traits(type);
  const int64_t n = t.ne[0], rows = t.nrows();
  const size_t row_bytes = RowBytes(type, n);
  std::vector<uint8_t> buf(row_bytes * (size_t)rows);
#pragma omp parallel num_threads(threads) if (threads > 1 && rows > 1)
  {
    std::vector<float> row(n);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(t, r, row.data());
      uint8_t* dst = buf.data() + r * row_bytes;
      if (importance) {
        tr.from_float_weighted(row.data(), importance, dst, n);
      } else {
        tr.from_float(row.data(), dst, n);
      }
    }
  }
  return FromBytes(t, type, std::move(buf));
}

}  // namespace

std::optional<QuantMethod> ParseQuantMethod(std::string_view name) {
  if (name == "rtn") return QuantMethod::kRtn;
  if (name == "mse") return QuantMethod::kMse;
  if (name == "gptq") return QuantMethod::kGptq;
  return std::nullopt;
}

std::string_view QuantMethodName(QuantMethod m) {
  switch (m) {
    case QuantMethod::kRtn: return "rtn";
    case QuantMethod::kMse: return "mse";
    case QuantMethod::kGptq: return "gptq";
  }
  return "?";
}

std::string QuantizeSummary::Fallbacks() const {
  std::string s;
  for (const TensorChoice& c : tensors)
    if (c.to != c.wanted) s += fmt::format("{}{}={}", s.empty() ? "" : ", ", c.name, DTypeName(c.to));
  return s;
}

Model QuantizeModel(const Model& model, const QuantizeOptions& opt, QuantizeSummary* summary) {
  const auto start = std::chrono::steady_clock::now();
  Model out = model;  // tensors share the input's data until replaced
  QuantizeSummary sum;
  std::vector<const Tensor*> matrices;
  for (const Tensor& t : model.weights.all())
    if (t.n_dims == 2) matrices.push_back(&t);
  int done = 0;
  for (const Tensor* t : matrices) {
    TensorChoice c{t->name, t->type, t->type, t->type, false};
    const TypeRule* rule = MatchTypeRule(opt.rules, t->name);
    if (rule && rule->type) {
      if (!FindTraits((uint32_t)t->type) || !Traits(t->type).to_float)
        Fail("{}: tensor {}: type {} cannot be read to re-quantize", model.source, t->name, (uint32_t)t->type);
      c.wanted = *rule->type;
      c.to = FallbackType(c.wanted, t->ne[0]);
      const TypeTraits& tr = Traits(c.to);
      std::vector<float> importance;
      if (opt.method == QuantMethod::kMse && tr.from_float_weighted) {
        c.weighted = true;
        // Tensors no projection reads (a separate token embedding) have no statistics: plain MSE.
        const InputStats* s = opt.stats ? opt.stats->Find(t->name) : nullptr;
        if (s) {
          if (s->columns != t->ne[0])
            Fail("{}: calibration statistics for {} have {} columns, the tensor {}", model.source, t->name, s->columns,
                 t->ne[0]);
          importance = s->MeanSquare();
          c.importance = true;
        } else {
          importance.assign(t->ne[0], 1.0f);
        }
      }
      if (opt.method == QuantMethod::kGptq && HasCodeAccess(c.to)) {
        if (!opt.stats) Fail("{}: gptq needs calibration data (--calib)", model.source);
        const InputStats* s = opt.stats->Find(t->name);
        if (s && s->hessian.empty()) Fail("{}: gptq needs input Hessians; the statistics have none", model.source);
        if (s && s->columns != t->ne[0])
          Fail("{}: calibration statistics for {} have {} columns, the tensor {}", model.source, t->name, s->columns,
               t->ne[0]);
        if (s) {
          const std::vector<float> w = DequantizeAll(*t);
          GptqOptions g = opt.gptq;
          g.threads = opt.threads;
          GptqResult r = GptqQuantize(w.data(), t->nrows(), t->ne[0], s->hessian.data(), c.to, g);
          c.gptq = true;
          c.gptq_loss = r.proxy_loss;
          out.weights.Set(FromBytes(*t, c.to, std::move(r.data)));
          sum.tensors.push_back(c);
          if (opt.progress) opt.progress(++done, (int)matrices.size());
          continue;
        }
      }
      if (c.to != t->type || c.weighted || tr.quantized)
        out.weights.Set(Encode(*t, c.to, importance.empty() ? nullptr : importance.data(), opt.threads));
    }
    sum.tensors.push_back(c);
    if (opt.progress) opt.progress(++done, (int)matrices.size());
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (summary) *summary = std::move(sum);
  return out;
}

}  // namespace smelt
