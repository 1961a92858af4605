#include "study/study.h"

#include <attnbench/support/hash.h>
#include <attnbench/support/utf8.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace attnbench {
namespace {

// More cells than a study can run in any sensible time (a day at a second per cell), and a dry run's
// memory grows with them: a matrix beyond this is a mistake.
constexpr double kMaxCells = 100000;
// Tokens beyond this do not fit the memory of any machine a study runs on.
constexpr double kMaxTokenBytes = 1e12;

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// Every part between separators, empty ones included: "run." is {"run", ""}, never an empty list.
std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts{""};
  for (char c : text) {
    if (c == sep) parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

std::string node_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// A value that replaces what the file says at a dotted path: a matrix axis value (its own node, so its
// mark points into the file) or a --set (origin names it, since its node was parsed from the argument).
struct Override {
  YAML::Node value;
  std::string origin;

  Override(YAML::Node v = {}, std::string o = {}) : value(std::move(v)), origin(std::move(o)) {}
  Override(const Override&) = default;
  // yaml-cpp's Node::operator= writes through to every handle of the node assigned to: an include's
  // value replacing a --set value would rewrite that --set value for every later cell. Rebind instead.
  Override& operator=(const Override& other) {
    value.reset(other.value);
    origin = other.origin;
    return *this;
  }
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
    if (node_ && node_.IsMap()) check_unique_keys(node_);
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

  // The value of `key` as the schema types it, or its default.
  SettingValue read(const StudyKey& key) const {
    YAML::Node v = get(key.name());
    if (!v) return default_value(key);
    return convert(key, v);
  }

  std::string get_string(const std::string& key, const std::string& fallback) const {
    YAML::Node v = get(key);
    if (!v) return fallback;
    if (!v.IsScalar()) fail(v, "must be a string", key);
    return v.Scalar();
  }

  // YAML keeps the first of two equal keys without a word; a study that says a thing twice is a mistake.
  void check_unique_keys(const YAML::Node& map) const {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) continue;
      auto [it, fresh] = seen.emplace(kv.first.Scalar(), kv.first.Mark());
      if (!fresh) {
        fail(kv.first, fmt::format("duplicate key '{}' (first at line {}); keep one", kv.first.Scalar(), it->second.line + 1),
             kv.first.Scalar());
      }
    }
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& what, const std::string& key = "") const {
    throw ConfigError(fmt::format("{}: {}: {}", where(at, key), full_path(key), what));
  }

  // "file:line:column" of `at`, or "--set path" for a value that came from the command line.
  std::string where(const YAML::Node& at, const std::string& key = "") const {
    if (const Override* o = find_override(key); o != nullptr && !o->origin.empty()) return o->origin;
    // A key that only overrides below it introduce ("runn" of --set runn.threads=2) is theirs too.
    if (overrides_ != nullptr && !key.empty() && !(at && at.IsDefined())) {
      const std::string below = full_path(key) + ".";
      for (const auto& [path, value] : *overrides_) {
        if (path.compare(0, below.size(), below) == 0 && !value.origin.empty()) return value.origin;
      }
    }
    YAML::Mark m = at && at.IsDefined() ? at.Mark() : (node_ ? node_.Mark() : YAML::Mark::null_mark());
    if (m.is_null()) return file_;
    return fmt::format("{}:{}:{}", file_, m.line + 1, m.column + 1);
  }

  static SettingValue default_value(const StudyKey& key) {
    Section defaults(YAML::Node(YAML::NodeType::Map), key.section(), "(schema default)", {});
    return defaults.convert(key, YAML::Load(key.default_text.empty() ? "''" : key.default_text));
  }

