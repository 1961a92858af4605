// Reading and writing the safetensors format (an 8-byte little-endian header length, a JSON header of
// name -> {dtype, shape, data_offsets}, then the raw bytes), which is how Hugging Face and PyTorch users
// exchange weights. Built-in plugins and the runner link it; it is not part of the SDK.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <stdexcept>
#include <string>

namespace attnbench {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorFile {
  std::map<std::string, at::Tensor> tensors;  // contiguous CPU tensors
  std::map<std::string, std::string> metadata;
};

// Throws SafetensorsError naming the file and what is wrong (missing, truncated, bad header, offsets
// outside the data, unsupported dtype).
TensorFile load_safetensors(const std::string& path);
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The tensor `name` with exactly `shape` and a floating-point dtype (an integral one with `integral`), or
// a SafetensorsError naming the file, the tensor and the names present (or its dtype).
at::Tensor require_tensor(const TensorFile& file, const std::string& path, const std::string& name,
                          at::IntArrayRef shape, bool integral = false);

}  // namespace attnbench
