#include "config.h"

#include "utf8.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace attnbench {
namespace {

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep)) parts.push_back(item);
  return parts;
}

std::string node_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// A value that replaces what the file says at a dotted path: a matrix axis value (its own node, so its
// mark points into the file) or a --set (origin names it, since its node was parsed from the argument).
struct Override {
  YAML::Node value;
  std::string origin;
};
using Overrides = std::map<std::string, Override>;

// Reads typed values out of one YAML mapping plus the overrides under its path, with errors that say
// where and what is valid.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& file, std::vector<std::string> keys,
          const Overrides* overrides = nullptr)
      : node_(node), path_(std::move(path)), file_(file), overrides_(overrides) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) fail(node_, "must be a mapping");
    if (keys.empty()) return;  // a free-form map (plugin parameters): the plugin checks the keys
    auto known = [&](const std::string& key) { return std::find(keys.begin(), keys.end(), key) != keys.end(); };
    if (node_ && node_.IsMap()) {
      for (const auto& kv : node_) {
        if (!kv.first.IsScalar()) fail(kv.first, "keys must be plain words");
        std::string key = kv.first.Scalar();
        if (!known(key)) fail(kv.first, fmt::format("unknown key '{}'; valid keys: {}", key, join(keys)), key);
      }
    }
    for (const std::string& key : override_keys()) {
      if (!known(key)) fail(get(key), fmt::format("unknown key '{}'; valid keys: {}", key, join(keys)), key);
    }
  }

  // The first path component below this section of every override that lands inside it.
  std::vector<std::string> override_keys() const {
    std::vector<std::string> out;
    if (overrides_ == nullptr) return out;
    const std::string prefix = path_.empty() ? "" : path_ + ".";
    for (const auto& [path, value] : *overrides_) {
      if (path.compare(0, prefix.size(), prefix) != 0) continue;
      std::string key = split(path.substr(prefix.size()), '.').front();
      if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(key);
    }
    return out;
  }

  YAML::Node get(const std::string& key) const {
    if (const Override* o = find_override(key)) return o->value;
    if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    return node_[key];
  }

  int64_t get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max = INT64_MAX) const {
    YAML::Node v = get(key);
    if (!v) return fallback;
    int64_t out = 0;
    if (!v.IsScalar() || !YAML::convert<int64_t>::decode(v, out)) {
      fail(v, fmt::format("'{}' is not an integer", node_text(v)), key);
    }
    if (out < min || out > max) {
      fail(v, max == INT64_MAX ? fmt::format("{} is out of range; must be >= {}", out, min)
                               : fmt::format("{} is out of range; must be in [{}, {}]", out, min, max),
           key);
    }
    return out;
  }

  double get_float(const std::string& key, double fallback, double min) const {
    YAML::Node v = get(key);
    if (!v) return fallback;
    double out = 0;
    if (!v.IsScalar() || !YAML::convert<double>::decode(v, out)) fail(v, fmt::format("'{}' is not a number", node_text(v)), key);
    if (!(out >= min)) fail(v, fmt::format("{} is out of range; must be >= {}", out, min), key);
    return out;
  }

  bool get_bool(const std::string& key, bool fallback) const {
    YAML::Node v = get(key);
    if (!v) return fallback;
    bool out = false;
    if (!v.IsScalar() || !YAML::convert<bool>::decode(v, out)) {
      fail(v, fmt::format("'{}' is not a boolean; use true or false", node_text(v)), key);
    }
    return out;
  }

  std::string get_string(const std::string& key, const std::string& fallback) const {
    YAML::Node v = get(key);
    if (!v) return fallback;
    if (!v.IsScalar()) fail(v, "must be a string", key);
    return v.Scalar();
  }

  std::string get_choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices) const {
    std::string out = get_string(key, fallback);
    if (std::find(choices.begin(), choices.end(), out) == choices.end()) {
      fail(get(key), fmt::format("'{}' is not one of {}", out, join(choices)), key);
    }
    return out;
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& what, const std::string& key = "") const {
    throw ConfigError(fmt::format("{}: {}: {}", where(at, key), full_path(key), what));
  }

  // "file:line:column" of `at`, or "--set path" for a value that came from the command line.
  std::string where(const YAML::Node& at, const std::string& key = "") const {
    if (const Override* o = find_override(key); o != nullptr && !o->origin.empty()) return o->origin;
    YAML::Mark m = at && at.IsDefined() ? at.Mark() : (node_ ? node_.Mark() : YAML::Mark::null_mark());
    if (m.is_null()) return file_;
    return fmt::format("{}:{}:{}", file_, m.line + 1, m.column + 1);
  }

 private:
  std::string full_path(const std::string& key) const {
    return key.empty() ? path_ : (path_.empty() ? key : path_ + "." + key);
  }
  const Override* find_override(const std::string& key) const {
    if (overrides_ == nullptr || key.empty()) return nullptr;
    auto it = overrides_->find(full_path(key));
    return it == overrides_->end() ? nullptr : &it->second;
  }

  YAML::Node node_;
  std::string path_;
  const std::string& file_;
  const Overrides* overrides_;
};

