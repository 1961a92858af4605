// A BERT encoder in LibTorch that loads a Hugging Face checkpoint directory (config.json, vocab.txt,
// model.safetensors) and returns the last hidden state, as transformers' BertModel does.
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench::text {

class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BertConfig {
  int64_t vocab_size = 0, hidden_size = 0, layers = 0, heads = 0, intermediate_size = 0;
  int64_t max_positions = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";
};

// Reads config.json; throws ModelError for a missing file, a non-BERT architecture, an unsupported
// activation or missing sizes.
BertConfig read_bert_config(const std::string& model_dir);

class BertModel {
 public:
  // Loads `model_dir`/model.safetensors (names with or without a "bert." prefix, LayerNorm gamma/beta
  // or weight/bias) onto `device` in `dtype`. Throws ModelError naming a missing or misshapen tensor.
  BertModel(const std::string& model_dir, c10::Device device, c10::ScalarType dtype);

  // ids: (S, L) int64 token ids, every sequence L long (no padding). Returns (S, L, hidden) in the
  // model's dtype.
  at::Tensor forward(const at::Tensor& ids) const;
  const BertConfig& config() const { return config_; }

 private:
  struct Layer {
    at::Tensor qkv_w, qkv_b, out_w, out_b, ln1_w, ln1_b, inter_w, inter_b, output_w, output_b, ln2_w, ln2_b;
  };
  at::Tensor activation(const at::Tensor& x) const;

  BertConfig config_;
  at::Tensor word_, position_, token_type_, ln_w_, ln_b_;
  std::vector<Layer> layers_;
};

}  // namespace attnbench::text
