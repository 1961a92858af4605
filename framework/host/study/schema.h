// The study schema: every key a study may set, with its type, default, valid values, whether it is part
// of a cell's hash, and its help line. Loading, validation, the hash and the table in docs/study.md all
// come from this one list; a measurement mode adds its own keys with register_study_keys().
#pragma once

#include <attnbench/common.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace attnbench {

struct Cell;
struct Study;

using SettingValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

enum class SettingType { kBool, kInt, kFloat, kString, kStringList };

// Whether a key's value goes into the cell hash, which is how a rerun recognises cells already done.
enum class Hashed {
  kAlways,   // every cell's hash holds it: the keys of the first schema
  kWhenSet,  // only when it differs from its default: keys added later, so older results still resume
             // (never change such a key's default: add a new key instead)
  kNever,    // does not change what a cell measures (resource limits, file names)
};

enum class Scope { kStudy, kCell };

struct StudyKey {
  std::string path;  // "run.batch": section, then key
  SettingType type = SettingType::kString;
  std::string default_text;  // as YAML: "1", "cpu", "[full, step]"
  Scope scope = Scope::kCell;
  Hashed hashed = Hashed::kAlways;
  std::string help;
  double min = -std::numeric_limits<double>::infinity();  // numbers; lists: fewest items
  double max = std::numeric_limits<double>::infinity();
  std::function<std::vector<std::string>()> choices;  // strings and lists of strings; unset: any text
  std::function<std::string(const SettingValue&)> check;        // a further check: "" or what is wrong
  // For a list of plugin names: their kind; each one's parameters go under "<section>.params.<name>",
  // checked and completed by the plugin like an attention entry's, in Cell::plugin_params[path].
  attnbench_plugin_kind plugin_kind = static_cast<attnbench_plugin_kind>(0);
  std::function<void(Cell&, const SettingValue&)> to_cell;     // a typed field of Cell that mirrors it
  std::function<void(Study&, const SettingValue&)> to_study;

  // "run" and "batch" for "run.batch"; a top-level key ("name") is its own section and name.
  std::string section() const { return path.substr(0, path.find('.')); }
  std::string name() const { return path.substr(path.find('.') + 1); }
};

// The keys, in the order docs and "valid keys" lists show them: the core's, then those modes added.
const std::vector<StudyKey>& study_keys();
const StudyKey* find_study_key(const std::string& path);

// Adds keys (a mode's own settings); returns true so a mode file can call it from a static initializer.
bool register_study_keys(std::vector<StudyKey> keys);

// Sections a study may have, in order: "name" and "description" are top-level scalars, "attention" the
// list of layers; the rest come from the keys.
std::vector<std::string> study_sections();

// The typed values of every key at one cell; the getters throw std::logic_error for a key that is not
// in the schema or has another type, which is a bug in the caller.
class Settings {
 public:
  void set(const std::string& path, SettingValue value) { values_[path] = std::move(value); }
  const std::map<std::string, SettingValue>& items() const { return values_; }
  bool get_bool(const std::string& path) const { return get<bool>(path); }
  int64_t get_int(const std::string& path) const { return get<int64_t>(path); }
  double get_float(const std::string& path) const { return get<double>(path); }
  const std::string& get_string(const std::string& path) const { return get<std::string>(path); }
  const std::vector<std::string>& get_list(const std::string& path) const { return get<std::vector<std::string>>(path); }

 private:
  template <typename T>
  const T& get(const std::string& path) const;
  std::map<std::string, SettingValue> values_;
};

nlohmann::json setting_to_json(const SettingValue& value);

// "512MB", "16GB", "1.5TB", "4096" (bytes; KB, MB, GB and TB are powers of 1024) as bytes; -1 when the
// text is none of these.
int64_t parse_bytes(const std::string& text);
const char* setting_type_name(SettingType type);

// Markdown: one row per key (key, type, default, valid values, hashed, help), for docs/study.md.
std::string study_keys_markdown();

}  // namespace attnbench
