#pragma once
// A student's start from its teacher, and progressive growth of the student.
//
// Initialisation: a student of the teacher's width with fewer blocks takes the teacher's
// embeddings, final norm and head, and copies of some of its blocks (every k-th, as DistilBERT
// took every other layer, or an explicit list), in the teacher's order, so the untrained student
// is exactly the teacher with the other blocks removed. A structurally pruned teacher
// (compress/structured.h) is the other start: TrainModel::FromModel of the pruned Model.
//
// Progressive growth: the student starts with some of its final blocks and gains the rest in
// stages at given optimizer steps. A stage inserts copies of the teacher blocks the new student
// blocks map to (at their place in the teacher's order) and keeps everything trained so far,
// AdamW moments included; the new parameters start with zero moments.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/model.h"
#include "train/trainer.h"

namespace smelt::train {

// Teacher blocks 0, k, 2k, ... below teacher_layers. Throws Error for k < 1.
std::vector<int> EveryKthLayer(int teacher_layers, int k);

// The teacher blocks a student starts from: "every:K" or "layers:I,J,...". Throws Error naming
// the spec for another form, a block outside the teacher, or a list that is not increasing.
std::vector<int> ParseTeacherBlocks(const std::string& spec, int teacher_layers);

// A student whose block i is a copy of teacher block layers[i], with the teacher's embeddings,
// norms and head. `layers` must be strictly increasing and inside the teacher (throws Error).
TrainModel StudentFromTeacher(const TrainModel& teacher, std::span<const int> layers);

// Throws Error unless student and teacher share the vocabulary size and every block shape
// (width, heads, head size, feed-forward size, biases): only then can teacher blocks be copied
// into the student. `what` names the student in the message.
void CheckSameBlockShape(const ModelConfig& student, const ModelConfig& teacher, const std::string& what);

// Throws Error unless `student` can start from a smaller copy of the teacher (a structurally
// pruned one): the same architecture, vocabulary size and head size, and no dimension (width,
// blocks, heads, kv heads, feed-forward size) larger than the teacher's.
void CheckWithinTeacher(const ModelConfig& student, const ModelConfig& teacher, const std::string& what);

// Throws Error unless `student` can start from a smaller copy of the teacher (a structurally
// pruned one): the same architecture, vocabulary size and head size, and no dimension (width,
// blocks, heads, kv heads, feed-forward size) larger than the teacher's.
void CheckWithinTeacher(const ModelConfig& student, const ModelConfig& teacher, const std::string& what);

// Progressive growth: the student's blocks at the start (`initial`) and the teacher blocks added
// at each of the steps in `at_steps`, so that after the last stage the student has the blocks of
// `final_map`. The final blocks are dealt round-robin over the initial set and the stages
// (block j of final_map goes to group j mod (stages + 1)), so every stage adds blocks spread
// over the depth. Throws Error for steps that are not positive and increasing, or more stages
// than blocks.
struct GrowthPlan {
  std::vector<int> initial;
  std::vector<int64_t> at_steps;
  std::vector<std::vector<int>> add;  // add[s]: teacher blocks added at at_steps[s]
};
GrowthPlan PlanGrowth(std::span<const int> final_map, std::vector<int64_t> at_steps);

// The student grown by copies of teacher blocks `add` (none of them already in `map`, the
// teacher block of each student block). Blocks end up in teacher order; the student's own
// blocks, embeddings, norms and head keep their values. Returns the new map in *new_map.
TrainModel GrowStudent(const TrainModel& student, std::span<const int> map, const TrainModel& teacher,
                       std::span<const int> add, std::vector<int>* new_map);

// GrowStudent applied to a trainer: the same options, step, data position and losses; AdamW's
// moments of the old parameters carried over, those of the new blocks zero; the same objective
// and data-parallel reducer.
Trainer GrowTrainer(const Trainer& trainer, std::span<const int> map, const TrainModel& teacher,
                    std::span<const int> add, std::vector<int>* new_map);

}  // namespace smelt::train