 private:
  SettingValue convert(const StudyKey& k, const YAML::Node& v) const {
    const std::string key = k.name();
    auto check_choice = [&](const YAML::Node& at, const std::string& value) {
      if (!k.choices) return;
      const std::vector<std::string> choices = k.choices();
      if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
        fail(at, fmt::format("'{}' is not one of {}", value, join(choices)), key);
      }
    };
    switch (k.type) {
      case SettingType::kBool: {
        bool out = false;
        if (!v.IsScalar() || !YAML::convert<bool>::decode(v, out)) {
          fail(v, fmt::format("'{}' is not a boolean; use true or false", node_text(v)), key);
        }
        return out;
      }
      case SettingType::kInt: {
        int64_t out = 0;
        if (!v.IsScalar() || !YAML::convert<int64_t>::decode(v, out)) {
          fail(v, fmt::format("'{}' is not an integer", node_text(v)), key);
        }
        check_range(static_cast<double>(out), fmt::format("{}", out), k, v);
        return out;
      }
      case SettingType::kFloat: {
        double out = 0;
        if (!v.IsScalar() || !YAML::convert<double>::decode(v, out)) fail(v, fmt::format("'{}' is not a number", node_text(v)), key);
        if (!std::isfinite(out)) fail(v, fmt::format("'{}' is not a finite number", node_text(v)), key);
        check_range(out, fmt::format("{}", out), k, v);
        return out;
      }
      case SettingType::kString: {
        if (!v.IsScalar()) fail(v, "must be a string", key);
        check_choice(v, v.Scalar());
        return v.Scalar();
      }
      case SettingType::kStringList: {
        const size_t fewest = std::isinf(k.min) ? 0 : static_cast<size_t>(k.min);
        if (!v.IsSequence() || v.size() < fewest) {
          std::string what = k.choices ? join(k.choices()) : "strings";
          fail(v, fewest > 0 ? fmt::format("must be a non-empty list of {}", what) : fmt::format("must be a list of {}", what), key);
        }
        std::vector<std::string> out;
        for (const auto& item : v) {
          if (!item.IsScalar()) fail(item, "each item must be a string", key);
          check_choice(item, item.Scalar());
          out.push_back(item.Scalar());
        }
        return out;
      }
    }
    throw std::logic_error("unknown setting type");
  }

  void check_range(double value, const std::string& text, const StudyKey& k, const YAML::Node& at) const {
    if (value >= k.min && value <= k.max) return;
    if (std::isinf(k.max)) fail(at, fmt::format("{} is out of range; must be >= {}", text, number_text(k.min)), k.name());
    fail(at, fmt::format("{} is out of range; must be in [{}, {}]", text, number_text(k.min), number_text(k.max)), k.name());
  }

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
  std::string file_;
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
  if (YAML::convert<double>::decode(v, d)) {
    // JSON has no infinity or NaN: the results and the cell hash would both say null, so three
    // different values would be one cell.
    if (!std::isfinite(d)) where.fail(v, fmt::format("'{}' is not a finite number", s), key);
    return d;
  }
  return s;
}

