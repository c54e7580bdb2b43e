#include "train/qat.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compress/quantize.h"
#include "core/error.h"
#include "train/distill.h"
#include "core/half.h"
#include "formats/codes.h"
#include "formats/types.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

// Block formats whose scale is one fp16 at the start of the block and whose grid is d·q.
bool HasLearnableScale(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

// The two lowest and two highest finite values of a codebook grid (lo2/hi2 infinite when it
// has a single value).
struct TableEnds {
  double lo = INFINITY, lo2 = INFINITY, hi = -INFINITY, hi2 = -INFINITY;
};
TableEnds EndsOf(const ElementGrid& g) {
  TableEnds r;
  for (int q = g.qmin; q <= g.qmax; ++q) {
    const double v = GridValue(g, q);
    if (!std::isfinite(v) || v == r.lo || v == r.hi) continue;
    if (v < r.lo) r.lo2 = r.lo, r.lo = v;
    else if (v < r.lo2) r.lo2 = v;
    if (v > r.hi) r.hi2 = r.hi, r.hi = v;
    else if (v > r.hi2) r.hi2 = v;
  }
  return r;
}

bool SameGrid(const ElementGrid& a, const ElementGrid& b) {
  return a.scale == b.scale && a.offset == b.offset && a.qmin == b.qmin && a.qmax == b.qmax && a.table == b.table;
}

// Whether w lies beyond either end of grid g by more than half a step: the value the encoder's
// clamp moved, not merely rounded. Linear grids are tested in code units; a codebook against
// the half gap to its outermost neighbour at each end (`ends`: EndsOf(g), which elements of a
// sub-block share).
bool Clipped(const ElementGrid& g, const TableEnds& ends, float w) {
  if (!(g.scale != 0.0f) || !std::isfinite(g.scale)) return false;
  if (!g.table) {
    const double u = ((double)w - (double)g.offset) / (double)g.scale;
    return u < g.qmin - 0.5 || u > g.qmax + 0.5;
  }
  if (!std::isfinite(ends.lo2)) return false;  // a single value: nothing to clip against
  return w < ends.lo - (ends.lo2 - ends.lo) / 2 || w > ends.hi + (ends.hi - ends.hi2) / 2;
}

// Row buffers aligned for every block struct's fields (to_float reads blocks in place).
struct AlignedRow {
  std::vector<uint64_t> storage;
  uint8_t* Bytes(size_t n) {
    storage.resize((n + 7) / 8);
    return reinterpret_cast<uint8_t*>(storage.data());
  }
};

}  // namespace

FakeQuantizer::FakeQuantizer(const TrainModel& m, std::vector<TypeRule> rules, bool learn_scales)
    : rules_(std::move(rules)) {
  size_t blocks = 0;
  for (const ParamSlice& s : m.slices()) {
    if (s.n_dims != 2) continue;  // norms and biases stay f32, as in QuantizeModel
    const TypeRule* rule = MatchTypeRule(rules_, s.name);
    if (!rule || !rule->type) continue;
    QatMatrix q;
    q.name = s.name;
    q.wanted = *rule->type;
    q.type = FallbackType(q.wanted, s.ne[0]);
    if (q.type == DType::kF32) continue;  // stored as it is trained
    if (!Traits(q.type).from_float || !Traits(q.type).to_float)
      Fail("qat: {}: smelt cannot encode type {}", s.name, DTypeName(q.type));
    q.offset = s.offset;
    q.cols = s.ne[0];
    q.rows = (int64_t)(s.size / (size_t)s.ne[0]);
    q.learned = learn_scales && HasLearnableScale(q.type);
    if (q.learned) {
      q.scale_offset = blocks;
      blocks += (size_t)(q.rows * (q.cols / Traits(q.type).block_size));
    }
    matrices_.push_back(q);
  }
  if (matrices_.empty()) Fail("qat: the rules quantize no matrix of the model");
  // s0: each block's scale as the format's own encoder chooses it for the initial weights.
  s0_.assign(blocks, 0.0f);
  theta_.assign(blocks, 0.0f);
  theta_grad_.assign(blocks, 0.0f);
  AlignedRow buf;
  for (const QatMatrix& q : matrices_) {
    if (!q.learned) continue;
    const TypeTraits& tr = Traits(q.type);
    const int64_t per_row = q.cols / tr.block_size;
    uint8_t* row = buf.Bytes(RowBytes(q.type, q.cols));
    for (int64_t r = 0; r < q.rows; ++r) {
      tr.from_float(m.params().data() + q.offset + r * q.cols, row, q.cols);
      for (int64_t b = 0; b < per_row; ++b) {
        fp16_t d;
        std::memcpy(&d, row + b * tr.type_size, sizeof d);
        s0_[q.scale_offset + r * per_row + b] = Fp16ToFloat(d);
      }
    }
  }
  AdamWOptions adam;
  adam.weight_decay = 0.0f;  // a scale has no reason to shrink
  if (blocks) scale_adam_ = std::make_unique<AdamW>(blocks, adam);
}

