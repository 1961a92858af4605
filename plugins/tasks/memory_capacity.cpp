// The `memory_capacity` task: Jaeger's short-term memory capacity. The input is i.i.d. u_t ~ U(-1, 1),
// lifted to the tokens' width; for each delay k = 1..K a readout of the layer's output at t predicts
// u_{t-k}. r²(k) is the squared correlation of prediction and target on the test rows, and
// MC = Σ_k r²(k). The baseline reads the input alone, which holds no past: its MC is near 0. By Dambre et
// al. (2012), MC cannot exceed the number of readout features.
#include "streams.h"

#include <attnbench/support/checks.h>

namespace {

using namespace attnbench;

const attnbench_param_spec_v1 kParams[] = {
    {"max_delay", ATTNBENCH_PARAM_INT, "200", "K: delays 1..K are read out"},
    {"washout", ATTNBENCH_PARAM_INT, "200", "first tokens not fitted (at least max_delay)"},
    {"train", ATTNBENCH_PARAM_INT, "2000", "tokens the readout is fitted on"},
    {"validation", ATTNBENCH_PARAM_INT, "500", "tokens the regulariser is chosen on"},
    {"test", ATTNBENCH_PARAM_INT, "1000", "tokens scored"},
    {"input_scale", ATTNBENCH_PARAM_FLOAT, "1.0", "length of the token that carries u = 1"},
};

class MemoryCapacity final : public Task {
 public:
  static void validate(const Params& p, int64_t /*embed_dim*/) {
    using checks::in_range;
    in_range("memory_capacity", "max_delay", static_cast<double>(p.get_int("max_delay")), 1, 10000);
    in_range("memory_capacity", "washout", static_cast<double>(p.get_int("washout")),
             static_cast<double>(p.get_int("max_delay")), 1e6);
    for (const char* rows : {"train", "validation", "test"}) {
      in_range("memory_capacity", rows, static_cast<double>(p.get_int(rows)), 2, 1e7);
    }
    in_range("memory_capacity", "input_scale", p.get_float("input_scale"), 0, INFINITY, /*open_low=*/true);
  }

  explicit MemoryCapacity(const CreateArgs& args) : params_(args.params), seed_(args.seed) { validate(params_, args.embed_dim); }

  TaskInfo info() const override {
    TaskInfo i;
    i.description = "short-term memory capacity over delays 1.." + std::to_string(params_.get_int("max_delay"));
    i.score_name = "MC";
    i.higher_is_better = true;
    i.baseline_name = "the input alone";
    return i;
  }

  TaskEpisode make(int64_t embed_dim, const at::Tensor& /*corpus*/) override {
    const int64_t k = params_.get_int("max_delay"), washout = params_.get_int("washout");
    TaskEpisode e;
    e.split = tasks::time_split(washout, params_.get_int("train"), params_.get_int("validation"), params_.get_int("test"), 1);
    const int64_t rows = e.split.size(0);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed_);
    const at::Tensor u = at::empty({rows, 1}, at::kDouble).uniform_(-1.0, 1.0, gen);
    e.inputs = tasks::Lift(embed_dim, seed_, params_.get_float("input_scale"))(u);
    e.targets = at::zeros({rows, 1, k}, at::kDouble);
    for (int64_t d = 1; d <= k; ++d) e.targets.select(2, d - 1).narrow(0, d, rows - d).copy_(u.narrow(0, 0, rows - d));
    return e;
  }

  TaskScores score(const TaskEpisode& e, const TaskPredictions& p) override {
    TaskScores s;
    const at::Tensor truth = tasks::rows_of(e.targets, e.split, Split::kTest);
    auto capacity = [&](const at::Tensor& predicted, std::vector<double>* curve) {
      const at::Tensor test = tasks::rows_of(predicted, e.split, Split::kTest);
      double mc = 0;
      for (int64_t d = 0; d < truth.size(1); ++d) {
        const double r2 = tasks::squared_correlation(test.select(1, d), truth.select(1, d));
        if (curve != nullptr) curve->push_back(r2);
        mc += r2;
      }
      return mc;
    };
    s.score = capacity(p.outputs, &s.curve_y);
    s.baseline = capacity(p.inputs, nullptr);
    for (int64_t d = 1; d <= truth.size(1); ++d) s.curve_x.push_back(static_cast<double>(d));
    s.curve_x_name = "delay k";
    s.curve_y_name = "r²";
    s.scores.set("MC", s.score);
    s.baseline_scores.set("MC", s.baseline);
    return s;
  }

 private:
  Params params_;
  uint64_t seed_;
};

}  // namespace

ATTNBENCH_TASK_PLUGIN(MemoryCapacity, "memory_capacity", "1.0.0", kParams)