Params read_params_map(const Section& section, const YAML::Node& node) {
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

// The names a section accepts: its schema keys, and "params" where plugins' parameters go.
std::vector<std::string> section_keys(const std::string& section, Scope scope) {
  std::vector<std::string> out;
  if (section == "data") out = {"embedder", "params", "samples", "seq_len"};
  for (const StudyKey& k : study_keys()) {
    if (k.section() != section || k.scope != scope) continue;
    for (const std::string& name : {k.name(), std::string(k.plugin_kind != 0 ? "params" : "")}) {
      if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
  }
  return out;
}

// Sections a matrix axis or include/exclude entry may point into: those whose values vary by cell.
// The core's first, then the sections modes added, by name (their registration order is the linker's).
std::vector<std::string> axis_roots() {
  std::vector<std::string> out{"data", "attention", "run", "measure"};
  std::vector<std::string> added;
  for (const StudyKey& k : study_keys()) {
    if (k.scope == Scope::kCell && std::find(out.begin(), out.end(), k.section()) == out.end() &&
        std::find(added.begin(), added.end(), k.section()) == added.end()) {
      added.push_back(k.section());
    }
  }
  std::sort(added.begin(), added.end());
  out.insert(out.end(), added.begin(), added.end());
  return out;
}

std::string roots_text() {
  std::vector<std::string> roots = axis_roots();
  std::string last = roots.back();
  roots.pop_back();
  return join(roots) + " or " + last;
}

// What is wrong with `path` as a --set path (or, with `axis`, a matrix axis or include/exclude key), or
// "" when it names a setting: a schema key, data.params.<key> (the embedder checks the key),
// attention.params.<key> that some entry's plugin has, <section>.params.<plugin>.<key> for a key that
// lists plugins (the plugin checks the key), or a whole data.params, attention.params or
// <section>.params mapping. Anything else would be read by nobody: a typo silently ignored.
std::string setting_path_problem(const std::string& path, bool axis, const std::vector<std::string>& plugins,
                                 const LoadOptions& options) {
  const std::vector<std::string> parts = split(path, '.');
  if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    return fmt::format("'{}' has an empty part; write a path such as run.threads", path);
  }
  const std::string& section = parts[0];
  if (axis && path == "attention") return "";
  if (find_study_key(path) != nullptr) return "";  // a study-wide key as an axis is outside axis_roots()
  if (section == "attention") {
    if (parts.size() == 2 && parts[1] == "params") return "";
    if (parts.size() != 3 || parts[1] != "params") {
      return fmt::format("'{}' cannot be set here: attention entries are edited in the study file; set "
                         "attention.params.<key>{}", path, axis ? ", or use the 'attention' axis to pick entries" : "");
    }
    if (!options.has_param) return "";
    std::vector<std::string> have;
    for (const std::string& plugin : plugins) {
      if (options.has_param(plugin, parts[2])) return "";
      const std::string names = options.param_names ? options.param_names(plugin) : "";
      have.push_back(names.empty() ? plugin : fmt::format("{}: {}", plugin, names));
    }
    return fmt::format("no attention entry's plugin has a parameter '{}' ({})", parts[2], join(have, "; "));
  }
  const std::vector<std::string> sections = study_sections();
  if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
    return fmt::format("'{}' is not a section of a study; sections: {}", section,
                       join(axis ? axis_roots() : std::vector<std::string>(sections.begin(), sections.end() - 1)));
  }
  if (find_study_key(section) != nullptr) return fmt::format("'{}' is a value; it has no keys such as '{}'", section, path);
  const bool lists_plugins = std::any_of(study_keys().begin(), study_keys().end(), [&](const StudyKey& k) {
    return k.section() == section && k.plugin_kind != 0;
  });
  if (parts.size() >= 2 && parts[1] == "params" && (section == "data" || lists_plugins)) {
    const size_t leaf = section == "data" ? 3 : 4;
    if (parts.size() == 2 || parts.size() == leaf) return "";
    if (lists_plugins && parts.size() == 3) {
      return fmt::format("'{}' is a plugin's parameters: set them one by one, as {}.<key>", path, path);
    }
    return fmt::format("'{}' is too deep: {} parameters are {}.params.{}<key>", path, section, section,
                       lists_plugins ? "<plugin>." : "");
  }
  std::vector<std::string> keys = section_keys(section, Scope::kCell);
  for (const std::string& k : section_keys(section, Scope::kStudy)) keys.push_back(k);
  if (parts.size() == 1) {
    return fmt::format("'{}' is a section, not a value; set one of its keys, e.g. {}.{}", path, path,
                       keys.empty() ? "key" : keys.front());
  }
  return fmt::format("'{}' names no setting: {} has {}", path, section, join(keys));
}

// The part of a cell's settings that identifies it (see Hashed): what its hash is computed from.
bool hashed_here(const StudyKey& k, const SettingValue& value) {
  if (k.hashed == Hashed::kAlways) return true;
  if (k.hashed == Hashed::kNever) return false;
  return value != Section::default_value(k);
}