void FakeQuantizer::EncodeRow(const QatMatrix& q, int64_t r, const float* w, uint8_t* dst, uint8_t* clip,
                              float* dq) const {
  const TypeTraits& tr = Traits(q.type);
  tr.from_float(w, dst, q.cols);
  const bool codes = tr.row_header == 0 && HasCodeAccess(q.type);
  if (!codes) {
    if (clip) std::fill(clip, clip + q.cols, 0);
    if (dq) std::fill(dq, dq + q.cols, 0.0f);
    return;
  }
  const int64_t bs = tr.block_size, per_row = q.cols / bs;
  std::vector<ElementGrid> grids(bs);
  std::vector<int> code(bs);
  for (int64_t b = 0; b < per_row; ++b) {
    uint8_t* block = dst + b * tr.type_size;
    const float* x = w + b * bs;
    float s = 0.0f;
    if (q.learned) {
      const size_t k = q.scale_offset + (size_t)(r * per_row + b);
      s = s0_[k] * std::exp(theta_[k]);
      if (s0_[k] != 0.0f) {
        // The stored scale is fp16(s); codes are the nearest in range on that grid.
        const fp16_t d = FloatToFp16(s);
        std::memcpy(block, &d, sizeof d);
        BlockGrids(q.type, block, grids.data());
        for (int64_t e = 0; e < bs; ++e) code[e] = NearestCode(grids[e], x[e]);
        SetBlockCodes(q.type, block, code.data());
      }
    }
    if (!clip && !dq) continue;
    BlockGrids(q.type, block, grids.data());
    GetBlockCodes(q.type, block, code.data());
    TableEnds ends;
    for (int64_t e = 0; e < bs; ++e) {
      if (grids[e].table && (e == 0 || !SameGrid(grids[e], grids[e - 1]))) ends = EndsOf(grids[e]);
      const bool c = Clipped(grids[e], ends, x[e]);
      if (clip) clip[b * bs + e] = c;
      if (dq) {
        // ∂wq/∂θ = s·∂wq/∂s; LSQ: ∂wq/∂s = q - w/s inside the grid, q at a clipped end.
        const float d = grids[e].scale;
        dq[b * bs + e] = d == 0.0f ? 0.0f : s * (c ? (float)code[e] : (float)code[e] - x[e] / d);
      }
    }
  }
}

void FakeQuantizer::Apply(TrainModel& m, int threads) {
  SMELT_ASSERT(!applied_);
  size_t total = 0;
  for (const QatMatrix& q : matrices_) total += (size_t)(q.rows * q.cols);
  master_.resize(total);
  grad_before_.resize(total);
  clip_.resize(total);
  dwq_dtheta_.resize(theta_.empty() ? 0 : total);
  size_t base = 0;
  for (const QatMatrix& q : matrices_) {
    const TypeTraits& tr = Traits(q.type);
    float* w = m.params().data() + q.offset;
    const float* g = m.grads().data() + q.offset;
    std::copy(w, w + q.rows * q.cols, master_.begin() + (ptrdiff_t)base);
    std::copy(g, g + q.rows * q.cols, grad_before_.begin() + (ptrdiff_t)base);
    const size_t row_bytes = RowBytes(q.type, q.cols);
#pragma omp parallel num_threads(threads) if (threads > 1 && q.rows > 1)
    {
      AlignedRow buf;
      uint8_t* row = buf.Bytes(row_bytes);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < q.rows; ++r) {
        const size_t at = base + (size_t)(r * q.cols);
        EncodeRow(q, r, master_.data() + at, row, clip_.data() + at, q.learned ? dwq_dtheta_.data() + at : nullptr);
        tr.to_float(row, w + r * q.cols, q.cols);
      }
    }
    base += (size_t)(q.rows * q.cols);
  }
  applied_ = true;
}

