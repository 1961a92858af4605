// Mode `consistency`: step() and prefix recompute against forward(), position by position. They compute
// the same function, so any difference beyond rounding is a bug in the layer's streaming form.
//
// step against forward covers every position. Prefix recompute costs a forward per position, O(L²) in
// all, so past 1024 tokens it checks a sample (consistency.positions): the first and last positions and
// one drawn, with the cell's seed, from each equal stretch between them. The result says which.
//
// With a batch of two or more, the first and last batch rows also run alone: a layer that mixes the rows
// of a batch (batch and head axes swapped) computes the same wrong thing by step and by forward.
//
// The gate: any of these, or the closed loop (rollout.cpp), beyond the tolerance for the cell's dtype
// (measure.tolerance_fp32, _fp16, _bf16, owned here) makes the cell `inconsistent`.
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <limits>
#include <random>

namespace attnbench {
namespace {

constexpr int64_t kEveryPositionUpTo = 1024;
constexpr int64_t kSampledPositions = 16;

StudyKey positions_key() {
  StudyKey k;
  k.path = "consistency.positions";
  k.type = SettingType::kInt;
  k.default_text = "0";
  k.min = -1;
  k.hashed = Hashed::kWhenSet;
  k.help = "positions prefix recompute checks: 0 every one up to L = 1024, else 16 sampled (first and last "
           "included, seeded); -1 every one; N >= 2: N sampled";
  return k;
}

StudyKey tolerance_key(const std::string& dtype, const std::string& value, const std::string& when) {
  StudyKey k;
  k.path = "measure.tolerance_" + dtype;
  k.type = SettingType::kFloat;
  k.default_text = value;
  k.min = 0;
  k.hashed = Hashed::kWhenSet;
  k.help = "relative RMS beyond which step, prefix recompute, a batch row alone or the closed loop, against "
           "forward, makes the cell inconsistent, " + when;
  return k;
}

// The positions prefix recompute is checked at; empty means every one.
std::vector<int64_t> sample_positions(int64_t setting, int64_t length, int64_t seed) {
  const int64_t wanted = setting == 0 ? (length <= kEveryPositionUpTo ? length : kSampledPositions)
                                      : (setting < 0 ? length : std::max<int64_t>(2, setting));
  if (wanted >= length) return {};
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::vector<int64_t> out{0};
  // wanted - 2 stretches of the interior [1, length - 1), one position drawn in each.
  const int64_t inner = wanted - 2;
  for (int64_t i = 0; i < inner; ++i) {
    const int64_t lo = 1 + (length - 2) * i / inner, hi = 1 + (length - 2) * (i + 1) / inner;
    out.push_back(hi > lo ? std::uniform_int_distribution<int64_t>(lo, hi - 1)(rng) : lo);
  }
  out.push_back(length - 1);
  return out;
}

Mode consistency_mode() {
  Mode m;
  m.name = "consistency";
  m.title = "Consistency";
  m.help = "step and prefix-recompute outputs against forward (prefix at consistency.positions)";
  m.order = 40;
  m.in_default = true;
  m.needs_causal = true;
  m.metrics = {
      {"consistency.step_vs_full", "error", "1", "lower", "step outputs against forward outputs, every position"},
      {"consistency.prefix_vs_step", "error", "1", "lower",
       "prefix-recompute outputs against step outputs, at the positions checked"},
      {"consistency.prefix_positions", "list", "positions", "",
       "the 0-based positions prefix recompute was checked at, or \"all\""},
      {"consistency.batch_vs_alone", "error", "1", "lower",
       "with a batch of 2 or more: the first and last batch rows run alone against the same rows of the batch's forward"},
      {"consistency.tolerance", "number", "1", "",
       "the relative RMS these and the closed loop were held to (measure.tolerance_<dtype>); beyond it the cell is "
       "`inconsistent`"},
      {"consistency.skipped", "text", "", "", "instead of the above, for a non-causal layer"},
  };
  m.summary = {{"step~full", "consistency.step_vs_full", "rel"}, {"prefix~step", "consistency.prefix_vs_step", "rel"}};
  m.run = [](CellContext& c) {
    const std::vector<int64_t> positions =
        sample_positions(c.cell.settings.get_int("consistency.positions"), c.first().size(0), c.cell.seed);
    const at::Tensor& steps = c.step_output();
    const at::Tensor step_rows =
        positions.empty() ? steps : steps.index_select(0, at::tensor(positions, at::kLong).to(steps.device()));
    nlohmann::json checked = positions.empty() ? nlohmann::json("all") : nlohmann::json(positions);
    nlohmann::json out = {{"step_vs_full", to_json(compare(steps, c.full_output()))},
                          {"prefix_vs_step", to_json(compare(c.prefix_output(positions), step_rows))},
                          {"prefix_positions", checked},
                          {"tolerance", consistency_tolerance(c).value}};
    const int64_t batch = c.first().size(1);
    if (batch > 1) {
      const at::Tensor rows = at::tensor(std::vector<int64_t>{0, batch - 1}, at::kLong).to(c.first().device());
      const at::Tensor alone =
          at::cat({run_full(c.layer, c.first().slice(1, 0, 1)), run_full(c.layer, c.first().slice(1, batch - 1))}, 1);
      out["batch_vs_alone"] = to_json(compare(alone, c.full_output().index_select(1, rows)));
    }
    return nlohmann::json{{"consistency", out}};
  };
  m.gate = [](const nlohmann::json& metrics, CellContext& c) {
    const nlohmann::json& e = metrics["consistency"];
    const Tolerance tolerance = consistency_tolerance(c);
    std::vector<std::string> out;
    for (const auto& [path, label] : {std::pair<const char*, const char*>{"step_vs_full", "step vs full"},
                                      {"prefix_vs_step", "prefix vs step"},
                                      {"batch_vs_alone", "batch rows alone vs in the batch"}}) {
      if (e.contains(path) && e[path]["rel_rms"].get<double>() > tolerance.value) {
        out.push_back(beyond(label, e[path], tolerance));
      }
    }
    return out;
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    const nlohmann::json& e = metrics["consistency"];
    const double tolerance = e.value("tolerance", std::numeric_limits<double>::infinity());
    auto mark = [&](const nlohmann::json& error) {
      return error["rel_rms"].get<double>() > tolerance ? fmt::format("  (beyond the tolerance {:.1e})", tolerance) : "";
    };
    fmt::print(out, "  [Consistency]     step vs full: {}{}\n", error_text(e["step_vs_full"]), mark(e["step_vs_full"]));
    const nlohmann::json& p = e["prefix_positions"];
    fmt::print(out, "                    prefix vs step: {}{}{}\n", error_text(e["prefix_vs_step"]),
               p.is_array() ? fmt::format("  ({} positions sampled)", p.size()) : "", mark(e["prefix_vs_step"]));
    if (e.contains("batch_vs_alone")) {
      fmt::print(out, "                    batch rows alone: {}{}\n", error_text(e["batch_vs_alone"]),
                 mark(e["batch_vs_alone"]));
    }
  };
  return m;
}

}  // namespace

Tolerance consistency_tolerance(const CellContext& context) {
  const c10::ScalarType dtype = context.first().scalar_type();
  const std::string key = dtype == at::kHalf ? "measure.tolerance_fp16"
                          : dtype == at::kBFloat16 ? "measure.tolerance_bf16" : "measure.tolerance_fp32";
  return {context.cell.settings.get_float(key), key};
}

std::string beyond(const std::string& what, const nlohmann::json& error, const Tolerance& tolerance) {
  return fmt::format("{}: relative RMS {:.2e} is beyond {} = {:.1e}", what, error["rel_rms"].get<double>(), tolerance.key,
                     tolerance.value);
}

// Rounding alone leaves mha's and reservoir's step and forward about 1e-6 apart in float32 (docs/bench: 5e-7
// to 1.4e-6 up to L = 2048), 4e-4 in float16 (an H100) and 1.4e-3 in bfloat16 (mha, L = 512, this CPU); the
// defaults sit 30 to 100 times above, far below what a wrong step gives.
ATTNBENCH_REGISTER_MODE(consistency_mode(), {positions_key(), tolerance_key("fp32", "1e-4", "in float32"),
                                             tolerance_key("fp16", "1e-2", "in float16 (run.amp on CUDA)"),
                                             tolerance_key("bf16", "5e-2", "in bfloat16 (run.amp on the CPU)")});

}  // namespace attnbench
