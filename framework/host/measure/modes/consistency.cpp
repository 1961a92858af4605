// Mode `consistency`: step() and prefix recompute against forward(), position by position. They compute
// the same function, so any difference beyond rounding is a bug in the layer's streaming form.
//
// step against forward covers every position. Prefix recompute costs a forward per position, O(L²) in
// all, so past 1024 tokens it checks a sample (consistency.positions): the first and last positions and
// one drawn, with the cell's seed, from each equal stretch between them. The result says which.
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

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
    return nlohmann::json{{"consistency",
                           {{"step_vs_full", to_json(compare(steps, c.full_output()))},
                            {"prefix_vs_step", to_json(compare(c.prefix_output(positions), step_rows))},
                            {"prefix_positions", checked}}}};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    const nlohmann::json& e = metrics["consistency"];
    fmt::print(out, "  [Consistency]     step vs full: {}\n", error_text(e["step_vs_full"]));
    const nlohmann::json& p = e["prefix_positions"];
    fmt::print(out, "                    prefix vs step: {}{}\n", error_text(e["prefix_vs_step"]),
               p.is_array() ? fmt::format("  ({} positions sampled)", p.size()) : "");
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(consistency_mode(), {positions_key()});

}  // namespace attnbench
