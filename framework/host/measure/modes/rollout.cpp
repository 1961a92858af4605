// Mode `rollout`: the multistep closed loop. Feed x[0..seed_len), then feed each output back as the next
// input `horizon` times, once by step() and once by prefix recompute; each token is fed exactly once.
// Gated like the consistency mode, by the same tolerance (modes/consistency.cpp).
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <limits>

namespace attnbench {
namespace {

void check_finite(const at::Tensor& y, const std::string& plugin) {
  if (!at::isfinite(y).all().item<bool>()) {
    throw PluginError(fmt::format("plugin '{}' step() in the closed loop returned NaN or Inf", plugin));
  }
}

Mode rollout_mode() {
  Mode m;
  m.name = "rollout";
  m.title = "Closed loop";
  m.help = "closed loop (run.seed_len, run.horizon): step against prefix recompute";
  m.order = 50;
  m.in_default = true;
  m.needs_causal = true;
  m.metrics = {
      {"rollout.step_vs_prefix", "error", "1", "lower",
       "error object plus `seed_len`, `horizon` and `tolerance` (as consistency.tolerance): closed loop, feeding "
       "x[0..seed_len) then each output back `horizon` times, by step against prefix recompute; each token is fed once"},
  };
  m.summary = {{"rollout", "rollout.step_vs_prefix", "rel"}};
  m.run = [](CellContext& c) {
    at::Tensor by_step = rollout_steps(c.layer, c.first(), c.cell.seed_len, c.cell.horizon);
    check_finite(by_step, c.layer.plugin().name());
    at::Tensor by_prefix = rollout_prefix(c.layer, c.first(), c.cell.seed_len, c.cell.horizon);
    nlohmann::json error = to_json(compare(by_step, by_prefix));
    error["seed_len"] = c.cell.seed_len;
    error["horizon"] = c.cell.horizon;
    error["tolerance"] = consistency_tolerance(c).value;
    return nlohmann::json{{"rollout", {{"step_vs_prefix", error}}}};
  };
  m.gate = [](const nlohmann::json& metrics, CellContext& c) {
    const nlohmann::json& e = metrics["rollout"]["step_vs_prefix"];
    const Tolerance tolerance = consistency_tolerance(c);
    if (e["rel_rms"].get<double>() <= tolerance.value) return std::vector<std::string>{};
    return std::vector<std::string>{beyond("closed loop, step vs prefix", e, tolerance)};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    const nlohmann::json& e = metrics["rollout"]["step_vs_prefix"];
    const double tolerance = e.value("tolerance", std::numeric_limits<double>::infinity());
    fmt::print(out, "  [Closed loop]     step vs prefix: {}  (seed_len={}, horizon={}){}\n", error_text(e),
               e["seed_len"].get<int64_t>(), e["horizon"].get<int64_t>(),
               e["rel_rms"].get<double>() > tolerance ? fmt::format("  (beyond the tolerance {:.1e})", tolerance) : "");
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(rollout_mode());

}  // namespace attnbench
