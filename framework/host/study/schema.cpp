#include "study/schema.h"

#include "study/study.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnbench {
namespace {

template <typename T>
std::function<void(Cell&, const SettingValue&)> to(T Cell::*field) {
  return [field](Cell& cell, const SettingValue& v) { cell.*field = std::get<T>(v); };
}
template <typename T>
std::function<void(Cell&, const SettingValue&)> to(T MeasureSettings::*field) {
  return [field](Cell& cell, const SettingValue& v) { cell.measure.*field = std::get<T>(v); };
}
template <typename T>
std::function<void(Study&, const SettingValue&)> to_study(T Study::*field) {
  return [field](Study& study, const SettingValue& v) { study.*field = std::get<T>(v); };
}
std::function<std::vector<std::string>()> one_of(std::vector<std::string> choices) {
  return [choices] { return choices; };
}

StudyKey key(std::string path, SettingType type, std::string default_text, std::string help) {
  StudyKey k;
  k.path = std::move(path);
  k.type = type;
  k.default_text = std::move(default_text);
  k.help = std::move(help);
  return k;
}
StudyKey with_range(StudyKey k, double min, double max = std::numeric_limits<double>::infinity()) {
  k.min = min;
  k.max = max;
  return k;
}

// Bounds on sizes, so that a slip of the keyboard (1e8 for 1e3) is an error at load time instead of a
// cell that exhausts memory or runs for days. Each is far beyond what a study here needs.
constexpr double kMaxSamples = 1 << 20;
constexpr double kMaxSeqLen = 1 << 22;   // 4M tokens: a step cell's per-position list alone is 50 MB of JSON
constexpr double kMaxHorizon = 4096;     // prefix recompute in the closed loop costs horizon^2 / 2 tokens and more
constexpr double kMaxRuns = 1e6;         // every run's time is kept (the stats' samples)
constexpr double kMaxTimeMs = 864e5;     // a day

std::vector<StudyKey> core_keys() {
  using T = SettingType;
  std::vector<StudyKey> keys;
  auto study_key = [&](StudyKey k, std::function<void(Study&, const SettingValue&)> bind) {
    k.scope = Scope::kStudy;
    k.hashed = Hashed::kNever;
    k.to_study = std::move(bind);
    keys.push_back(std::move(k));
  };
  auto cell_key = [&](StudyKey k, std::function<void(Cell&, const SettingValue&)> bind) {
    k.to_cell = std::move(bind);
    keys.push_back(std::move(k));
  };
  study_key(key("name", T::kString, "study", "the study's name; the default results file is named after it"),
            to_study(&Study::name));
  study_key(key("description", T::kString, "", "one line for humans"), to_study(&Study::description));

  cell_key(key("data.embedder", T::kString, "synthetic", "the embedder plugin that makes the tokens (name or path)"),
           to(&Cell::embedder));
  cell_key(with_range(key("data.samples", T::kInt, "1", "sequences to embed; runs cycle through them in batches"), 1, kMaxSamples),
           to(&Cell::samples));
  cell_key(with_range(key("data.seq_len", T::kInt, "256", "tokens per sequence (L)"), 1, kMaxSeqLen), to(&Cell::seq_len));

  StudyKey device = key("run.device", T::kString, "cpu", "where the layer runs");
  device.choices = one_of({"cpu", "cuda"});
  cell_key(device, to(&Cell::device));
  cell_key(key("run.amp", T::kBool, "false", "compute in a half-precision dtype (see amp_dtype)"), to(&Cell::amp));
  StudyKey amp_dtype = key("run.amp_dtype", T::kString, "auto", "auto: float16 on CUDA, bfloat16 on the CPU");
  amp_dtype.choices = one_of({"auto", "float16", "bfloat16"});
  cell_key(amp_dtype, to(&Cell::amp_dtype));
  cell_key(with_range(key("run.batch", T::kInt, "1", "sequences per call (B); must divide data.samples"), 1),
           to(&Cell::batch));
  cell_key(with_range(key("run.threads", T::kInt, "1", "CPU threads: the BLAS's (torch's pool too, except on OpenBLAS builds, where it stays at 1 so the two do not fight) and a streamed token's step's"), 1, 1024), to(&Cell::threads));
  cell_key(with_range(key("run.seed", T::kInt, "0", "seed of the data and of layers with random weights"), 0),
           to(&Cell::seed));
  cell_key(with_range(key("run.seed_len", T::kInt, "16", "rollout: tokens fed before the closed loop"), 1),
           to(&Cell::seed_len));
  cell_key(with_range(key("run.horizon", T::kInt, "32",
                          "rollout: outputs fed back as inputs (prefix recompute runs a forward per output, each "
                          "longer than the last)"), 0, kMaxHorizon),
           to(&Cell::horizon));
  StudyKey max_memory = key("run.max_memory", T::kString, "auto",
                            "bound on the cell's tensor memory on the CPU: auto (leave 10% of the machine), none, or a "
                            "size such as 8GB; a cell that would pass it fails alone instead of the machine running out");
  max_memory.hashed = Hashed::kNever;
  max_memory.check = [](const SettingValue& v) {
    const std::string& text = std::get<std::string>(v);
    return text == "auto" || text == "none" || parse_bytes(text) > 0 ? std::string()
                                                                     : "'" + text + "' is not auto, none or a size such as 8GB";
  };
  keys.push_back(max_memory);
  StudyKey isolate = key("run.isolate", T::kBool, "false",
                         "run each cell in a child process: a crash (a signal) becomes that cell's error naming the "
                         "signal, and the other cells run; set it for the whole study");
  isolate.hashed = Hashed::kNever;
  keys.push_back(isolate);

  cell_key(with_range(key("measure.warmup", T::kInt, "1", "untimed runs before the timed ones"), 0, kMaxRuns),
           to(&MeasureSettings::warmup));
  cell_key(with_range(key("measure.min_runs", T::kInt, "5", "timed runs at least"), 1, kMaxRuns),
           to(&MeasureSettings::min_runs));
  cell_key(with_range(key("measure.max_runs", T::kInt, "1000", "timed runs at most (>= min_runs)"), 1, kMaxRuns),
           to(&MeasureSettings::max_runs));
  cell_key(with_range(key("measure.min_time_ms", T::kFloat, "200", "keep running until the runs took this long"), 0,
                      kMaxTimeMs),
           to(&MeasureSettings::min_time_ms));
  cell_key(with_range(key("measure.unstable_cv", T::kFloat, "0.1", "flag a timing unstable above this stdev/mean"), 0),
           to(&MeasureSettings::unstable_cv));

  study_key(key("output.results", T::kString, "", "results file (JSON Lines); empty: results/<name>.jsonl"),
            to_study(&Study::results_path));
  study_key(key("output.save_outputs", T::kString, "",
                "folder for each cell's input and outputs as .safetensors (as --save-outputs); empty: none"),
            to_study(&Study::save_outputs_dir));
  return keys;
}

std::vector<StudyKey>& registry() {
  static std::vector<StudyKey> keys = core_keys();
  return keys;
}

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

}  // namespace

