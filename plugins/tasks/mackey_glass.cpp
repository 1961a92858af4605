// The `mackey_glass` task: the standard chaotic series dx/dt = 0.2 x(t-τ) / (1 + x(t-τ)^10) - 0.1 x(t),
// τ = 17, integrated here by fourth-order Runge-Kutta with step 0.1 (the delayed value at half steps
// interpolated linearly), from x = 1.2 on t <= 0, its first 1000 time units dropped, sampled every time
// unit and normalised to mean 0 and standard deviation 1. Several trials are consecutive stretches of it.
//
// Teacher-forced, a readout of the layer's output at t predicts u_{t+1}: the one-step NRMSE on the test
// rows. Then the closed loop: the readout's prediction, lifted, is the next token, for the longest
// horizon; NRMSE at each horizon h is over the trials at the h-th step, and the valid time is the
// median over trials of the steps before |error| first exceeds valid_threshold. NRMSE is the RMSE over
// the series' standard deviation, 1 here. The baseline is persistence: u_t for u_{t+1}, and the last
// input for every step of the closed loop. A prediction fed back is clipped to ±10.
#include "streams.h"

#include <attnbench/support/checks.h>

#include <algorithm>
#include <sstream>
#include <vector>

namespace {

using namespace attnbench;

const attnbench_param_spec_v1 kParams[] = {
    {"tau", ATTNBENCH_PARAM_INT, "17", "the delay τ (17: mildly chaotic, the usual benchmark)"},
    {"trials", ATTNBENCH_PARAM_INT, "8", "independent stretches of the series, streamed side by side"},
    {"washout", ATTNBENCH_PARAM_INT, "200", "first samples not fitted"},
    {"train", ATTNBENCH_PARAM_INT, "1500", "samples the readout is fitted on"},
    {"validation", ATTNBENCH_PARAM_INT, "300", "samples the regulariser is chosen on"},
    {"test", ATTNBENCH_PARAM_INT, "500", "samples scored one step ahead"},
    {"horizons", ATTNBENCH_PARAM_STRING, "84,500", "closed-loop steps at which NRMSE is reported, comma-separated"},
    {"valid_threshold", ATTNBENCH_PARAM_FLOAT, "0.4", "the closed loop is valid while |error| stays below this (in σ)"},
    {"input_scale", ATTNBENCH_PARAM_FLOAT, "1.0", "length of the token that carries u = 1"},
};

constexpr double kFeedbackBound = 10;

std::vector<int64_t> parse_horizons(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t h = 0;
    try {
      h = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || h < 1 || h > 100000) {
      throw InvalidParameter("horizons", "mackey_glass: horizons '" + text + "' must be steps between 1 and 100000, "
                                         "comma-separated, such as 84,500");
    }
    out.push_back(h);
  }
  if (out.empty()) throw InvalidParameter("horizons", "mackey_glass: give at least one horizon, such as 84,500");
  return out;
}

