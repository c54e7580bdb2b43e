#include "train/student_init.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "core/error.h"

namespace smelt::train {
namespace {

// Where a block of a new model comes from: block `layer` of `model`.
struct BlockSource {
  const Model* model = nullptr;
  int layer = 0;
};

// A model with base's non-block tensors (embeddings, final norm, head, RoPE factors) and the
// given blocks, renumbered 0, 1, ... in order.
TrainModel Assemble(const Model& base, const std::vector<BlockSource>& blocks) {
  Model m;
  m.config = base.config;
  m.config.n_layers = (int)blocks.size();
  m.vocab = base.vocab;
  m.format = base.format;
  m.source = base.source;
  for (const Tensor& t : base.weights.all())
    if (!t.name.starts_with("blk.")) m.weights.Add(t);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string from = "blk." + std::to_string(blocks[i].layer) + ".";
    for (const Tensor& t : blocks[i].model->weights.all()) {
      if (!t.name.starts_with(from)) continue;
      Tensor c = t;
      c.name = "blk." + std::to_string(i) + "." + t.name.substr(from.size());
      m.weights.Add(std::move(c));
    }
  }
  return TrainModel::FromModel(m);
}

void CheckIncreasing(std::span<const int> layers, int teacher_layers, const std::string& what) {
  if (layers.empty()) Fail("{}: no teacher block to start from", what);
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 0 || layers[i] >= teacher_layers)
      Fail("{}: block {} is outside the teacher's {} blocks", what, layers[i], teacher_layers);
    if (i > 0 && layers[i] <= layers[i - 1])
      Fail("{}: teacher blocks must be listed in increasing order without repeats", what);
  }
}

int ParseInt(std::string_view s, const std::string& what) {
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) Fail("{}: '{}' is not a whole number", what, s);
  return v;
}

}  // namespace

std::vector<int> EveryKthLayer(int teacher_layers, int k) {
  if (k < 1) Fail("every k-th teacher block: k must be at least 1, not {}", k);
  std::vector<int> out;
  for (int l = 0; l < teacher_layers; l += k) out.push_back(l);
  return out;
}

std::vector<int> ParseTeacherBlocks(const std::string& spec, int teacher_layers) {
  const std::string what = "teacher blocks '" + spec + "'";
  std::vector<int> out;
  if (spec.starts_with("every:")) {
    out = EveryKthLayer(teacher_layers, ParseInt(std::string_view(spec).substr(6), what));
  } else if (spec.starts_with("layers:")) {
    std::string_view rest = std::string_view(spec).substr(7);
    while (true) {
      const size_t comma = rest.find(',');
      out.push_back(ParseInt(rest.substr(0, comma), what));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  } else {
    Fail("{}: expected every:K or layers:I,J,...", what);
  }
  CheckIncreasing(out, teacher_layers, what);
  return out;
}

void CheckSameBlockShape(const ModelConfig& s, const ModelConfig& t, const std::string& what) {
  if (s.vocab != t.vocab)
    Fail("{}: its vocabulary has {} tokens, the teacher's {}", what, s.vocab, t.vocab);
  if (s.arch != t.arch || s.dim != t.dim || s.n_heads != t.n_heads || s.n_kv_heads != t.n_kv_heads ||
      s.head_dim != t.head_dim || s.ff != t.ff || s.qkv_bias != t.qkv_bias || s.tied_embeddings != t.tied_embeddings)
    Fail("{}: blocks of {} dim {}, heads {}/{}, ff {} cannot take the teacher's ({} dim {}, heads {}/{}, ff {})", what,
         s.arch, s.dim, s.n_heads, s.n_kv_heads, s.ff, t.arch, t.dim, t.n_heads, t.n_kv_heads, t.ff);
}

void CheckWithinTeacher(const ModelConfig& s, const ModelConfig& t, const std::string& what) {
  if (s.vocab != t.vocab) Fail("{}: its vocabulary has {} tokens, the teacher's {}", what, s.vocab, t.vocab);
  if (s.arch != t.arch || s.head_dim != t.head_dim)
    Fail("{}: {} with heads of {} does not come from the teacher ({} with heads of {})", what, s.arch, s.head_dim,
         t.arch, t.head_dim);
  if (s.dim > t.dim || s.n_layers > t.n_layers || s.n_heads > t.n_heads || s.n_kv_heads > t.n_kv_heads || s.ff > t.ff)
    Fail("{}: dim {}, {} blocks, heads {}/{}, ff {} exceed the teacher's dim {}, {} blocks, heads {}/{}, ff {}", what,
         s.dim, s.n_layers, s.n_heads, s.n_kv_heads, s.ff, t.dim, t.n_layers, t.n_heads, t.n_kv_heads, t.ff);
}

TrainModel StudentFromTeacher(const TrainModel& teacher, std::span<const int> layers) {
  CheckIncreasing(layers, teacher.config().n_layers, "student from " + teacher.config().name);
  const Model t = teacher.ToModel();
  std::vector<BlockSource> blocks;
  for (int l : layers) blocks.push_back({&t, l});
  return Assemble(t, blocks);
}

GrowthPlan PlanGrowth(std::span<const int> final_map, std::vector<int64_t> at_steps) {
  const size_t groups = at_steps.size() + 1;
  if (final_map.size() < groups)
    Fail("progressive growth: {} stages need at least {} student blocks, the student has {}", at_steps.size(), groups,
         final_map.size());
  for (size_t s = 0; s < at_steps.size(); ++s)
    if (at_steps[s] < 1 || (s > 0 && at_steps[s] <= at_steps[s - 1]))
      Fail("progressive growth: stage steps must be positive and increasing (step {} after {})", at_steps[s],
           s > 0 ? at_steps[s - 1] : 0);
  GrowthPlan p;
  p.add.resize(at_steps.size());
  for (size_t j = 0; j < final_map.size(); ++j)
    (j % groups == 0 ? p.initial : p.add[j % groups - 1]).push_back(final_map[j]);
  p.at_steps = std::move(at_steps);
  return p;
}

namespace {

// The grown student's blocks: each old block (by student index) or new one (by teacher block),
// merged in teacher order.
struct GrownBlock {
  int teacher_layer = 0;
  std::optional<int> student_layer;  // empty: copied from the teacher
};

std::vector<GrownBlock> MergeBlocks(std::span<const int> map, std::span<const int> add, int teacher_layers,
                                    const std::string& what) {
  std::vector<GrownBlock> out;
  for (size_t i = 0; i < map.size(); ++i) out.push_back({map[i], (int)i});
  for (int l : add) {
    if (l < 0 || l >= teacher_layers) Fail("{}: block {} is outside the teacher's {} blocks", what, l, teacher_layers);
    if (std::any_of(out.begin(), out.end(), [&](const GrownBlock& b) { return b.teacher_layer == l; }))
      Fail("{}: teacher block {} is already in the student", what, l);
    out.push_back({l, std::nullopt});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const GrownBlock& a, const GrownBlock& b) { return a.teacher_layer < b.teacher_layer; });
  return out;
}

}  // namespace

