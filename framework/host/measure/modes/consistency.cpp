// Mode `consistency`: step() and prefix recompute against forward(), position by position. They compute
// the same function, so any difference beyond rounding is a bug in the layer's streaming form.
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace attnbench {
namespace {

Mode consistency_mode() {
  Mode m;
  m.name = "consistency";
  m.title = "Consistency";
  m.help = "step and prefix-recompute outputs against forward, every position";
  m.order = 40;
  m.in_default = true;
  m.needs_causal = true;
  m.metrics = {
      {"consistency.step_vs_full", "error", "1", "lower", "step outputs against forward outputs, every position"},
      {"consistency.prefix_vs_step", "error", "1", "lower", "prefix-recompute outputs against step outputs"},
      {"consistency.skipped", "text", "", "", "instead of the two above, for a non-causal layer"},
  };
  m.summary = {{"step~full", "consistency.step_vs_full", "rel"}, {"prefix~step", "consistency.prefix_vs_step", "rel"}};
  m.run = [](CellContext& c) {
    return nlohmann::json{{"consistency",
                           {{"step_vs_full", to_json(compare(c.step_output(), c.full_output()))},
                            {"prefix_vs_step", to_json(compare(c.prefix_output(), c.step_output()))}}}};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    const nlohmann::json& e = metrics["consistency"];
    fmt::print(out, "  [Consistency]     step vs full: {}\n", error_text(e["step_vs_full"]));
    fmt::print(out, "                    prefix vs step: {}\n", error_text(e["prefix_vs_step"]));
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(consistency_mode());

}  // namespace attnbench
