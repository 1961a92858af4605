// Modes `step` and `prefix`: the two ways to stream a sequence, token by token. step() carries the
// state (a KV cache, a reservoir); prefix recompute runs forward() over x[0..t] from a fresh state for
// every t, as a layer without a streaming form would have to.
#include "measure/device.h"
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>

namespace attnbench {
namespace {

std::vector<MetricSpec> stream_metrics(const std::string& mode, const std::string& what, const std::string& memory) {
  return {
      {mode + ".time_ms", "stats", "ms", "lower", "all L tokens: " + what},
      {mode + ".per_token_us", "stats", "us", "lower", "every token of every run (no samples)"},
      {mode + ".per_position_us", "list", "us", "lower", "L values: median latency of the token at each position"},
      {mode + ".tokens_per_s", "number", "tokens/s", "higher", "L · B / median of time_ms"},
      {mode + ".peak_bytes", "integer", "bytes", "lower", memory},
  };
}

nlohmann::json stream_json(const StreamTiming& s, CellContext& c) {
  return {{"time_ms", to_json(s.total_ms)},
          {"per_token_us", to_json(s.per_token_us, /*with_samples=*/false)},
          {"per_position_us", s.per_position_us},
          {"tokens_per_s", s.total_ms.median > 0 ? static_cast<double>(c.tokens()) / (s.total_ms.median / 1000.0) : 0.0},
          {"peak_bytes", c.measurer().peak_bytes()}};
}

void print_stream(const std::string& mode, const nlohmann::json& metrics, std::ostream& out) {
  const nlohmann::json& s = metrics[mode];
  fmt::print(out, "  [Streaming {:<6}] {:>12} | per token p50 {:.1f} us, p99 {:.1f} us {} | memory {}\n", mode,
             ms_text(s["time_ms"]), s["per_token_us"]["median"].get<double>(), s["per_token_us"]["p99"].get<double>(),
             stability_text(s["time_ms"]), bytes_text(s["peak_bytes"].get<int64_t>()));
}

Mode step_mode() {
  Mode m;
  m.name = "step";
  m.title = "Streaming step";
  m.help = "step() once per token, carrying the state (cached KV, incremental reservoir)";
  m.order = 20;
  m.in_default = true;
  m.metrics = stream_metrics("step", "L calls of step, one token each",
                             "tensor memory the layer held at its peak while streaming L tokens, beyond the inputs "
                             "and one step's output: its state (a KV cache grows with L, a reservoir does not)");
  m.metrics.push_back({"step.bandwidth_gbps", "list", "GB/s", "higher",
                       "L values: the bytes the layer declares a step at that position reads and writes, over its "
                       "median latency (layers that declare nothing: absent)"});
  m.metrics.push_back({"step.peak_gbps", "number", "GB/s", "",
                       "the rate this device reads a buffer of a step's size (CPU: one core, best of 18 passes; CUDA: "
                       "one kernel reading it to a gigabyte); bandwidth_gbps / peak_gbps is the fraction of peak a "
                       "step reaches"});
  m.metrics.push_back({"step.traffic_bytes", "object", "bytes", "",
                       "`{first, last}`: the bytes read and written by the first and the last step"});
  m.summary = {{"step (all)", "step.time_ms", "ms"}};
  m.run = [](CellContext& c) {
    const StreamTiming timing = c.measurer().time_steps();
    nlohmann::json out = stream_json(timing, c);
    const std::vector<int64_t>& traffic = c.measurer().step_traffic();
    if (!traffic.empty() && traffic.size() == timing.per_position_us.size()) {
      std::vector<double> gbps;
      for (size_t t = 0; t < traffic.size(); ++t) {
        gbps.push_back(timing.per_position_us[t] > 0 ? static_cast<double>(traffic[t]) / (timing.per_position_us[t] * 1e3) : 0.0);
      }
      out["bandwidth_gbps"] = gbps;
      out["peak_gbps"] = read_bandwidth_gbps(c.device, traffic[traffic.size() / 2]);
      out["traffic_bytes"] = {{"first", traffic.front()}, {"last", traffic.back()}};
    }
    return nlohmann::json{{"step", out}};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    print_stream("step", metrics, out);
    const nlohmann::json& s = metrics["step"];
    if (!s.contains("bandwidth_gbps")) return;
    std::vector<double> gbps = s["bandwidth_gbps"];
    std::nth_element(gbps.begin(), gbps.begin() + static_cast<long>(gbps.size() / 2), gbps.end());
    const double median = gbps[gbps.size() / 2], peak = s["peak_gbps"];
    fmt::print(out, "                    {} a token, {:.1f} GB/s at the median position, {:.0f}% of the {:.1f} GB/s "
                    "this device reads it at\n",
               bytes_text(s["traffic_bytes"]["last"].get<int64_t>()), median, 100 * median / peak, peak);
  };
  return m;
}

Mode prefix_mode() {
  Mode m;
  m.name = "prefix";
  m.title = "Streaming prefix";
  m.help = "for each t, forward() on x[0..t] from a fresh state, keeping the last row";
  m.order = 30;
  m.in_default = true;
  m.metrics = stream_metrics("prefix", "for each t, forward on x[0..t] from a fresh state, the last row kept",
                             "tensor memory the layer held at its peak during the L forwards, beyond the inputs and "
                             "an (L, B, E) output");
  m.summary = {{"prefix", "prefix.time_ms", "ms"}};
  m.run = [](CellContext& c) { return nlohmann::json{{"prefix", stream_json(c.measurer().time_prefix(), c)}}; };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) { print_stream("prefix", metrics, out); };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(step_mode());
ATTNBENCH_REGISTER_MODE(prefix_mode());

}  // namespace attnbench
