// Fuzzes the paths users write outside the study's own keys: each input line is a --set PATH=VALUE, a
// matrix axis (a line starting with ~) or an include entry's key (a line starting with !), against a
// fixed study with two layers. Any input must load or raise ConfigError.
#include "study/study.h"

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

const char* kStudy = R"(name: f
data: {embedder: synthetic, seq_len: 8}
attention:
  - {name: a, plugin: mha, params: {heads: 2}}
  - {name: b, plugin: reservoir, params: {res_size: 16}}
run: {seed_len: 2}
)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  attnbench::LoadOptions options;
  options.has_param = [](const std::string& plugin, const std::string& key) {
    return key == "heads" || (plugin == "reservoir" && key == "res_size");
  };
  options.param_names = [](const std::string& plugin) { return std::string(plugin == "reservoir" ? "heads, res_size" : "heads"); };
  YAML::Node root = YAML::Load(kStudy);
  YAML::Node matrix(YAML::NodeType::Map);
  for (size_t start = 0; start <= input.size();) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    const std::string line = input.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line[0] == '~') {
      matrix[line.substr(1)] = YAML::Load("[1, 2]");
    } else if (!line.empty() && line[0] == '!') {
      YAML::Node rule(YAML::NodeType::Map);
      rule[line.substr(1)] = 1;
      YAML::Node include = matrix["include"];
      if (!include.IsSequence()) include = YAML::Node(YAML::NodeType::Sequence);
      include.push_back(rule);
      matrix["include"] = include;
    } else {
      options.overrides.push_back(line);
    }
  }
  if (matrix.size() > 0) root["matrix"] = matrix;
  YAML::Emitter out;
  out << root;
  if (!out.good()) return 0;  // a key the emitter cannot write is no study anyone could have
  try {
    attnbench::load_study_text(out.c_str(), "fuzz.yaml", options);
  } catch (const attnbench::ConfigError&) {
  }
  return 0;
}