TrainModel GrowStudent(const TrainModel& student, std::span<const int> map, const TrainModel& teacher,
                       std::span<const int> add, std::vector<int>* new_map) {
  const std::string what = "growing " + student.config().name;
  CheckSameBlockShape(student.config(), teacher.config(), what);
  if ((int)map.size() != student.config().n_layers)
    Fail("{}: the block map has {} entries for {} blocks", what, map.size(), student.config().n_layers);
  const std::vector<GrownBlock> merged = MergeBlocks(map, add, teacher.config().n_layers, what);
  const Model s = student.ToModel(), t = teacher.ToModel();
  std::vector<BlockSource> blocks;
  if (new_map) new_map->clear();
  for (const GrownBlock& b : merged) {
    blocks.push_back(b.student_layer ? BlockSource{&s, *b.student_layer} : BlockSource{&t, b.teacher_layer});
    if (new_map) new_map->push_back(b.teacher_layer);
  }
  return Assemble(s, blocks);
}

Trainer GrowTrainer(const Trainer& trainer, std::span<const int> map, const TrainModel& teacher,
                    std::span<const int> add, std::vector<int>* new_map) {
  const TrainModel& old = trainer.model();
  TrainModel grown = GrowStudent(old, map, teacher, add, new_map);
  const std::vector<GrownBlock> merged =
      MergeBlocks(map, add, teacher.config().n_layers, "growing " + old.config().name);
  // Moments follow their parameters: a grown tensor that came from the student takes the
  // student tensor's moments; one copied from the teacher starts at zero.
  std::vector<float> m(grown.params().size(), 0.0f), v(grown.params().size(), 0.0f);
  for (const ParamSlice& p : grown.slices()) {
    std::string from = p.name;
    if (p.name.starts_with("blk.")) {
      const size_t dot = p.name.find('.', 4);
      const GrownBlock& b = merged[(size_t)std::stoi(p.name.substr(4, dot - 4))];
      if (!b.student_layer) continue;
      from = "blk." + std::to_string(*b.student_layer) + p.name.substr(dot);
    }
    const ParamSlice& q = old.Slice(from);
    SMELT_ASSERT(q.size == p.size);
    std::copy_n(trainer.optimizer().m().begin() + (ptrdiff_t)q.offset, q.size, m.begin() + (ptrdiff_t)p.offset);
    std::copy_n(trainer.optimizer().v().begin() + (ptrdiff_t)q.offset, q.size, v.begin() + (ptrdiff_t)p.offset);
  }
  Trainer out(std::move(grown), trainer.options());
  out.Restore(trainer.step(), trainer.micro_batches(), trainer.losses(), std::move(m), std::move(v));
  out.set_objective(trainer.objective());
  out.set_reducer(trainer.reducer());
  return out;
}

}  // namespace smelt::train
