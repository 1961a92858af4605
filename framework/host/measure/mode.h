// Measurement modes as a registry. A mode is one definition: its name, what it needs, how it runs, the
// metrics it writes (path, kind, unit) and how the console shows them. Study validation (run.modes),
// --dry-run, the JSON, the console report and summary, docs/results.md's metric table and the Python
// scripts' metric list (`runner describe`) all come from the registered modes.
//
// Adding a mode is one file in host/measure/modes/ that calls ATTNBENCH_REGISTER_MODE, plus its test.
#pragma once

#include "measure/protocols.h"
#include "plugins/loader.h"
#include "study/study.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace attnbench {

class EmbeddingSource;

// What a mode reads while it measures one cell. Outputs that several modes compare are computed once,
// for the first batch, and kept only as long as the cell runs.
class CellContext {
 public:
  CellContext(const Cell& cell, AttentionLayer& layer, const AttentionInfo& info, std::vector<at::Tensor> batches,
              c10::Device device, EmbeddingSource* data = nullptr);

  const Cell& cell;
  AttentionLayer& layer;
  const AttentionInfo& info;
  const c10::Device device;

  const std::vector<at::Tensor>& batches() const { return batches_; }  // each (L, B, E), device and dtype
  const at::Tensor& first() const { return batches_.front(); }
  int64_t tokens() const { return first().size(0) * first().size(1); }  // L * B of one run
  Measurer& measurer() { return measurer_; }
  EmbeddingSource* data() const { return data_; }  // the study's embedder, for modes that need more text

  // forward and step over the first batch, (L, B, E) each, and prefix recompute at `positions` (every
  // position when empty), (P, B, E); computed once, checked to be finite.
  const at::Tensor& full_output();
  const at::Tensor& step_output();
  const at::Tensor& prefix_output(const std::vector<int64_t>& positions = {});
  bool has_prefix_output() const { return prefix_.defined(); }
  const std::vector<int64_t>& prefix_positions() const { return prefix_positions_; }

 private:
  std::vector<at::Tensor> batches_;
  Measurer measurer_;
  EmbeddingSource* data_;
  at::Tensor full_, step_, prefix_;
  std::vector<int64_t> prefix_positions_;
};

// One metric a mode writes, at `path` under the result's "metrics" (dots separate levels).
struct MetricSpec {
  std::string path;
  std::string kind;    // stats, error, number, integer, list, object, text (docs/results.md says each)
  std::string unit;    // ms, us, tokens/s, bytes, 1 (a pure number), ...
  std::string better;  // lower, higher, or "" where neither is better
  std::string help;
};

// A column of the summary table after a study: the value at `path` under "metrics".
struct SummaryColumn {
  std::string title;
  std::string path;
  std::string format;  // ms (a stats object's median), rate (tokens/s), rel (an error's rel_rms), number
};

struct Mode {
  std::string name;   // as in run.modes and as the first key of its metrics
  std::string title;  // its console section, e.g. "Full sequence"
  std::string help;
  int order = 0;              // console and summary order
  bool selectable = true;     // false: runs in every cell (state size), not listed in run.modes
  bool in_default = false;    // in run.modes when a study lists none
  bool needs_causal = false;  // skipped, with the reason, for a layer whose forward is unmasked
  std::vector<MetricSpec> metrics;
  std::vector<SummaryColumn> summary;
  std::function<nlohmann::json(CellContext&)> run;  // the metrics it measured, merged into "metrics"
  // A consistency gate: what in the metrics it wrote is beyond its tolerance, one sentence each; any
  // makes the cell `inconsistent` (its metrics kept). Unset: the mode has no gate.
  std::function<std::vector<std::string>(const nlohmann::json& metrics, CellContext& context)> gate;
  std::function<void(const nlohmann::json& metrics, std::ostream& out)> print;  // its console lines
};

// Registers a mode (and the study keys it owns); returns true for use in a static initializer.
bool register_mode(Mode mode, std::vector<StudyKey> keys = {});
const std::vector<Mode>& modes();  // by order
const Mode* find_mode(const std::string& name);

// Runs the cell's selected modes and the always-on ones, in order; returns the cell's "metrics".
nlohmann::json measure_cell(CellContext& context);

// The gates of the modes that ran in the cell, in order: every sentence saying what is beyond its
// tolerance; empty when the cell is consistent.
std::vector<std::string> inconsistencies(const nlohmann::json& metrics, CellContext& context);

// The tolerance of the consistency gates for the cell's compute dtype, and the study key that sets it
// (measure.tolerance_fp32, _fp16 or _bf16: modes/consistency.cpp owns them).
struct Tolerance {
  double value = 0;
  std::string key;
};
Tolerance consistency_tolerance(const CellContext& context);
// "step vs full: relative RMS 1.05e+00 is beyond measure.tolerance_fp32 = 1.0e-04"
std::string beyond(const std::string& what, const nlohmann::json& error, const Tolerance& tolerance);

// The console report of one measured cell, mode by mode.
void print_metrics(const nlohmann::json& metrics, std::ostream& out);

// docs/results.md's metric table and the machine-readable list scripts read (`runner describe`).
std::string metrics_markdown();
nlohmann::json metrics_json();

// The value at a dotted `path` under `root`, or null.
const nlohmann::json& json_at(const nlohmann::json& root, const std::string& path);

// Console helpers the modes share: "1.234 ms", "rel 1.2e-07  max 3.4e-08", "(n=5, cv 1.2%)".
std::string ms_text(const nlohmann::json& stats);
std::string error_text(const nlohmann::json& error);
std::string stability_text(const nlohmann::json& stats);
std::string bytes_text(int64_t bytes);  // "393.2 KB"

#define ATTNBENCH_MODE_CONCAT_(a, b) a##b
#define ATTNBENCH_MODE_NAME_(line) ATTNBENCH_MODE_CONCAT_(attnbench_mode_registered_, line)
// In a mode's .cpp: ATTNBENCH_REGISTER_MODE(make_my_mode()); or with keys: (make_my_mode(), my_keys()).
#define ATTNBENCH_REGISTER_MODE(...) \
  static const bool ATTNBENCH_MODE_NAME_(__LINE__) = ::attnbench::register_mode(__VA_ARGS__)

}  // namespace attnbench
