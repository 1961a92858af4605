// The measurement protocols, generic over any attention plugin: timings (full, step, prefix recompute)
// and the consistency checks (step vs full, prefix vs step, closed-loop rollouts).
#pragma once

#include "measure/stats.h"
#include "plugins/loader.h"
#include "study/study.h"

#include <ATen/ATen.h>

#include <vector>

namespace attnbench {

// ‖a − b‖ / ‖b‖ and max |a − b|, computed in float64 so the comparison adds no rounding of its own.
struct ErrorStats {
  double rel_rms = 0;
  double max_abs = 0;
};
ErrorStats compare(const at::Tensor& a, const at::Tensor& reference);
nlohmann::json to_json(const ErrorStats& e);

struct StreamTiming {
  Stats total_ms;                      // one run = all L tokens
  Stats per_token_us;                  // every token of every run
  std::vector<double> per_position_us;  // median over runs, by token position
};

// Outputs of the three ways to run a sequence, each (L, B, E); run_prefix at the given positions only,
// (P, B, E) for P positions (all of them when `positions` is empty).
at::Tensor run_full(AttentionLayer& layer, const at::Tensor& x);
at::Tensor run_steps(AttentionLayer& layer, const at::Tensor& x);
at::Tensor run_prefix(AttentionLayer& layer, const at::Tensor& x, const std::vector<int64_t>& positions = {});

// Closed loop: feed x[0:seed_len], then feed each output back as the next input, `horizon` times.
// Returns the horizon outputs (horizon, B, E). The step version and the prefix-recompute version see
// exactly the same inputs, so they differ only by rounding.
at::Tensor rollout_steps(AttentionLayer& layer, const at::Tensor& x, int64_t seed_len, int64_t horizon);
at::Tensor rollout_prefix(AttentionLayer& layer, const at::Tensor& x, int64_t seed_len, int64_t horizon);

class Measurer {
 public:
  // `inputs`: the batches, each (L, B, E), on the layer's device and dtype. Runs cycle through them.
  Measurer(AttentionLayer& layer, std::vector<at::Tensor> inputs, const MeasureSettings& settings, c10::Device device);

  Stats time_full();
  StreamTiming time_steps();
  StreamTiming time_prefix();

  // Of the last timing: the most tensor memory its first run (a warm-up when there is one) allocated at
  // once beyond what was allocated before it and beyond one output of the call it times (the forward's
  // (L, B, E), a step's (B, E)): the layer's working memory in that mode, its state included.
  int64_t peak_bytes() const { return peak_bytes_; }

  // Of the last time_steps(): the bytes each step read and wrote, by position, as the layer declares them
  // (AttentionLayer::step_traffic); empty when it declares nothing.
  const std::vector<int64_t>& step_traffic() const { return traffic_; }

 private:
  // Calls run(x, timer) after warm-up until min runs and min time are met; returns each run's marks.
  // The first run is also the memory probe; `output_bytes` is what peak_bytes() leaves out.
  template <typename Run>
  std::vector<std::vector<double>> repeat(Run&& run, int64_t output_bytes);
  StreamTiming stream_timing(const std::vector<std::vector<double>>& runs) const;

  AttentionLayer& layer_;
  std::vector<at::Tensor> inputs_;
  MeasureSettings settings_;
  c10::Device device_;
  int64_t peak_bytes_ = 0;
  std::vector<int64_t> traffic_;
};

}  // namespace attnbench
