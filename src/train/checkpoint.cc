#include "train/checkpoint.h"

#include <utility>

#include "core/error.h"
#include "io/gguf_model.h"
#include "train/rng.h"

namespace smelt::train {
namespace {

constexpr uint32_t kCheckpointVersion = 1;
const std::string kMoment1 = "train.adam_m.", kMoment2 = "train.adam_v.";
const std::string kAuxiliary = "train.aux.";  // auxiliary parameters (not part of the model)

// Covers the numbers a resumed run depends on: weights, moments, counters, losses, the data's
// fingerprint and the options.
uint64_t Checksum(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v,
                  int64_t step, int64_t micro, const std::vector<float>& losses, uint64_t data,
                  const TrainOptions& o) {
  Fnv1a h;
  for (const std::vector<float>* x : {&params, &m, &v, &losses}) h.Mix(x->data(), x->size() * sizeof(float));
  for (int64_t n : {step, micro, (int64_t)data, o.steps, o.batch, o.accum, o.warmup, o.eval_batches}) h.MixValue(n);
  for (float f : {o.lr, o.min_lr_ratio, o.clip, o.adam.beta1, o.adam.beta2, o.adam.eps, o.adam.weight_decay})
    h.MixValue(f);
  return h.value();
}

Tensor SliceTensor(const std::string& name, const ParamSlice& s, const std::vector<float>& values) {
  return MakeF32Tensor(name, std::vector<int64_t>(s.ne.begin(), s.ne.begin() + s.n_dims),
                       std::vector<float>(values.begin() + (ptrdiff_t)s.offset,
                                          values.begin() + (ptrdiff_t)(s.offset + s.size)));
}

// A u64 key read whole (GetInt stops at INT64_MAX).
uint64_t GetU64(const GgufFile& f, const char* key) {
  const GgufValue* v = f.Find(key);
  if (!v) Fail("{}: missing key {}", f.path(), key);
  return v->AsUint();
}

}  // namespace

void SaveCheckpoint(const Trainer& t, uint64_t data_fingerprint, const std::string& path) {
  const TrainModel& model = t.model();
  const TrainOptions& o = t.options();
  GgufSaveOptions so;
  so.type = DType::kF32;
  GgufWriter w = GgufModelWriter(model.ToModel(), path, so);
  auto u64 = [&](const char* key, int64_t v) { w.Set(key, GgufValue::U64((uint64_t)v)); };
  auto f32 = [&](const char* key, float v) { w.Set(key, GgufValue::F32(v)); };
  w.Set("train.format_version", GgufValue::U32(kCheckpointVersion));
  u64("train.step", t.step());
  u64("train.micro_batches", t.micro_batches());
  u64("train.data_fingerprint", (int64_t)data_fingerprint);
  u64("train.steps", o.steps);
  u64("train.batch", o.batch);
  u64("train.accum", o.accum);
  u64("train.warmup", o.warmup);
  u64("train.eval_batches", o.eval_batches);
  f32("train.lr", o.lr);
  f32("train.min_lr_ratio", o.min_lr_ratio);
  f32("train.clip", o.clip);
  f32("train.adam.beta1", o.adam.beta1);
  f32("train.adam.beta2", o.adam.beta2);
  f32("train.adam.eps", o.adam.eps);
  f32("train.adam.weight_decay", o.adam.weight_decay);
  w.Set("train.losses", GgufValue::F32Array(t.losses()));
  const AdamW& adam = t.optimizer();
  u64("train.checksum", (int64_t)Checksum(model.params(), adam.m(), adam.v(), t.step(), t.micro_batches(),
                                          t.losses(), data_fingerprint, o));
  for (const ParamSlice& s : model.slices()) {
    if (s.auxiliary) w.AddTensor(SliceTensor(kAuxiliary + s.name, s, model.params()));
    w.AddTensor(SliceTensor(kMoment1 + s.name, s, adam.m()));
    w.AddTensor(SliceTensor(kMoment2 + s.name, s, adam.v()));
  }
  w.WriteFile(path);
}

Checkpoint LoadCheckpoint(const std::string& path, int threads) {
  const GgufFile f = GgufFile::Open(path);
  const std::optional<int64_t> version = f.FindInt("train.format_version");
  if (!version) Fail("{}: not a smelt training checkpoint (no train.format_version)", path);
  if (*version != kCheckpointVersion) Fail("{}: checkpoint version {} is not supported (expected {})", path, *version, kCheckpointVersion);
  const Model m = GgufToModel(f);
  TrainModel model = TrainModel::FromModel(m);
  for (const Tensor& t : f.tensors()) {  // in file order, which is the order they were added in
    if (!t.name.starts_with(kAuxiliary)) continue;
    if (t.type != DType::kF32) Fail("{}: tensor {} is not f32", path, t.name);
    const float* v = t.as<float>();
    try {
      model.AddAuxiliary(t.name.substr(kAuxiliary.size()), std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                         std::vector<float>(v, v + t.nelements()));
    } catch (const Error& e) {
      Rethrow(path, e);
    }
  }

  TrainOptions o;
  o.steps = f.GetInt("train.steps");
  o.batch = f.GetInt("train.batch");
  o.accum = f.GetInt("train.accum");
  o.warmup = f.GetInt("train.warmup");
  o.eval_batches = f.GetInt("train.eval_batches");
  o.lr = (float)f.GetFloat("train.lr");
  o.min_lr_ratio = (float)f.GetFloat("train.min_lr_ratio");
  o.clip = (float)f.GetFloat("train.clip");
  o.adam.beta1 = (float)f.GetFloat("train.adam.beta1");
  o.adam.beta2 = (float)f.GetFloat("train.adam.beta2");
  o.adam.eps = (float)f.GetFloat("train.adam.eps");
  o.adam.weight_decay = (float)f.GetFloat("train.adam.weight_decay");
  o.threads = threads;
  const int64_t step = f.GetInt("train.step"), micro = f.GetInt("train.micro_batches");
  const uint64_t data = GetU64(f, "train.data_fingerprint");
  std::vector<float> losses = f.FindFloats("train.losses").value_or(std::vector<float>{});

  std::vector<float> m1(model.params().size()), m2(model.params().size());
  for (const ParamSlice& s : model.slices())
    for (const auto& [prefix, dst] : {std::pair{&kMoment1, &m1}, std::pair{&kMoment2, &m2}}) {
      const Tensor* t = f.FindTensor(*prefix + s.name);
      if (!t) Fail("{}: missing tensor {}", path, *prefix + s.name);
      if (t->type != DType::kF32 || (size_t)t->nelements() != s.size)
        Fail("{}: tensor {} is not {} f32 values", path, t->name, s.size);
      std::copy_n(t->as<float>(), s.size, dst->begin() + (ptrdiff_t)s.offset);
    }
  const uint64_t want = GetU64(f, "train.checksum");
  if (Checksum(model.params(), m1, m2, step, micro, losses, data, o) != want)
    Fail("{}: checksum mismatch: the checkpoint is corrupt", path);

  Checkpoint c{Trainer(std::move(model), o), data};
  try {
    c.trainer.Restore(step, micro, std::move(losses), std::move(m1), std::move(m2));
  } catch (const Error& e) {
    Rethrow(path, e);
  }
  return c;
}

void ExportGguf(const TrainModel& model, const std::string& path) {
  GgufSaveOptions so;
  so.type = DType::kF32;
  SaveGgufModel(model.ToModel(), path, so);
}

}  // namespace smelt::train
