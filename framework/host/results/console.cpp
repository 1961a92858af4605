#include "results/console.h"

#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace attnbench {
namespace {

std::string cell_text(const nlohmann::json& value, const std::string& format) {
  if (value.is_null()) return "-";
  if (format == "ms") return value.is_object() && value.contains("median") ? ms_text(value) : "-";
  if (format == "rel") return value.is_object() && value.contains("rel_rms") ? fmt::format("{:.2e}", value["rel_rms"].get<double>()) : "-";
  if (!value.is_number()) return "-";
  if (format == "rate") return fmt::format("{:.0f}", value.get<double>());
  return fmt::format("{:.4g}", value.get<double>());
}

}  // namespace

void print_summary(const std::vector<nlohmann::json>& rows, std::ostream& out) {
  if (rows.empty()) return;
  // The columns of the modes that wrote something in at least one row.
  std::vector<SummaryColumn> columns;
  for (const Mode& mode : modes()) {
    for (const SummaryColumn& c : mode.summary) {
      for (const auto& r : rows) {
        if (r.contains("metrics") && !json_at(r["metrics"], c.path).is_null()) {
          columns.push_back(c);
          break;
        }
      }
    }
  }
  std::string header = fmt::format("\n{:<40} {:>8}", "cell", "status");
  for (const SummaryColumn& c : columns) header += fmt::format(" {:>12}", c.title);
  fmt::print(out, "{}\n", header);
  for (const auto& r : rows) {
    static const nlohmann::json no_metrics = nlohmann::json::object();
    const nlohmann::json& m = r.contains("metrics") ? r["metrics"] : no_metrics;
    std::string line = fmt::format("{:<40} {:>8}", r["label_text"].get<std::string>().substr(0, 40), r["status"].get<std::string>());
    for (const SummaryColumn& c : columns) line += fmt::format(" {:>12}", cell_text(json_at(m, c.path), c.format));
    fmt::print(out, "{}\n", line);
  }
}

}  // namespace attnbench
