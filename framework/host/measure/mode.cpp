#include "measure/mode.h"

#include "measure/isolate.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>

namespace attnbench {
namespace {

std::vector<Mode>& registry() {
  static std::vector<Mode> modes;
  return modes;
}

std::vector<std::string> mode_names(bool defaults_only) {
  std::vector<std::string> out;
  for (const Mode& m : modes()) {
    if (m.selectable && (!defaults_only || m.in_default)) out.push_back(m.name);
  }
  return out;
}

// run.modes belongs to the registry: its choices and its default are the registered modes.
StudyKey modes_key() {
  StudyKey k;
  k.path = "run.modes";
  k.type = SettingType::kStringList;
  // Written out rather than derived: the default is part of every cell's hash, so a mode added later
  // must not change it (a new mode is opt-in until then).
  k.default_text = "[full, step, prefix, consistency, rollout]";
  k.min = 1;
  k.choices = [] { return mode_names(/*defaults_only=*/false); };
  k.help = "what to measure (runner describe lists the modes); cells always report the state's size";
  k.to_cell = [](Cell& cell, const SettingValue& v) { cell.modes = std::get<std::vector<std::string>>(v); };
  return k;
}
const bool modes_key_registered = register_study_keys({modes_key()});

void check_finite(const at::Tensor& y, const std::string& plugin, const char* call) {
  if (!at::isfinite(y).all().item<bool>()) throw PluginError(fmt::format("plugin '{}' {} returned NaN or Inf", plugin, call));
}

}  // namespace

CellContext::CellContext(const Cell& cell_, AttentionLayer& layer_, const AttentionInfo& info_,
                         std::vector<at::Tensor> batches, c10::Device device_, EmbeddingSource* data)
    : cell(cell_),
      layer(layer_),
      info(info_),
      device(device_),
      batches_(std::move(batches)),
      measurer_(layer_, batches_, cell_.measure, device_),
      data_(data) {}

const at::Tensor& CellContext::full_output() {
  if (!full_.defined()) {
    full_ = run_full(layer, first());
    check_finite(full_, layer.plugin().name(), "forward()");
  }
  return full_;
}

const at::Tensor& CellContext::step_output() {
  if (!step_.defined()) {
    step_ = run_steps(layer, first());
    check_finite(step_, layer.plugin().name(), "step()");
  }
  return step_;
}

const at::Tensor& CellContext::prefix_output(const std::vector<int64_t>& positions) {
  if (!prefix_.defined() || positions != prefix_positions_) {
    prefix_ = at::Tensor();  // freed before the next is made
    prefix_ = run_prefix(layer, first(), positions);
    prefix_positions_ = positions;
    check_finite(prefix_, layer.plugin().name(), "forward() in the prefix recompute");
  }
  return prefix_;
}

bool register_mode(Mode mode, std::vector<StudyKey> keys) {
  if (find_mode(mode.name) != nullptr) throw std::logic_error("mode '" + mode.name + "' is registered twice");
  std::vector<Mode>& all = registry();
  all.insert(std::upper_bound(all.begin(), all.end(), mode, [](const Mode& a, const Mode& b) { return a.order < b.order; }),
             std::move(mode));
  return register_study_keys(std::move(keys));
}

const std::vector<Mode>& modes() { return registry(); }

const Mode* find_mode(const std::string& name) {
  for (const Mode& m : registry()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

nlohmann::json measure_cell(CellContext& context) {
  nlohmann::json metrics = nlohmann::json::object();
  // No forward here for its own sake: a cell that only streams a long sequence should not pay for (or
  // hold) a whole-sequence forward. The modes that use forward's output check it is finite, and the state
  // mode, which every cell runs, checks step's.
  for (const Mode& mode : modes()) {
    if (mode.selectable && !context.cell.has_mode(mode.name)) continue;
    if (mode.needs_causal && !context.info.causal) {
      metrics[mode.name] = {{"skipped", "the layer is not causal (forward is unmasked), so step cannot match it"}};
      continue;
    }
    set_activity("measuring mode '" + mode.name + "'");
    metrics.update(mode.run(context));
  }
  return metrics;
}

std::vector<std::string> inconsistencies(const nlohmann::json& metrics, CellContext& context) {
  std::vector<std::string> out;
  for (const Mode& mode : modes()) {
    const nlohmann::json& own = json_at(metrics, mode.name);
    if (!mode.gate || !own.is_object() || own.contains("skipped")) continue;
    for (std::string& sentence : mode.gate(metrics, context)) out.push_back(std::move(sentence));
  }
  return out;
}

void print_metrics(const nlohmann::json& metrics, std::ostream& out) {
  for (const Mode& mode : modes()) {
    const nlohmann::json& own = json_at(metrics, mode.name);
    if (own.is_object() && own.contains("skipped")) {
      fmt::print(out, "  {:<18}skipped: {}\n", "[" + mode.title + "]", own["skipped"].get<std::string>());
    } else if (mode.print && (!mode.selectable || !own.is_null())) {
      mode.print(metrics, out);
    }
  }
}

std::string metrics_markdown() {
  std::string out = "| metric | kind | unit | better | mode | meaning |\n|---|---|---|---|---|---|\n";
  for (const Mode& mode : modes()) {
    for (const MetricSpec& m : mode.metrics) {
      out += fmt::format("| `metrics.{}` | {} | {} | {} | {} | {} |\n", m.path, m.kind, m.unit,
                         m.better.empty() ? "" : m.better, mode.selectable ? mode.name : "(every cell)", m.help);
    }
  }
  return out;
}

nlohmann::json metrics_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const Mode& mode : modes()) {
    nlohmann::json metrics = nlohmann::json::array();
    for (const MetricSpec& m : mode.metrics) {
      metrics.push_back({{"path", m.path}, {"kind", m.kind}, {"unit", m.unit}, {"better", m.better}, {"help", m.help}});
    }
    nlohmann::json columns = nlohmann::json::array();
    for (const SummaryColumn& c : mode.summary) columns.push_back({{"title", c.title}, {"path", c.path}, {"format", c.format}});
    out.push_back({{"name", mode.name}, {"title", mode.title}, {"help", mode.help}, {"selectable", mode.selectable},
                   {"default", mode.in_default}, {"needs_causal", mode.needs_causal}, {"metrics", metrics},
                   {"summary", columns}});
  }
  return out;
}

const nlohmann::json& json_at(const nlohmann::json& root, const std::string& path) {
  static const nlohmann::json null_value;
  const nlohmann::json* node = &root;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return null_value;
    node = &(*node)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *node;
}

std::string ms_text(const nlohmann::json& stats) {
  if (stats.is_null()) return "-";
  return fmt::format("{:.3f} ms", stats["median"].get<double>());
}

std::string error_text(const nlohmann::json& e) {
  if (e.is_null() || !e.contains("rel_rms")) return "-";
  return fmt::format("rel {:.3e}  max {:.3e}", e["rel_rms"].get<double>(), e["max_abs"].get<double>());
}

std::string bytes_text(int64_t bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

std::string stability_text(const nlohmann::json& s) {
  return fmt::format("(n={}, cv {:.1f}%{})", s["n"].get<int64_t>(), 100 * s["cv"].get<double>(),
                     s["unstable"].get<bool>() ? ", UNSTABLE" : "");
}

}  // namespace attnbench