// A plugin's own verdict on complete parameters, as a located ConfigError; `params_path` names the
// parameters in the message ("attention[RA].params").
int64_t validate_with_plugin(const LoadOptions& options, attnbench_plugin_kind kind, const std::string& plugin,
                             const Params& params, int64_t embed_dim, const Section& params_section,
                             const YAML::Node& params_node, const std::string& params_path) {
  if (!options.validate) return 0;
  Failure failure;
  const int64_t out = options.validate(kind, plugin, params, embed_dim, failure);
  if (failure.status == ATTNBENCH_OK) return out;
  if (!failure.parameter.empty()) {
    const std::string& key = failure.parameter;
    YAML::Node at = params_section.get(key);
    throw ConfigError(fmt::format("{}: {}.{}: {}", params_section.where(at ? at : params_node, key), params_path, key,
                                  failure.message));
  }
  throw ConfigError(fmt::format("{}: {}: {}", params_section.where(params_node), params_path, failure.message));
}

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
  std::map<std::string, std::string> axis_origin;  // axes from --set: where their values came from
  for (const std::string& item : options.overrides) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError(fmt::format("--set {}: expected path=value, e.g. --set run.device=cuda", item));
    }
    std::string key = item.substr(0, eq);
    for (const std::string& part : split(key, '.')) {
      if (part.empty()) throw ConfigError(fmt::format("--set {}: '{}' has an empty part; write a path such as run.threads", item, key));
    }
    if (key == "matrix") throw ConfigError(fmt::format("--set {}: set one axis, as matrix.<path>=[values]", item));
    YAML::Node value = parse_yaml(item.substr(eq + 1), "--set " + key);
    if (key.rfind("matrix.", 0) == 0) {
      set_axes.emplace_back(key.substr(7), value);
      axis_origin[key.substr(7)] = "--set " + key;
    } else {
      set_values[key] = Override{value, "--set " + key};
    }
  }
  auto check_set_paths = [&](const std::vector<std::string>& plugins, const LoadOptions& with) {
    for (const auto& [path, value] : set_values) {
      const std::string problem = setting_path_problem(path, /*axis=*/false, plugins, with);
      if (!problem.empty()) throw ConfigError(fmt::format("{}: {}", value.origin, problem));
    }
  };
  // The paths first, without the plugins (attention.params.<key> is checked once the entries are read):
  // a path that names nothing must be blamed on its --set before a section trips over it.
  check_set_paths({}, LoadOptions{});
  Section top(root, "", file, study_sections(), &set_values);

  Study study;
  study.file = file;
  for (const StudyKey& k : study_keys()) {
    if (k.scope != Scope::kStudy) continue;
    const bool top_level = k.section() == k.path;
    Section s(top_level ? root : root[k.section()], top_level ? "" : k.section(), file,
              top_level ? std::vector<std::string>{} : section_keys(k.section(), Scope::kStudy), &set_values);
    k.to_study(study, s.read(k));
  }
  if (study.results_path.empty()) study.results_path = "results/" + study.name + ".jsonl";

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
  std::vector<std::string> labels, plugins;
  for (const auto& e : entries) {
    labels.push_back(e.label);
    const std::string plugin = e.node["plugin"].Scalar();
    if (std::find(plugins.begin(), plugins.end(), plugin) == plugins.end()) plugins.push_back(plugin);
  }
  check_set_paths(plugins, options);

  // Matrix axes, include and exclude.
  YAML::Node matrix_node = root["matrix"] ? root["matrix"] : YAML::Node(YAML::NodeType::Map);
  Section m(matrix_node, "matrix", file, {});
  if (!matrix_node.IsMap()) m.fail(matrix_node, "must be a mapping of axis: [values]");
  std::vector<std::pair<std::string, YAML::Node>> axes;
  for (const auto& kv : matrix_node) {
    if (!kv.first.IsScalar()) m.fail(kv.first, "axis names must be dotted paths such as run.device");
    axes.emplace_back(kv.first.Scalar(), kv.second);
  }
  for (const auto& set_axis : set_axes) {
    auto it = std::find_if(axes.begin(), axes.end(), [&](const auto& a) { return a.first == set_axis.first; });
    if (it != axes.end()) it->second.reset(set_axis.second);  // rebind, not write through into the file's node
    else axes.push_back(set_axis);
  }
  std::vector<std::string> axis_names;
  std::vector<std::vector<YAML::Node>> axis_values;
  YAML::Node include, exclude;
  const std::vector<std::string> roots = axis_roots();
  auto is_root = [&](const std::string& path) {
    return std::find(roots.begin(), roots.end(), split(path, '.').front()) != roots.end();
  };
  // A mistake in an axis from --set is the command line's, not the file's (its nodes were parsed from
  // the argument, so their marks point nowhere in the file).
  auto axis_fail = [&](const std::string& axis, const YAML::Node& at, const std::string& what) {
    auto origin = axis_origin.find(axis);
    if (origin != axis_origin.end()) throw ConfigError(fmt::format("{}: {}", origin->second, what));
    m.fail(at, what, axis);
  };
  auto check_axis_path = [&](const std::string& axis, const std::string& origin_axis, const YAML::Node& at) {
    const std::string problem = is_root(axis)
        ? setting_path_problem(axis, /*axis=*/true, plugins, options)
        : fmt::format("axis '{}' must be a dotted path under {} (e.g. run.device)", axis, roots_text());
    if (!problem.empty()) axis_fail(origin_axis, at, problem);
  };
  for (const auto& [axis, node] : axes) {
    if (axis == "include") { include = node; continue; }
    if (axis == "exclude") { exclude = node; continue; }
    check_axis_path(axis, axis, node);
    std::vector<YAML::Node> list;
    if (node.IsSequence()) {
      for (const auto& v : node) list.push_back(v);
    } else {
      list.push_back(node);
    }
    if (list.empty()) axis_fail(axis, node, fmt::format("axis '{}' has no values; give at least one", axis));
    if (axis == "attention") {
      for (const auto& v : list) {
        if (std::find(labels.begin(), labels.end(), node_text(v)) == labels.end()) {
          axis_fail(axis, v, fmt::format("'{}' names no attention entry; entries: {}", node_text(v), join(labels)));
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
    if (!rules.IsSequence()) axis_fail(what, rules, "must be a list of {axis: value} mappings");
    for (const auto& rule : rules) {
      if (!rule.IsMap() || rule.size() == 0) axis_fail(what, rule, "each entry must be a non-empty {axis: value} mapping");
      m.check_unique_keys(rule);
      Combination c;
      for (const auto& kv : rule) {
        if (!kv.first.IsScalar()) axis_fail(what, kv.first, "axis names must be dotted paths such as run.device");
        std::string key = kv.first.Scalar();
        bool is_axis = std::find(axis_names.begin(), axis_names.end(), key) != axis_names.end();
        if (std::string(what) == "exclude" && !is_axis) {
          axis_fail(what, kv.first, fmt::format("'{}' is not a matrix axis; axes: {}", key, join(axis_names)));
        }
        check_axis_path(key, what, kv.first);
        if (key == "attention" && std::find(labels.begin(), labels.end(), node_text(kv.second)) == labels.end()) {
          // Found by fuzzing: an unknown entry here would otherwise reach the cell resolution.
          axis_fail(what, kv.second, fmt::format("'{}' names no attention entry; entries: {}", node_text(kv.second), join(labels)));
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
        axis_fail("include", include[i], fmt::format("include entry {} adds back what exclude entry {} removes; drop one of them",
                                                     i + 1, j + 1));
      }
    }
  }

  // Counted before it is built: a few axes of many values would otherwise exhaust memory here.
  double product = 1;
  std::vector<std::string> factors;
  for (size_t a = 0; a < axis_names.size(); ++a) {
    product *= static_cast<double>(axis_values[a].size());
    factors.push_back(fmt::format("{} {}", axis_values[a].size(), axis_names[a]));
  }
  const double most = product + static_cast<double>(includes.size() * labels.size());
  if (most > kMaxCells) {
    axis_fail("", matrix_node, fmt::format("expands to {:.0f} cells ({}{}); the limit is {:.0f} cells per study: use fewer "
                                           "values, or split it into several studies", most, join(factors, " x "),
                                           includes.empty() ? "" : ", plus include entries", kMaxCells));
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
        if (it != c.end()) it->second.reset(kv.second);  // rebind: `=` would rewrite the node other cells share
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
      if (!applies(axis)) continue;
      ov[axis] = Override{value, axis_origin.count(axis) ? axis_origin.at(axis) : ""};
      cell.axes[axis] = node_text(value);
    }
    cell.axes["attention"] = label;

    // Every schema key of this cell, section by section; each section rejects keys it does not know.
    nlohmann::json resolved = nlohmann::json::object(), hashed = nlohmann::json::object();
    std::map<std::string, Section> sections;
    for (const StudyKey& k : study_keys()) {
      if (k.scope != Scope::kCell) continue;
      auto it = sections.find(k.section());
      if (it == sections.end()) {
        it = sections.emplace(k.section(), Section(root[k.section()], k.section(), file, section_keys(k.section(), Scope::kCell), &ov))
                 .first;
      }
      SettingValue value = it->second.read(k);
      if (k.check) {
        const std::string problem = k.check(value);
        if (!problem.empty()) it->second.fail(it->second.get(k.name()), problem, k.name());
      }
      if (k.to_cell) k.to_cell(cell, value);
      resolved[k.section()][k.name()] = setting_to_json(value);
      if (hashed_here(k, value)) hashed[k.section()][k.name()] = setting_to_json(value);
      cell.settings.set(k.path, std::move(value));
    }
    const Section& data = sections.at("data");
    const Section& run = sections.at("run");
    const Section& meas = sections.at("measure");

    Section data_params(data.get("params"), "data.params", file, {}, &ov);
    cell.embedder_params = read_params_map(data_params, data.get("params"));
    Section att(entry.node, "attention", file, {"name", "plugin", "params"}, &ov);
    Section att_params(att.get("params"), "attention.params", file, {}, &ov);
    cell.label = label;
    cell.plugin = plugin_name;
    cell.attention_params = read_params_map(att_params, att.get("params"));
    const std::string entry_path = "attention[" + label + "]";
    if (options.complete_params) {
      // Defaults filled in before hashing, so spelling out a default does not make a new cell.
      auto complete = [&](attnbench_plugin_kind kind, const std::string& plugin, const Params& given,
                          const Section& where, const YAML::Node& at, const std::string& path,
                          const Section& params, const std::string& params_path) {
        try {
          return options.complete_params(kind, plugin, given);
        } catch (const InvalidParameter& e) {
          // At the parameter itself, which may have come from --set or a matrix axis.
          const YAML::Node value = params.get(e.name());
          throw ConfigError(fmt::format("{}: {}.{}: {}", params.where(value ? value : at, e.name()), params_path, e.name(),
                                        e.what()));
        } catch (const std::exception& e) {
          throw ConfigError(fmt::format("{}: {}: {}", where.where(at), path, e.what()));
        }
      };
      cell.embedder_params = complete(ATTNBENCH_PLUGIN_EMBEDDER, cell.embedder, cell.embedder_params, data,
                                      data.get("params") ? data.get("params") : data.get("embedder"), "data.params",
                                      data_params, "data.params");
      cell.attention_params = complete(ATTNBENCH_PLUGIN_ATTENTION, plugin_name, cell.attention_params, att,
                                       att.get("params") ? att.get("params") : att.get("plugin"), entry_path, att_params,
                                       entry_path + ".params");
    }
    // The plugins' own checks, which need the tokens' width: the embedder says it when it can.
    const int64_t embed_dim =
        validate_with_plugin(options, ATTNBENCH_PLUGIN_EMBEDDER, cell.embedder, cell.embedder_params, 0, data_params,
                             data.get("params") ? data.get("params") : data.get("embedder"), "data.params");
    validate_with_plugin(options, ATTNBENCH_PLUGIN_ATTENTION, plugin_name, cell.attention_params, embed_dim, att_params,
                         att.get("params") ? att.get("params") : att.get("plugin"), entry_path + ".params");
    if (embed_dim > 0) {
      // Every cell holds its tokens (float32) before it runs.
      const double bytes = static_cast<double>(cell.samples) * static_cast<double>(cell.seq_len) *
                           static_cast<double>(embed_dim) * 4;
      if (bytes > kMaxTokenBytes) {
        data.fail(data.get("seq_len"),
                  fmt::format("data.samples x data.seq_len x the embedder's width = {} x {} x {} floats, {:.0f} GB of "
                              "tokens; the limit is {:.0f} GB", cell.samples, cell.seq_len, embed_dim, bytes / 1e9,
                              kMaxTokenBytes / 1e9),
                  "seq_len");
      }
    }

    // Plugins a key names (quality tasks): each one's parameters, completed and checked by the plugin.
    for (const StudyKey& k : study_keys()) {
      if (k.plugin_kind == 0 || k.scope != Scope::kCell) continue;
      const Section& section = sections.at(k.section());
      const std::vector<std::string>& names = cell.settings.get_list(k.path);
      const std::string params_path = k.section() + ".params";
      YAML::Node params_node = section.get("params");
      // Parameters for a plugin the list does not name are checked (a misspelt name is an error) but not
      // used, so switching the list with --set keeps a study that configures every plugin valid.
      std::vector<std::string> configured;
      Section all_params(params_node, params_path, file, {}, &ov);
      for (const std::string& name : all_params.override_keys()) configured.push_back(name);
      if (params_node && params_node.IsMap()) {
        for (const auto& kv : params_node) configured.push_back(kv.first.Scalar());
      }
      for (const std::string& name : configured) {
        if (std::find(names.begin(), names.end(), name) != names.end() || !options.complete_params) continue;
        YAML::Node node = params_node && params_node.IsMap() ? params_node[name] : YAML::Node(YAML::NodeType::Undefined);
        Section one(node, params_path + "." + name, file, {}, &ov);
        try {
          options.complete_params(k.plugin_kind, name, read_params_map(one, node));
        } catch (const std::exception& e) {
          throw ConfigError(fmt::format("{}: {}.{}: {}", all_params.where(node ? node : params_node, name), params_path,
                                        name, e.what()));
        }
      }
      for (const std::string& name : names) {
        const std::string path = params_path + "." + name;
        YAML::Node node = params_node && params_node.IsMap() ? params_node[name] : YAML::Node(YAML::NodeType::Undefined);
        Section one(node, path, file, {}, &ov);
        const Params given = read_params_map(one, node);
        Params complete = given;
        if (options.complete_params) {
          try {
            complete = options.complete_params(k.plugin_kind, name, given);
          } catch (const std::exception& e) {
            throw ConfigError(fmt::format("{}: {}: {}", section.where(node ? node : section.get(k.name()), k.name()), path, e.what()));
          }
        }
        validate_with_plugin(options, k.plugin_kind, name, complete, embed_dim, one, node ? node : section.get(k.name()), path);
        cell.plugin_params[k.path][name] = complete;
        resolved[k.section()]["params"][name] = params_to_json(complete);
        if (!given.items().empty()) hashed[k.section()]["params"][name] = params_to_json(complete);
      }
    }

    if (cell.samples % cell.batch != 0) {
      run.fail(run.get("batch"), fmt::format("batch {} must divide data.samples {}", cell.batch, cell.samples), "batch");
    }
    if (cell.has_mode("rollout") && cell.seed_len > cell.seq_len) {
      run.fail(run.get("seed_len"), fmt::format("seed_len {} exceeds data.seq_len {}", cell.seed_len, cell.seq_len), "seed_len");
    }
    if (cell.measure.max_runs < cell.measure.min_runs) {
      meas.fail(meas.get("max_runs"),
                fmt::format("{} is out of range; must be >= {}", cell.measure.max_runs, cell.measure.min_runs), "max_runs");
    }

    for (nlohmann::json* j : {&resolved, &hashed}) {
      (*j)["data"]["params"] = params_to_json(cell.embedder_params);
      (*j)["attention"] = {{"name", cell.label}, {"plugin", cell.plugin}, {"params", params_to_json(cell.attention_params)}};
    }
    cell.resolved = std::move(resolved);
    cell.hash = hash_json(hashed);
    if (!seen.insert(cell.hash).second) continue;  // an axis that did not apply made it a duplicate
    cell.index = study.cells.size();
    study.cells.push_back(std::move(cell));
  }
  return study;
}

}  // namespace attnbench
