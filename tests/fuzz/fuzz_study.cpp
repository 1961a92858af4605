// Fuzzes the study loader: any input must load or raise ConfigError; nothing else may escape or crash.
#include "study/study.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    attnbench::load_study_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const attnbench::ConfigError&) {
  }
  return 0;
}