// `samples` values of the series, one per time unit, after the transient; not yet normalised.
std::vector<double> mackey_glass(int64_t tau, int64_t samples) {
  constexpr double kStep = 0.1, kBeta = 0.2, kGamma = 0.1, kPower = 10, kStart = 1.2;
  constexpr int64_t kPerSample = 10, kTransient = 1000;
  const int64_t lag = tau * kPerSample;  // τ in integration steps
  const int64_t steps = (kTransient + samples) * kPerSample;
  std::vector<double> x(static_cast<size_t>(lag + steps + 1), kStart);  // x[lag + i] is x(i * step)
  auto delayed = [&](int64_t i, double fraction) {  // x(i * step - τ + fraction * step)
    const double a = x[static_cast<size_t>(i)], b = x[static_cast<size_t>(i + 1)];
    return a + fraction * (b - a);
  };
  auto f = [&](double now, double past) { return kBeta * past / (1 + std::pow(past, kPower)) - kGamma * now; };
  for (int64_t i = 0; i < steps; ++i) {
    const double now = x[static_cast<size_t>(lag + i)];
    const double k1 = f(now, delayed(i, 0));
    const double k2 = f(now + kStep / 2 * k1, delayed(i, 0.5));
    const double k3 = f(now + kStep / 2 * k2, delayed(i, 0.5));
    const double k4 = f(now + kStep * k3, delayed(i, 1));
    x[static_cast<size_t>(lag + i + 1)] = now + kStep / 6 * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  std::vector<double> out;
  for (int64_t s = 0; s < samples; ++s) out.push_back(x[static_cast<size_t>(lag + (kTransient + s) * kPerSample)]);
  return out;
}

class MackeyGlass final : public Task {
 public:
  static void validate(const Params& p, int64_t /*embed_dim*/) {
    using checks::in_range;
    const std::string who = "mackey_glass";
    in_range(who, "tau", static_cast<double>(p.get_int("tau")), 1, 1000);
    in_range(who, "trials", static_cast<double>(p.get_int("trials")), 1, 1024);
    in_range(who, "washout", static_cast<double>(p.get_int("washout")), 0, 1e6);
    for (const char* rows : {"train", "validation", "test"}) in_range(who, rows, static_cast<double>(p.get_int(rows)), 2, 1e6);
    parse_horizons(p.get_string("horizons"));
    in_range(who, "valid_threshold", p.get_float("valid_threshold"), 0, INFINITY, /*open_low=*/true);
    in_range(who, "input_scale", p.get_float("input_scale"), 0, INFINITY, /*open_low=*/true);
  }

  explicit MackeyGlass(const CreateArgs& args)
      : params_(args.params), seed_(args.seed), horizons_(parse_horizons(args.params.get_string("horizons"))) {
    validate(params_, args.embed_dim);
  }

  TaskInfo info() const override {
    TaskInfo i;
    i.description = "Mackey-Glass τ=" + std::to_string(params_.get_int("tau")) +
                    ": one step ahead teacher-forced, then the closed loop to " + params_.get_string("horizons");
    i.score_name = "NRMSE";
    i.higher_is_better = false;
    i.baseline_name = "persistence";
    return i;
  }

  TaskEpisode make(int64_t embed_dim, const at::Tensor& /*corpus*/) override {
    const int64_t trials = params_.get_int("trials"), horizon = *std::max_element(horizons_.begin(), horizons_.end());
    TaskEpisode e;
    e.split = tasks::time_split(params_.get_int("washout"), params_.get_int("train"), params_.get_int("validation"),
                                params_.get_int("test"), trials);
    const int64_t rows = e.split.size(0), span = rows + horizon + 1;
    const std::vector<double> series = mackey_glass(params_.get_int("tau"), trials * span);
    at::Tensor all = at::tensor(series, at::kDouble);
    all = (all - all.mean()) / all.std();
    u_ = all.view({trials, span}).t().contiguous();  // (span, trials): trial b is the b-th stretch
    lift_ = std::make_unique<tasks::Lift>(embed_dim, seed_, params_.get_float("input_scale"));
    e.inputs = (*lift_)(u_.narrow(0, 0, rows));
    e.targets = u_.narrow(0, 1, rows).unsqueeze(2).clone();
    e.free_run = horizon;
    e.free_targets = u_.narrow(0, rows, horizon).unsqueeze(2).clone();
    return e;
  }

  // Clipped to ±kFeedbackBound: a diverging readout then stays a large error instead of an overflow that
  // would make any layer's output infinite. The normalised series itself stays well within ±3.
  at::Tensor feedback(const at::Tensor& predictions) override {
    return (*lift_)(predictions.select(1, 0).clamp(-kFeedbackBound, kFeedbackBound));
  }

  TaskScores score(const TaskEpisode& e, const TaskPredictions& p) override {
    const int64_t rows = e.split.size(0);
    const at::Tensor truth = tasks::rows_of(e.targets, e.split, Split::kTest);
    // Persistence: u_t, the input of row t, for u_{t+1}; the last input for the whole closed loop.
    const at::Tensor persistence = u_.narrow(0, 0, rows).unsqueeze(2);
    const at::Tensor held = u_[rows - 1].unsqueeze(0).unsqueeze(2).expand({e.free_run, -1, 1});
    TaskScores s;
    fill(s.scores, tasks::rows_of(p.outputs, e.split, Split::kTest), truth, p.free_outputs, e.free_targets);
    fill(s.baseline_scores, tasks::rows_of(persistence, e.split, Split::kTest), truth, held, e.free_targets);
    s.score = s.scores.get_float("nrmse");
    s.baseline = s.baseline_scores.get_float("nrmse");
    return s;
  }

 private:
  void fill(Params& out, const at::Tensor& one_step, const at::Tensor& truth, const at::Tensor& free,
            const at::Tensor& free_truth) const {
    out.set("nrmse", (one_step - truth).pow(2).mean().sqrt().item<double>());
    const at::Tensor error = (free - free_truth).select(2, 0);  // (horizon, trials)
    for (int64_t h : horizons_) out.set("nrmse_" + std::to_string(h), error[h - 1].pow(2).mean().sqrt().item<double>());
    // Steps before the error first passes the threshold, per trial; the median over trials.
    const at::Tensor beyond = error.abs() > params_.get_float("valid_threshold");
    std::vector<double> valid;
    for (int64_t b = 0; b < error.size(1); ++b) {
      const at::Tensor where = beyond.select(1, b).nonzero();
      valid.push_back(static_cast<double>(where.numel() == 0 ? error.size(0) : where[0][0].item<int64_t>()));
    }
    std::sort(valid.begin(), valid.end());
    const size_t n = valid.size();
    out.set("valid_time", n % 2 ? valid[n / 2] : (valid[n / 2 - 1] + valid[n / 2]) / 2);
  }

  Params params_;
  uint64_t seed_;
  std::vector<int64_t> horizons_;
  at::Tensor u_;  // (samples, trials), normalised
  std::unique_ptr<tasks::Lift> lift_;
};

}  // namespace

ATTNBENCH_TASK_PLUGIN(MackeyGlass, "mackey_glass", "1.0.0", kParams)
