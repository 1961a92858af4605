// The study's tokens: each distinct data section embedded once per process, since embedding is the
// costly input many cells share.
#pragma once

#include "study/study.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace attnbench {

class EmbeddingSource {
 public:
  struct Entry {
    at::Tensor tokens;  // (samples, seq_len, E) on the requested device, in the requested dtype
    nlohmann::json info;  // plugin, version, description, embed_dim, details
  };

  // The cell's data section embedded: data.samples sequences of data.seq_len tokens, or other counts
  // for modes that need more text (the same embedder, parameters and seed).
  const Entry& get(const Cell& cell, c10::Device device, c10::ScalarType dtype);
  const Entry& get(const Cell& cell, c10::Device device, c10::ScalarType dtype, int64_t samples, int64_t seq_len);

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace attnbench
