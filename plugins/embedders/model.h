// Hugging Face text models in LibTorch, loaded from a checkpoint directory (config.json,
// model.safetensors) and returning the last hidden state as transformers' AutoModel does. The family
// comes from config.json's model_type: BERT-style post-norm encoders (bert; distilbert; roberta and
// xlm-roberta, whose positions start after the padding id) and GPT-2-style pre-norm causal decoders
// (gpt2).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench::text {

class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Family { kBert, kDistilBert, kRoberta, kGpt2 };

struct ModelConfig {
  std::string model_type;  // as config.json says it
  Family family = Family::kBert;
  int64_t vocab_size = 0, hidden_size = 0, layers = 0, heads = 0, intermediate_size = 0;
  int64_t max_positions = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";
  int64_t pad_token_id = 1;                // roberta: position ids count from pad_token_id + 1
  bool scale_attn_weights = true;          // gpt2: scores divided by sqrt(head width)
  bool scale_attn_by_inverse_layer_idx = false;  // gpt2: and by the layer's number
};

// Every model_type config.json may name, in the order the error messages list them.
const std::vector<std::string>& supported_model_types();

// Reads `model_dir`/config.json; throws ModelError for a missing file, an unsupported model_type (the
// message lists the supported ones), an unsupported activation or missing sizes.
ModelConfig read_model_config(const std::string& model_dir);

class TextModel {
 public:
  virtual ~TextModel() = default;
  // ids: (S, L) int64 token ids, every sequence L long (no padding). Returns (S, L, hidden) in the
  // model's dtype.
  virtual at::Tensor forward(const at::Tensor& ids) const = 0;
  const ModelConfig& config() const { return config_; }

 protected:
  explicit TextModel(ModelConfig config) : config_(std::move(config)) {}
  at::Tensor activation(const at::Tensor& x) const;
  // Throws ModelError when the sequences need more positions than the model has, or an id is outside
  // its vocabulary (a tokenizer that does not belong to the checkpoint).
  void check_input(const at::Tensor& ids) const;

  ModelConfig config_;
};

// The model `model_dir`'s config.json names, weights on `device` in `dtype`.
std::unique_ptr<TextModel> load_model(const std::string& model_dir, c10::Device device, c10::ScalarType dtype);

// bert, distilbert, roberta, xlm-roberta: loads model.safetensors (names with or without the base
// model's prefix, "bert." or "roberta." or "distilbert."; LayerNorm gamma/beta or weight/bias). Throws
// ModelError naming a missing or misshapen tensor.
class BertModel final : public TextModel {
 public:
  BertModel(const std::string& model_dir, c10::Device device, c10::ScalarType dtype);
  at::Tensor forward(const at::Tensor& ids) const override;

 private:
  struct Layer {
    at::Tensor qkv_w, qkv_b, out_w, out_b, ln1_w, ln1_b, inter_w, inter_b, output_w, output_b, ln2_w, ln2_b;
  };
  at::Tensor word_, position_, token_type_, ln_w_, ln_b_;
  std::vector<Layer> layers_;
};

// gpt2: token and position embeddings, pre-norm blocks with causal attention, a final LayerNorm.
// Conv1D weights are stored (in, out) and are transposed once when loaded.
class Gpt2Model final : public TextModel {
 public:
  Gpt2Model(const std::string& model_dir, c10::Device device, c10::ScalarType dtype);
  at::Tensor forward(const at::Tensor& ids) const override;

 private:
  struct Block {
    at::Tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fc_proj_w, fc_proj_b;
  };
  at::Tensor wte_, wpe_, lnf_w_, lnf_b_;
  std::vector<Block> blocks_;
};

}  // namespace attnbench::text