const std::vector<StudyKey>& study_keys() { return registry(); }

const StudyKey* find_study_key(const std::string& path) {
  for (const StudyKey& k : registry()) {
    if (k.path == path) return &k;
  }
  return nullptr;
}

bool register_study_keys(std::vector<StudyKey> keys) {
  for (StudyKey& k : keys) {
    if (find_study_key(k.path) != nullptr) throw std::logic_error("study key '" + k.path + "' is defined twice");
    registry().push_back(std::move(k));
  }
  return true;
}

std::vector<std::string> study_sections() {
  std::vector<std::string> out{"name", "description", "data", "attention", "run", "measure", "output"};
  // Sections modes added, by name (their registration order is the linker's); the matrix closes the file.
  std::vector<std::string> added;
  for (const StudyKey& k : registry()) {
    if (std::find(out.begin(), out.end(), k.section()) == out.end() &&
        std::find(added.begin(), added.end(), k.section()) == added.end()) {
      added.push_back(k.section());
    }
  }
  std::sort(added.begin(), added.end());
  out.insert(out.end(), added.begin(), added.end());
  out.push_back("matrix");
  return out;
}

template <typename T>
const T& Settings::get(const std::string& path) const {
  auto it = values_.find(path);
  if (it == values_.end()) throw std::logic_error("study setting '" + path + "' does not exist");
  const T* v = std::get_if<T>(&it->second);
  if (v == nullptr) throw std::logic_error("study setting '" + path + "' has another type");
  return *v;
}
template const bool& Settings::get<bool>(const std::string&) const;
template const int64_t& Settings::get<int64_t>(const std::string&) const;
template const double& Settings::get<double>(const std::string&) const;
template const std::string& Settings::get<std::string>(const std::string&) const;
template const std::vector<std::string>& Settings::get<std::vector<std::string>>(const std::string&) const;

