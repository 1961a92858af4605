#include "measure/protocols.h"

#include "measure/device.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace attnbench {

ErrorStats compare(const at::Tensor& a, const at::Tensor& reference) {
  TORCH_CHECK(a.sizes() == reference.sizes(), "compare: shapes differ, ", a.sizes(), " vs ", reference.sizes());
  ErrorStats e;
  if (a.numel() == 0) return e;
  // In float64, a slice of rows at a time: the comparison holds no whole-sequence copy of its own.
  constexpr int64_t kRowsAtOnce = 1024;
  double diff_squares = 0, ref_squares = 0;
  const at::Tensor x = a.detach().reshape({a.size(0), -1}), y = reference.detach().reshape({a.size(0), -1});
  for (int64_t start = 0; start < x.size(0); start += kRowsAtOnce) {
    const int64_t n = std::min(kRowsAtOnce, x.size(0) - start);
    const at::Tensor xs = x.narrow(0, start, n).to(at::kCPU, at::kDouble), ys = y.narrow(0, start, n).to(at::kCPU, at::kDouble);
    const at::Tensor diff = xs - ys;
    diff_squares += diff.pow(2).sum().item<double>();
    ref_squares += ys.pow(2).sum().item<double>();
    e.max_abs = std::max(e.max_abs, diff.abs().max().item<double>());
  }
  const double diff_norm = std::sqrt(diff_squares), ref_norm = std::sqrt(ref_squares);
  e.rel_rms = ref_norm > 0 ? diff_norm / ref_norm : diff_norm;
  return e;
}

nlohmann::json to_json(const ErrorStats& e) { return {{"rel_rms", e.rel_rms}, {"max_abs", e.max_abs}}; }

at::Tensor run_full(AttentionLayer& layer, const at::Tensor& x) {
  auto state = layer.init_state(x.size(1));
  return layer.forward(x, *state);
}

at::Tensor run_steps(AttentionLayer& layer, const at::Tensor& x) {
  auto state = layer.init_state(x.size(1));
  layer.reserve(*state, x.size(0));
  at::Tensor out = at::empty_like(x);
  for (int64_t t = 0; t < x.size(0); ++t) out[t].copy_(layer.step(x[t], *state));
  return out;
}

namespace {
// The prefix recompute of one position: a fresh state, a forward over the whole prefix.
at::Tensor fresh_forward(AttentionLayer& layer, const at::Tensor& prefix) {
  auto state = layer.init_state(prefix.size(1));
  return layer.forward(prefix, *state);
}
// Copied out of the forward's (t, B, E) result: a view would keep all of it alive.
at::Tensor last_row_of_fresh_forward(AttentionLayer& layer, const at::Tensor& prefix) {
  return fresh_forward(layer, prefix)[prefix.size(0) - 1].clone();
}
}  // namespace

at::Tensor run_prefix(AttentionLayer& layer, const at::Tensor& x, const std::vector<int64_t>& positions) {
  std::vector<int64_t> all;
  if (positions.empty()) {
    for (int64_t t = 0; t < x.size(0); ++t) all.push_back(t);
  }
  const std::vector<int64_t>& at = positions.empty() ? all : positions;
  at::Tensor out = at::empty({static_cast<int64_t>(at.size()), x.size(1), x.size(2)}, x.options());
  for (size_t i = 0; i < at.size(); ++i) {
    out[static_cast<int64_t>(i)].copy_(last_row_of_fresh_forward(layer, x.slice(0, 0, at[i] + 1)));
  }
  return out;
}

at::Tensor rollout_steps(AttentionLayer& layer, const at::Tensor& x, int64_t seed_len, int64_t horizon) {
  auto state = layer.init_state(x.size(1));
  at::Tensor y;
  for (int64_t t = 0; t < seed_len; ++t) y = layer.step(x[t], *state);
  std::vector<at::Tensor> out;
  for (int64_t h = 0; h < horizon; ++h) {
    y = layer.step(y, *state);
    out.push_back(y);
  }
  return out.empty() ? x.slice(0, 0, 0) : at::stack(out);
}

at::Tensor rollout_prefix(AttentionLayer& layer, const at::Tensor& x, int64_t seed_len, int64_t horizon) {
  at::Tensor sequence = x.slice(0, 0, seed_len);
  at::Tensor y = last_row_of_fresh_forward(layer, sequence);
  std::vector<at::Tensor> out;
  for (int64_t h = 0; h < horizon; ++h) {
    sequence = at::cat({sequence, y.unsqueeze(0)});
    y = last_row_of_fresh_forward(layer, sequence);
    out.push_back(y);
  }
  return out.empty() ? x.slice(0, 0, 0) : at::stack(out);
}