void FakeQuantizer::Restore(TrainModel& m) {
  SMELT_ASSERT(applied_);
  size_t base = 0;
  for (const QatMatrix& q : matrices_) {
    const int64_t bs = Traits(q.type).block_size, per_row = q.cols / bs;
    float* w = m.params().data() + q.offset;
    float* g = m.grads().data() + q.offset;
    for (int64_t r = 0; r < q.rows; ++r) {
      for (int64_t j = 0; j < q.cols; ++j) {
        const size_t at = base + (size_t)(r * q.cols + j);
        const int64_t i = r * q.cols + j;
        const float inc = g[i] - grad_before_[at];  // this micro-batch's gradient at wq
        if (q.learned) theta_grad_[q.scale_offset + (size_t)(r * per_row + j / bs)] += inc * dwq_dtheta_[at];
        g[i] = clip_[at] ? grad_before_[at] : grad_before_[at] + inc;
        w[i] = master_[at];
      }
    }
    base += (size_t)(q.rows * q.cols);
  }
  applied_ = false;
}

void FakeQuantizer::UpdateScales(float lr, int threads) {
  if (theta_.empty()) return;
  const std::vector<ParamSlice> all{ParamSlice{.name = "scales", .n_dims = 1, .ne = {(int64_t)theta_.size(), 1, 1, 1},
                                               .offset = 0, .size = theta_.size(), .decay = false}};
  scale_adam_->Step(theta_, theta_grad_, all, lr, threads);
  std::fill(theta_grad_.begin(), theta_grad_.end(), 0.0f);
}

int64_t FakeQuantizer::clipped() const { return std::count(clip_.begin(), clip_.end(), uint8_t{1}); }

std::vector<uint8_t> FakeQuantizer::Encode(size_t i, const float* w, int threads) const {
  const QatMatrix& q = matrices_.at(i);
  const size_t row_bytes = RowBytes(q.type, q.cols);
  std::vector<uint8_t> out(row_bytes * (size_t)q.rows);
#pragma omp parallel num_threads(threads) if (threads > 1 && q.rows > 1)
  {
    AlignedRow buf;
    uint8_t* row = buf.Bytes(row_bytes);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < q.rows; ++r) {
      EncodeRow(q, r, w + r * q.cols, row, nullptr, nullptr);
      std::memcpy(out.data() + (size_t)r * row_bytes, row, row_bytes);
    }
  }
  return out;
}

Model FakeQuantizer::Export(const TrainModel& m, int threads) const {
  const Model src = m.ToModel();
  QuantizeOptions opt;
  opt.rules = rules_;
  opt.method = QuantMethod::kRtn;
  opt.threads = threads;
  Model out = QuantizeModel(src, opt);
  for (size_t i = 0; i < matrices_.size(); ++i) {
    const QatMatrix& q = matrices_[i];
    const Tensor& t = out.weights.Get(q.name);
    if (t.type != q.type) Fail("qat: {}: quantize chose {}, training used {}", q.name, DTypeName(t.type), DTypeName(q.type));
    if (q.learned) out.weights.Set(TensorFromBytes(src.weights.Get(q.name), q.type, Encode(i, m.Param(q.name), threads)));
  }
  return out;
}

Objective FakeQuantized(std::shared_ptr<FakeQuantizer> fq, Objective inner) {
  return [fq, inner](TrainModel& m, const Batch& b, float scale, Workspace& ws, int threads) {
    fq->Apply(m, threads);
    double loss = 0.0;
    try {
      loss = inner ? inner(m, b, scale, ws, threads) : ForwardBackward(m, b, scale, ws, threads);
    } catch (...) {
      fq->Restore(m);
      throw;
    }
    fq->Restore(m);
    return loss;
  };
}

namespace {
}  // namespace

Objective DistillObjective(std::shared_ptr<const TrainModel> teacher, const DistillTarget& target) {
  if (!(target.alpha >= 0.0f && target.alpha <= 1.0f)) Fail("qat: alpha {} must be in [0, 1]", target.alpha);
  DistillOptions o;
  o.alpha = target.alpha;
  o.soft = target.soft;
  std::vector<TrainModel> teachers;
  teachers.push_back(*teacher);
  return DistillObjective(std::make_shared<Distiller>(std::move(teachers), o));
}

}  // namespace smelt::train