int64_t parse_bytes(const std::string& text) {
  size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    return -1;
  }
  std::string unit = text.substr(used);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::vector<std::pair<std::string, double>> units{
      {"", 1}, {"B", 1}, {"KB", 1024.0}, {"MB", 1024.0 * 1024}, {"GB", 1024.0 * 1024 * 1024}, {"TB", 1024.0 * 1024 * 1024 * 1024}};
  for (const auto& [name, scale] : units) {
    if (unit == name && std::isfinite(number) && number > 0 && number * scale < 9e18) {
      return static_cast<int64_t>(number * scale);
    }
  }
  return -1;
}

nlohmann::json setting_to_json(const SettingValue& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

const char* setting_type_name(SettingType type) {
  switch (type) {
    case SettingType::kBool: return "bool";
    case SettingType::kInt: return "int";
    case SettingType::kFloat: return "float";
    case SettingType::kString: return "string";
    case SettingType::kStringList: return "list of strings";
  }
  return "?";
}

std::string study_keys_markdown() {
  std::string out = "| key | type | default | valid | in the hash | meaning |\n|---|---|---|---|---|---|\n";
  // Grouped by section, in the order a study file has them; registration order within a section.
  const std::vector<std::string> sections = study_sections();
  std::vector<StudyKey> keys = registry();
  std::stable_sort(keys.begin(), keys.end(), [&](const StudyKey& a, const StudyKey& b) {
    return std::find(sections.begin(), sections.end(), a.section()) < std::find(sections.begin(), sections.end(), b.section());
  });
  for (const StudyKey& k : keys) {
    std::string valid;
    if (k.choices) {
      for (const std::string& c : k.choices()) valid += (valid.empty() ? "" : ", ") + c;
    } else if (k.type == SettingType::kInt || k.type == SettingType::kFloat) {
      if (!std::isinf(k.min) && !std::isinf(k.max)) valid = fmt::format("{} to {}", format_number(k.min), format_number(k.max));
      else if (!std::isinf(k.min)) valid = fmt::format(">= {}", format_number(k.min));
    } else if (k.type == SettingType::kStringList && !std::isinf(k.min)) {
      valid = fmt::format("at least {} item(s)", format_number(k.min));
    }
    const char* hashed = k.hashed == Hashed::kAlways ? "yes" : k.hashed == Hashed::kWhenSet ? "when not the default" : "no";
    out += fmt::format("| `{}` | {} | `{}` | {} | {} | {} |\n", k.path, setting_type_name(k.type),
                       k.default_text.empty() ? "\"\"" : k.default_text, valid, hashed, k.help);
  }
  return out;
}

}  // namespace attnbench