ParamValue yaml_to_param(const YAML::Node& v, const Section& where, const std::string& key) {
  if (!v.IsScalar()) where.fail(v, "must be a scalar (bool, number or string)", key);
  const std::string& s = v.Scalar();
  if (v.Tag() == "!") return s;  // quoted: always a string
  bool b = false;
  int64_t i = 0;
  double d = 0;
  if (s == "true" || s == "false") return s == "true";
  if (YAML::convert<bool>::decode(v, b) && (s == "True" || s == "False")) return b;
  if (YAML::convert<int64_t>::decode(v, i)) return i;
  if (YAML::convert<double>::decode(v, d)) return d;
  return s;
}

Params read_params_map(const YAML::Node& node, const std::string& path, const std::string& file,
                       const Overrides& overrides) {
  Section section(node, path, file, {}, &overrides);
  Params params;
  if (node && node.IsMap()) {
    // Pairs as they stand (a lookup by key text would miss keys that are not plain scalars).
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) section.fail(kv.first, "parameter names must be plain words");
      params.set(kv.first.Scalar(), yaml_to_param(kv.second, section, kv.first.Scalar()));
    }
  }
  for (const std::string& key : section.override_keys()) params.set(key, yaml_to_param(section.get(key), section, key));
  return params;
}

YAML::Node parse_yaml(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: malformed YAML: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

using Combination = std::vector<std::pair<std::string, YAML::Node>>;

const YAML::Node* find_value(const Combination& c, const std::string& axis) {
  for (const auto& [k, v] : c) {
    if (k == axis) return &v;
  }
  return nullptr;
}

bool same_value(const YAML::Node& a, const YAML::Node& b) { return node_text(a) == node_text(b); }

struct AttentionEntry {
  std::string label;
  YAML::Node node;
};

}  // namespace

Study load_study_unchecked(const std::string& text, const std::string& file, const LoadOptions& options);

bool Cell::has_mode(const std::string& mode) const {
  return std::find(modes.begin(), modes.end(), mode) != modes.end();
}

std::string param_value_text(const ParamValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return v;
        else return fmt::format("{}", v);
      },
      value);
}

nlohmann::json params_to_json(const Params& params) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& item : params.items()) {  // no structured binding: lambdas may not capture one in C++17
    std::visit([&](const auto& v) { out[item.first] = v; }, item.second);
  }
  return out;
}

Study load_study(const std::string& path, const LoadOptions& options) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the study file (does it exist?)", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return load_study_text(ss.str(), path, options);
}

