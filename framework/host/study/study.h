// Studies: a YAML file expanded into cells, one per point of its matrix. What a study may say is in
// schema.h; this is the reading, the matrix expansion and the checks that involve plugins.
#pragma once

#include "study/schema.h"

#include <attnbench/common.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench {

// A mistake in a study, with "file:line:column: path: what is wrong; what is valid" as its message.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MeasureSettings {
  int64_t warmup = 1;
  int64_t min_runs = 5;
  int64_t max_runs = 1000;
  double min_time_ms = 200;
  double unstable_cv = 0.10;  // coefficient of variation above which a row is flagged unstable
};

// One fully resolved point of a study. The typed fields mirror the core keys of the schema; every key,
// a mode's own included, is in `settings`.
struct Cell {
  size_t index = 0;  // 0-based position in the expanded list

  std::string embedder;
  Params embedder_params;
  int64_t samples = 1;
  int64_t seq_len = 256;

  std::string label;   // the attention entry's name
  std::string plugin;  // its plugin name or path
  Params attention_params;

  std::string device = "cpu";
  bool amp = false;
  std::string amp_dtype = "auto";  // auto: float16 on CUDA, bfloat16 on CPU
  int64_t batch = 1;
  int64_t threads = 1;
  int64_t seed = 0;
  std::vector<std::string> modes;
  int64_t seed_len = 16;
  int64_t horizon = 32;
  MeasureSettings measure;

  Settings settings;
  // Parameters of the plugins a mode names (e.g. quality tasks): key path -> plugin name -> params.
  std::map<std::string, std::map<std::string, Params>> plugin_params;

  std::map<std::string, std::string> axes;  // matrix axis -> value, for display
  nlohmann::json resolved;                  // every setting, canonical (the results' "params")
  std::string hash;                         // of the hashed part of `resolved`; identifies the cell across runs

  bool has_mode(const std::string& mode) const;
};

struct Study {
  std::string file;
  std::string name;
  std::string description;
  std::string results_path;
  std::string save_outputs_dir;
  std::vector<Cell> cells;
};

struct LoadOptions {
  std::vector<std::string> overrides;  // "path=value", as given to --set
  // Whether attention plugin `plugin` has parameter `key`; a matrix axis over attention.params.<key> applies
  // only to layers that have it. Unset: every axis applies to every layer.
  std::function<bool(const std::string& plugin, const std::string& key)> has_param;
  // An attention plugin's parameter names, comma-separated, for the message about a path that names
  // none of them. Unset: the message names the plugins only.
  std::function<std::string(const std::string& plugin)> param_names;
  // Validates a plugin's parameters and fills its defaults; throws (std::exception) naming what is wrong.
  std::function<Params(attnbench_plugin_kind kind, const std::string& plugin, const Params& given)> complete_params;
  // Asks the plugin itself about complete parameters (its validate()); `embed_dim` is the tokens' width
  // for attention and task plugins, 0 when unknown. Returns the width an embedder will produce (0:
  // unknown) and fills `failure` when a parameter is wrong.
  std::function<int64_t(attnbench_plugin_kind kind, const std::string& plugin, const Params& params, int64_t embed_dim,
                        Failure& failure)>
      validate;
};

Study load_study(const std::string& path, const LoadOptions& options = {});
Study load_study_text(const std::string& text, const std::string& file_name, const LoadOptions& options = {});

nlohmann::json params_to_json(const Params& params);
std::string param_value_text(const ParamValue& value);

}  // namespace attnbench
