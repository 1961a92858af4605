// Fuzzes the safetensors reader: any file must load or raise SafetensorsError.
#include "fuzz_util.h"
#include <attnbench/support/safetensors.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    attnbench::load_safetensors(fuzz_input_file(data, size, ".safetensors"));
  } catch (const attnbench::SafetensorsError&) {
  }
  return 0;
}