Study load_study_text(const std::string& text, const std::string& file, const LoadOptions& options) {
  try {
    return load_study_unchecked(text, file, options);
  } catch (const YAML::Exception& e) {
    // A shape of document the readers above did not foresee (found by fuzzing): still one clear error.
    throw ConfigError(e.mark.is_null() ? fmt::format("{}: {}", file, e.msg)
                                       : fmt::format("{}:{}:{}: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

Study load_study_unchecked(const std::string& text, const std::string& file, const LoadOptions& options) {
  // Found by fuzzing: a non-UTF-8 byte would only surface when the cell's parameters are hashed.
  if (size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    throw ConfigError(fmt::format("{}: invalid UTF-8 at byte {}; save the study as UTF-8", file, bad));
  }
  YAML::Node root = parse_yaml(text, file);
  if (!root || root.IsNull()) throw ConfigError(fmt::format("{}: the study is empty", file));
  if (!root.IsMap()) throw ConfigError(fmt::format("{}: a study is a mapping with data, attention, run, ...", file));

  // --set values override the file for every cell; --set matrix.<axis> replaces or adds an axis.
  Overrides set_values;
  std::vector<std::pair<std::string, YAML::Node>> set_axes;
  for (const std::string& item : options.overrides) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError(fmt::format("--set {}: expected path=value, e.g. --set run.device=cuda", item));
    }
    std::string key = item.substr(0, eq);
    YAML::Node value = parse_yaml(item.substr(eq + 1), "--set " + key);
    if (key.rfind("matrix.", 0) == 0) {
      set_axes.emplace_back(key.substr(7), value);
    } else {
      set_values[key] = Override{value, "--set " + key};
    }
  }
  Section top(root, "", file, {"name", "description", "data", "attention", "run", "measure", "output", "matrix"},
              &set_values);

  Study study;
  study.file = file;
  study.name = top.get_string("name", "study");
  study.description = top.get_string("description", "");
  Section output(root["output"], "output", file, {"results", "save_outputs"}, &set_values);
  study.results_path = output.get_string("results", "results/" + study.name + ".jsonl");
  study.save_outputs_dir = output.get_string("save_outputs", "");

  // Attention entries: the implicit first axis.
  YAML::Node attention = root["attention"];
  if (!attention || !attention.IsSequence() || attention.size() == 0) {
    top.fail(attention, "must be a non-empty list of {name, plugin, params} entries", "attention");
  }
  std::vector<AttentionEntry> entries;
  for (size_t i = 0; i < attention.size(); ++i) {
    std::string path = fmt::format("attention[{}]", i);
    Section s(attention[i], path, file, {"name", "plugin", "params"});
    if (!attention[i].IsMap()) s.fail(attention[i], "must be a mapping with name, plugin and params");
    if (!s.get("plugin")) s.fail(attention[i], "needs a 'plugin' (e.g. mha, reservoir, or a path to a .so)");
    std::string plugin = s.get_string("plugin", "");
    std::string label = s.get_string("name", plugin);
    for (const auto& e : entries) {
      if (e.label == label) s.fail(s.get("name"), fmt::format("duplicate name '{}'; give each entry its own name", label), "name");
    }
    entries.push_back({label, attention[i]});
  }
  std::vector<std::string> labels;
  for (const auto& e : entries) labels.push_back(e.label);

  // Matrix axes, include and exclude.
  YAML::Node matrix_node = root["matrix"] ? root["matrix"] : YAML::Node(YAML::NodeType::Map);
  Section m(matrix_node, "matrix", file, {});
  if (!matrix_node.IsMap()) m.fail(matrix_node, "must be a mapping of axis: [values]");
  std::vector<std::pair<std::string, YAML::Node>> axes;
  for (const auto& kv : matrix_node) axes.emplace_back(kv.first.Scalar(), kv.second);
  for (const auto& set_axis : set_axes) {
    auto it = std::find_if(axes.begin(), axes.end(), [&](const auto& a) { return a.first == set_axis.first; });
    if (it != axes.end()) it->second = set_axis.second;
    else axes.push_back(set_axis);
  }
  std::vector<std::string> axis_names;
  std::vector<std::vector<YAML::Node>> axis_values;
  YAML::Node include, exclude;
  const std::set<std::string> roots{"data", "attention", "run", "measure"};
  for (const auto& [axis, node] : axes) {
    if (axis == "include") { include = node; continue; }
    if (axis == "exclude") { exclude = node; continue; }
    if (!roots.count(split(axis, '.').front())) {
      m.fail(node, fmt::format("axis '{}' must be a dotted path under data, attention, run or measure (e.g. run.device)", axis));
    }
    std::vector<YAML::Node> list;
    if (node.IsSequence()) {
      for (const auto& v : node) list.push_back(v);
    } else {
      list.push_back(node);
    }
    if (list.empty()) m.fail(node, fmt::format("axis '{}' has no values; give at least one", axis));
    if (axis == "attention") {
      for (const auto& v : list) {
        if (std::find(labels.begin(), labels.end(), node_text(v)) == labels.end()) {
          m.fail(v, fmt::format("'{}' names no attention entry; entries: {}", node_text(v), join(labels)), "attention");
        }
      }
    }
    axis_names.push_back(axis);
    axis_values.push_back(list);
  }
  if (std::find(axis_names.begin(), axis_names.end(), "attention") == axis_names.end()) {
    std::vector<YAML::Node> list;
    for (const auto& l : labels) list.emplace_back(l);
    axis_names.insert(axis_names.begin(), "attention");
    axis_values.insert(axis_values.begin(), list);
  }

  auto read_rules = [&](const YAML::Node& rules, const char* what) {
    std::vector<Combination> out;
    if (!rules || rules.IsNull()) return out;
    if (!rules.IsSequence()) m.fail(rules, "must be a list of {axis: value} mappings", what);
    for (const auto& rule : rules) {
      if (!rule.IsMap() || rule.size() == 0) m.fail(rule, "each entry must be a non-empty {axis: value} mapping", what);
      Combination c;
      for (const auto& kv : rule) {
        std::string key = kv.first.Scalar();
        bool is_axis = std::find(axis_names.begin(), axis_names.end(), key) != axis_names.end();
        if (std::string(what) == "exclude" && !is_axis) {
          m.fail(kv.first, fmt::format("'{}' is not a matrix axis; axes: {}", key, join(axis_names)), what);
        }
        if (!roots.count(split(key, '.').front())) {
          m.fail(kv.first, fmt::format("'{}' must be a dotted path under data, attention, run or measure", key), what);
        }
        if (key == "attention" && std::find(labels.begin(), labels.end(), node_text(kv.second)) == labels.end()) {
          // Found by fuzzing: an unknown entry here would otherwise reach the cell resolution.
          m.fail(kv.second, fmt::format("'{}' names no attention entry; entries: {}", node_text(kv.second), join(labels)), what);
        }
        c.emplace_back(key, kv.second);
      }
      out.push_back(c);
    }
    return out;
  };
  std::vector<Combination> includes = read_rules(include, "include");
  std::vector<Combination> excludes = read_rules(exclude, "exclude");

  // An include that matches an exclude entirely contradicts it: say so instead of guessing which wins.
  for (size_t i = 0; i < includes.size(); ++i) {
    for (size_t j = 0; j < excludes.size(); ++j) {
      bool covers = std::all_of(excludes[j].begin(), excludes[j].end(), [&](const auto& kv) {
        const YAML::Node* v = find_value(includes[i], kv.first);
        return v && same_value(*v, kv.second);
      });
      if (covers) {
        m.fail(include[i], fmt::format("include entry {} adds back what exclude entry {} removes; drop one of them",
                                       i + 1, j + 1), "include");
      }
    }
  }

  // Cartesian product, first axis outermost.
  std::vector<Combination> combos{Combination{}};
  for (size_t a = 0; a < axis_names.size(); ++a) {
    std::vector<Combination> next;
    for (const auto& c : combos) {
      for (const auto& v : axis_values[a]) {
        Combination n = c;
        n.emplace_back(axis_names[a], v);
        next.push_back(std::move(n));
      }
    }
    combos = std::move(next);
  }
  // CI-matrix semantics: exclude removes partial matches; include extends every combination whose
  // original axis values it does not change, or else becomes a combination of its own.
  combos.erase(std::remove_if(combos.begin(), combos.end(),
                              [&](const Combination& c) {
                                return std::any_of(excludes.begin(), excludes.end(), [&](const Combination& ex) {
                                  return std::all_of(ex.begin(), ex.end(), [&](const auto& kv) {
                                    return same_value(*find_value(c, kv.first), kv.second);
                                  });
                                });
                              }),
               combos.end());
  size_t original = combos.size();
  for (const auto& inc : includes) {
    bool added = false;
    for (size_t i = 0; i < original; ++i) {
      bool fits = std::all_of(inc.begin(), inc.end(), [&](const auto& kv) {
        bool is_axis = std::find(axis_names.begin(), axis_names.end(), kv.first) != axis_names.end();
        return !is_axis || same_value(*find_value(combos[i], kv.first), kv.second);
      });
      if (!fits) continue;
      added = true;
      for (const auto& kv : inc) {
        bool is_axis = std::find(axis_names.begin(), axis_names.end(), kv.first) != axis_names.end();
        if (is_axis) continue;
        auto& c = combos[i];
        auto it = std::find_if(c.begin(), c.end(), [&](const auto& p) { return p.first == kv.first; });
        if (it != c.end()) it->second = kv.second;
        else c.emplace_back(kv.first, kv.second);
      }
    }
    if (!added) {
      Combination c = inc;
      if (!find_value(c, "attention")) {
        for (const auto& l : labels) {
          Combination with = c;
          with.emplace_back("attention", YAML::Node(l));
          combos.push_back(with);
        }
      } else {
        combos.push_back(c);
      }
    }
  }
  if (combos.empty()) m.fail(matrix_node, "expands to no cells: every combination is excluded");

  // Resolve each combination into a typed cell: the file's values under the --set and axis overrides.
  std::set<std::string> seen;
  for (const Combination& combo : combos) {
    std::string label = node_text(*find_value(combo, "attention"));
    const AttentionEntry& entry = *std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.label == label; });
    const std::string plugin_name = entry.node["plugin"].Scalar();
    Cell cell;
    Overrides ov;
    auto applies = [&](const std::string& path) {
      std::vector<std::string> parts = split(path, '.');
      return !(parts.size() == 3 && parts[0] == "attention" && parts[1] == "params" && options.has_param &&
               !options.has_param(plugin_name, parts[2]));  // e.g. res_size on an MHA entry
    };
    for (const auto& [path, value] : set_values) {
      if (applies(path)) ov[path] = value;
    }
    for (const auto& [axis, value] : combo) {
      if (axis == "attention") continue;
      std::vector<std::string> parts = split(axis, '.');
      if (parts.front() == "attention" && (parts.size() < 2 || parts[1] != "params")) {
        m.fail(value, "an axis may set attention.params.<key>, not the entry itself; use the 'attention' axis", axis);
      }
      if (!applies(axis)) continue;
      ov[axis] = Override{value, ""};
      cell.axes[axis] = node_text(value);
    }
    cell.axes["attention"] = label;

    Section data(root["data"], "data", file, {"embedder", "params", "samples", "seq_len"}, &ov);
    cell.embedder = data.get_string("embedder", "synthetic");
    cell.embedder_params = read_params_map(data.get("params"), "data.params", file, ov);
    cell.samples = data.get_int("samples", 1, 1);
    cell.seq_len = data.get_int("seq_len", 256, 1);

    Section att(entry.node, "attention", file, {"name", "plugin", "params"}, &ov);
    cell.label = label;
    cell.plugin = plugin_name;
    cell.attention_params = read_params_map(att.get("params"), "attention.params", file, ov);
    if (options.complete_params) {
      // Defaults filled in before hashing, so spelling out a default does not make a new cell.
      auto complete = [&](attnbench_plugin_kind kind, const std::string& plugin, const Params& given,
                          const Section& where, const YAML::Node& at, const std::string& path) {
        try {
          return options.complete_params(kind, plugin, given);
        } catch (const std::exception& e) {
          throw ConfigError(fmt::format("{}: {}: {}", where.where(at), path, e.what()));
        }
      };
      cell.embedder_params = complete(ATTNBENCH_PLUGIN_EMBEDDER, cell.embedder, cell.embedder_params, data,
                                      data.get("params") ? data.get("params") : data.get("embedder"), "data.params");
      cell.attention_params = complete(ATTNBENCH_PLUGIN_ATTENTION, plugin_name, cell.attention_params, att,
                                       att.get("params") ? att.get("params") : att.get("plugin"), "attention[" + label + "]");
    }

    Section run(root["run"], "run", file,
                {"device", "amp", "amp_dtype", "batch", "threads", "seed", "modes", "seed_len", "horizon"}, &ov);
    cell.device = run.get_choice("device", "cpu", {"cpu", "cuda"});
    cell.amp = run.get_bool("amp", false);
    cell.amp_dtype = run.get_choice("amp_dtype", "auto", {"auto", "float16", "bfloat16"});
    cell.batch = run.get_int("batch", 1, 1);
    cell.threads = run.get_int("threads", 1, 1, 1024);
    cell.seed = run.get_int("seed", 0, 0);
    cell.seed_len = run.get_int("seed_len", 16, 1);
    cell.horizon = run.get_int("horizon", 32, 0);
    if (YAML::Node modes = run.get("modes")) {
      if (!modes.IsSequence() || modes.size() == 0) run.fail(modes, fmt::format("must be a non-empty list of {}", join(all_modes())), "modes");
      cell.modes.clear();
      for (const auto& mode : modes) {
        std::string name = node_text(mode);
        if (std::find(all_modes().begin(), all_modes().end(), name) == all_modes().end()) {
          run.fail(mode, fmt::format("'{}' is not one of {}", name, join(all_modes())), "modes");
        }
        cell.modes.push_back(name);
      }
    }
    if (cell.samples % cell.batch != 0) {
      run.fail(run.get("batch"), fmt::format("batch {} must divide data.samples {}", cell.batch, cell.samples), "batch");
    }
    if (cell.has_mode("rollout") && cell.seed_len > cell.seq_len) {
      run.fail(run.get("seed_len"), fmt::format("seed_len {} exceeds data.seq_len {}", cell.seed_len, cell.seq_len), "seed_len");
    }

    Section meas(root["measure"], "measure", file, {"warmup", "min_runs", "max_runs", "min_time_ms", "unstable_cv"}, &ov);
    cell.measure.warmup = meas.get_int("warmup", 1, 0);
    cell.measure.min_runs = meas.get_int("min_runs", 5, 1);
    cell.measure.max_runs = meas.get_int("max_runs", 1000, cell.measure.min_runs);
    cell.measure.min_time_ms = meas.get_float("min_time_ms", 200, 0);
    cell.measure.unstable_cv = meas.get_float("unstable_cv", 0.10, 0);

    cell.resolved = {
        {"data", {{"embedder", cell.embedder}, {"params", params_to_json(cell.embedder_params)},
                  {"samples", cell.samples}, {"seq_len", cell.seq_len}}},
        {"attention", {{"name", cell.label}, {"plugin", cell.plugin}, {"params", params_to_json(cell.attention_params)}}},
        {"run", {{"device", cell.device}, {"amp", cell.amp}, {"amp_dtype", cell.amp_dtype}, {"batch", cell.batch},
                 {"threads", cell.threads}, {"seed", cell.seed}, {"modes", cell.modes}, {"seed_len", cell.seed_len},
                 {"horizon", cell.horizon}}},
        {"measure", {{"warmup", cell.measure.warmup}, {"min_runs", cell.measure.min_runs},
                     {"max_runs", cell.measure.max_runs}, {"min_time_ms", cell.measure.min_time_ms},
                     {"unstable_cv", cell.measure.unstable_cv}}},
    };
    cell.hash = hash_json(cell.resolved);
    if (!seen.insert(cell.hash).second) continue;  // an axis that did not apply made it a duplicate
    cell.index = study.cells.size();
    study.cells.push_back(std::move(cell));
  }
  return study;
}

}  // namespace attnbench
