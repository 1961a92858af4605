// The task interface (SDK ABI minor 1): a quality task says what a layer should remember, with no
// training of the layer. A task makes an episode (input tokens, targets, which rows fit and which score);
// the runner streams the inputs through the layer, fits a linear readout (ridge regression in float64) from
// the layer's outputs to the targets, and hands the readout's predictions back to the task to score.
// Register with
//
//   static const attnbench_param_spec_v1 kParams[] = {{"max_delay", ATTNBENCH_PARAM_INT, "200", "..."}};
//   ATTNBENCH_TASK_PLUGIN(MyTask, "my_task", "1.0.0", kParams)
//
// MyTask needs a constructor taking `const attnbench::CreateArgs&` (params, seed; embed_dim is the width
// of the study's tokens) and may throw; an optional `static void validate(const Params&, int64_t)` checks
// parameters when a study loads, as for attention plugins.
//
// Every tensor crosses on the CPU: inputs in float32, targets and predictions in float64.
#pragma once

#include <attnbench/common.h>

#include <string>
#include <vector>

namespace attnbench {

struct TaskInfo {
  std::string description;       // one line for humans
  std::string score_name;        // the headline score, e.g. "MC" or "R²"
  bool higher_is_better = true;  // of the headline score
  std::string baseline_name;     // what the baseline score is, e.g. "the input alone"
  // > 0: make() receives that many documents of the study's own corpus, embedded by the study's embedder.
  int64_t corpus_documents = 0;
  int64_t corpus_tokens = 0;  // tokens per document; 0: the study's data.seq_len
  Params details;             // facts worth recording
};

// Which rows of an episode do what.
enum class Split : int8_t { kIgnore = 0, kTrain = 1, kValidation = 2, kTest = 3 };

struct TaskEpisode {
  at::Tensor inputs;   // (T, B, E) float32: what the layer reads, B independent streams
  at::Tensor targets;  // (T, B, K) float64: what a readout of the layer's output at row t should predict
  at::Tensor split;    // (T, B) int8, a Split per row: the readout is fitted on kTrain rows, its
                       // regulariser chosen on kValidation rows, and the scores come from kTest rows
  // Closed loop (optional): after the T rows, the readout's prediction from the last output, turned into
  // the next input by feedback(), drives the layer for `free_run` steps with nothing from outside.
  int64_t free_run = 0;
  at::Tensor free_targets;  // (free_run, B, K) float64: what those predictions should be
};

// What the readout predicted, for score().
struct TaskPredictions {
  at::Tensor outputs;       // (T, B, K): the readout fitted on the layer's outputs, every row
  at::Tensor inputs;        // (T, B, K): the same readout fitted on the inputs alone, every row
  at::Tensor free_outputs;  // (free_run, B, K): the closed loop, when the episode asked for one
};

struct TaskScores {
  double score = 0;     // the headline score (TaskInfo::score_name)
  double baseline = 0;  // the same score for the task's baseline
  Params scores;        // every named score, the headline included
  Params baseline_scores;
  // A curve worth drawing (e.g. memory capacity against delay); empty when there is none.
  std::string curve_x_name, curve_y_name;
  std::vector<double> curve_x, curve_y;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual TaskInfo info() const = 0;

  // The episode for tokens of width `embed_dim`. `corpus`: (documents, tokens, E) float32, the study's
  // embedded text when info().corpus_documents > 0, else undefined.
  virtual TaskEpisode make(int64_t embed_dim, const at::Tensor& corpus) = 0;

  // Closed loop only: the next inputs (B, E) float32 from the readout's predictions (B, K) float64.
  virtual at::Tensor feedback(const at::Tensor& predictions) {
    (void)predictions;
    throw Unsupported("this task has no closed loop");
  }

  virtual TaskScores score(const TaskEpisode& episode, const TaskPredictions& predictions) = 0;
};

class TaskHandle {
 public:
  virtual bool info(TaskInfo* out) noexcept = 0;
  virtual bool make(int64_t embed_dim, const at::Tensor& corpus, TaskEpisode* out) noexcept = 0;
  virtual bool feedback(const at::Tensor& predictions, at::Tensor* out) noexcept = 0;
  virtual bool score(const TaskEpisode& episode, const TaskPredictions& predictions, TaskScores* out) noexcept = 0;
  virtual const Failure& last_failure() const noexcept = 0;
  virtual void destroy() noexcept = 0;

 protected:
  ~TaskHandle() = default;
};

namespace detail {

template <typename Impl>
class TaskAdapter final : public TaskHandle {
 public:
  explicit TaskAdapter(const CreateArgs& args) : impl_(args) {}
  static void validate(const ValidateArgs& args, ValidateResult& result) {
    if constexpr (has_validate<Impl>::value) Impl::validate(args.params, args.embed_dim);
    result.embed_dim = args.embed_dim;
  }
  bool info(TaskInfo* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.info(); });
  }
  bool make(int64_t embed_dim, const at::Tensor& corpus, TaskEpisode* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.make(embed_dim, corpus); });
  }
  bool feedback(const at::Tensor& predictions, at::Tensor* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.feedback(predictions); });
  }
  bool score(const TaskEpisode& episode, const TaskPredictions& predictions, TaskScores* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.score(episode, predictions); });
  }
  const Failure& last_failure() const noexcept override { return error_; }
  void destroy() noexcept override { delete this; }

 private:
  Impl impl_;
  Failure error_;
};

}  // namespace detail
}  // namespace attnbench

#define ATTNBENCH_TASK_PLUGIN(Impl, name, version, params) \
  ATTNBENCH_DEFINE_PLUGIN_(ATTNBENCH_PLUGIN_TASK, ::attnbench::detail::TaskAdapter<Impl>, name, version, params)