Measurer::Measurer(AttentionLayer& layer, std::vector<at::Tensor> inputs, const MeasureSettings& settings,
                   c10::Device device)
    : layer_(layer), inputs_(std::move(inputs)), settings_(settings), device_(device) {
  install_cpu_accounting();  // so CPU peaks are counted wherever a Measurer is used
}

template <typename Run>
std::vector<std::vector<double>> Measurer::repeat(Run&& run, int64_t output_bytes) {
  auto timer = make_timer(device_);
  // Reading the allocator's counters is host bookkeeping, outside the timer's marks.
  const int64_t before = allocated_bytes(device_);
  reset_peak_allocated(device_);
  auto end_probe = [&] {
    peak_bytes_ = std::max<int64_t>(0, peak_allocated_bytes(device_) - before - output_bytes);
  };
  for (int64_t i = 0; i < settings_.warmup; ++i) {
    run(inputs_[static_cast<size_t>(i) % inputs_.size()], *timer);
    timer->elapsed_ms();
    if (i == 0) end_probe();
  }
  std::vector<std::vector<double>> runs;
  double total_ms = 0;
  while (static_cast<int64_t>(runs.size()) < settings_.max_runs &&
         (static_cast<int64_t>(runs.size()) < settings_.min_runs || total_ms < settings_.min_time_ms)) {
    run(inputs_[runs.size() % inputs_.size()], *timer);
    runs.push_back(timer->elapsed_ms());
    if (settings_.warmup == 0 && runs.size() == 1) end_probe();
    total_ms += std::accumulate(runs.back().begin(), runs.back().end(), 0.0);
  }
  return runs;
}

Stats Measurer::time_full() {
  std::unique_ptr<State> state;
  auto runs = repeat([&](const at::Tensor& x, Timer& timer) {
    // Outside the marks: the state, sized for the sequence as the streaming modes size it (a KV cache
    // allocated on first use would otherwise be), is not the forward.
    state = layer_.init_state(x.size(1));
    layer_.reserve(*state, x.size(0));
    timer.mark();
    layer_.forward(x, *state);
    timer.mark();
  }, inputs_.front().numel() * inputs_.front().element_size());
  std::vector<double> totals;
  for (const auto& r : runs) totals.push_back(r.at(0));
  return summarize(totals, settings_.unstable_cv);
}

StreamTiming Measurer::stream_timing(const std::vector<std::vector<double>>& runs) const {
  StreamTiming out;
  std::vector<double> totals, tokens;
  size_t positions = runs.empty() ? 0 : runs.front().size();
  std::vector<std::vector<double>> by_position(positions);
  for (const auto& r : runs) {
    totals.push_back(std::accumulate(r.begin(), r.end(), 0.0));
    for (size_t t = 0; t < r.size(); ++t) {
      tokens.push_back(r[t] * 1000.0);
      if (t < positions) by_position[t].push_back(r[t] * 1000.0);
    }
  }
  out.total_ms = summarize(totals, settings_.unstable_cv);
  out.per_token_us = summarize(tokens, settings_.unstable_cv);
  for (const auto& p : by_position) out.per_position_us.push_back(percentile(p, 50));
  return out;
}

StreamTiming Measurer::time_steps() {
  std::unique_ptr<State> state;
  traffic_.clear();
  bool first_run = true;
  auto runs = repeat([&](const at::Tensor& x, Timer& timer) {
    state = layer_.init_state(x.size(1));
    layer_.reserve(*state, x.size(0));
    std::vector<at::Tensor> rows = x.unbind(0);  // slicing outside the marks
    // The first run also asks what each step will move (a few host arithmetic operations, no device
    // work): the bytes behind the bandwidth a step achieves.
    const bool declared = first_run && layer_.step_traffic(*state).read_bytes >= 0;
    timer.mark();
    for (const at::Tensor& row : rows) {
      if (declared) {
        const StepTraffic t = layer_.step_traffic(*state);
        traffic_.push_back(t.read_bytes + std::max<int64_t>(0, t.write_bytes));
      }
      layer_.step(row, *state);
      timer.mark();
    }
    first_run = false;
  }, inputs_.front()[0].numel() * inputs_.front().element_size());
  return stream_timing(runs);
}

StreamTiming Measurer::time_prefix() {
  auto runs = repeat([&](const at::Tensor& x, Timer& timer) {
    timer.mark();
    for (int64_t t = 1; t <= x.size(0); ++t) {
      fresh_forward(layer_, x.slice(0, 0, t));
      timer.mark();
    }
  }, inputs_.front().numel() * inputs_.front().element_size());
  return stream_timing(runs);
}

}  // namespace attnbench
