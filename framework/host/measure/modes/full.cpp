// Mode `full`: one forward over all L tokens from an empty state.
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace attnbench {
namespace {

Mode full_mode() {
  Mode m;
  m.name = "full";
  m.title = "Full sequence";
  m.help = "forward() over the whole sequence, timed from an empty state";
  m.order = 10;
  m.in_default = true;
  m.metrics = {
      {"full.time_ms", "stats", "ms", "lower", "one forward over all L tokens from an empty state"},
      {"full.tokens_per_s", "number", "tokens/s", "higher", "L · B / median of time_ms"},
      {"full.peak_bytes", "integer", "bytes", "lower",
       "tensor memory the layer held at its peak during one forward, beyond its input and output (state included)"},
  };
  m.summary = {{"full", "full.time_ms", "ms"}, {"tok/s full", "full.tokens_per_s", "rate"}};
  m.run = [](CellContext& c) {
    c.full_output();  // a layer whose forward returns NaN fails here, before any timing
    Stats s = c.measurer().time_full();
    const double tokens_per_s = s.median > 0 ? static_cast<double>(c.tokens()) / (s.median / 1000.0) : 0.0;
    return nlohmann::json{
        {"full", {{"time_ms", to_json(s)}, {"tokens_per_s", tokens_per_s}, {"peak_bytes", c.measurer().peak_bytes()}}}};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    const nlohmann::json& f = metrics["full"];
    fmt::print(out, "  [Full sequence]  {:>12} | throughput {:.1f} tok/s {} | memory {}\n", ms_text(f["time_ms"]),
               f["tokens_per_s"].get<double>(), stability_text(f["time_ms"]), bytes_text(f["peak_bytes"].get<int64_t>()));
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(full_mode());

}  // namespace attnbench
