#include "bert.h"

#include <attnbench/support/safetensors.h>
#include <attnbench/support/torch_compat.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace attnbench::text {
namespace {

int64_t require_int(const nlohmann::json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer()) throw ModelError(path + ": config has no integer '" + key + "'");
  return j[key].get<int64_t>();
}

}  // namespace

BertConfig read_bert_config(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw ModelError(path + ": cannot open (is " + model_dir + " a Hugging Face checkpoint directory?)");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw ModelError(path + ": not a JSON object");
  const std::string type = j.value("model_type", "");
  if (type != "bert") {
    throw ModelError(path + ": model_type '" + type + "' is not supported; the bert embedder runs BERT-architecture " +
                     "models (model_type \"bert\", e.g. bert-base-uncased, all-MiniLM-L6-v2)");
  }
  BertConfig c;
  c.vocab_size = require_int(j, "vocab_size", path);
  c.hidden_size = require_int(j, "hidden_size", path);
  c.layers = require_int(j, "num_hidden_layers", path);
  c.heads = require_int(j, "num_attention_heads", path);
  c.intermediate_size = require_int(j, "intermediate_size", path);
  c.max_positions = j.value("max_position_embeddings", int64_t{512});
  c.type_vocab_size = j.value("type_vocab_size", int64_t{2});
  c.layer_norm_eps = j.value("layer_norm_eps", 1e-12);
  c.hidden_act = j.value("hidden_act", std::string("gelu"));
  if (c.hidden_act != "gelu" && c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "relu") {
    throw ModelError(path + ": hidden_act '" + c.hidden_act + "' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)");
  }
  if (c.heads < 1 || c.hidden_size % c.heads != 0) throw ModelError(path + ": num_attention_heads must divide hidden_size");
  if (j.value("position_embedding_type", std::string("absolute")) != "absolute") {
    throw ModelError(path + ": only absolute position embeddings are supported");
  }
  return c;
}

BertModel::BertModel(const std::string& model_dir, c10::Device device, c10::ScalarType dtype)
    : config_(read_bert_config(model_dir)) {
  const std::string path = (std::filesystem::path(model_dir) / "model.safetensors").string();
  TensorFile file = load_safetensors(path);
  // Checkpoints saved from BertForPreTraining and friends prefix every name with "bert."; old ones name
  // LayerNorm parameters gamma and beta.
  auto get = [&](const std::string& name, at::IntArrayRef shape) {
    std::vector<std::string> candidates{name, "bert." + name};
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && name.find("LayerNorm") != std::string::npos) {
      candidates.push_back(name.substr(0, name.size() - 7) + ".gamma");
      candidates.push_back("bert." + name.substr(0, name.size() - 7) + ".gamma");
    }
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0 && name.find("LayerNorm") != std::string::npos) {
      candidates.push_back(name.substr(0, name.size() - 5) + ".beta");
      candidates.push_back("bert." + name.substr(0, name.size() - 5) + ".beta");
    }
    for (const std::string& c : candidates) {
      if (file.tensors.count(c)) return require_tensor(file, path, c, shape).to(device, dtype).contiguous();
    }
    return require_tensor(file, path, name, shape);  // throws: missing, naming the file's tensors
  };
  const int64_t h = config_.hidden_size, inter = config_.intermediate_size;
  word_ = get("embeddings.word_embeddings.weight", {config_.vocab_size, h});
  position_ = get("embeddings.position_embeddings.weight", {config_.max_positions, h});
  token_type_ = get("embeddings.token_type_embeddings.weight", {config_.type_vocab_size, h});
  ln_w_ = get("embeddings.LayerNorm.weight", {h});
  ln_b_ = get("embeddings.LayerNorm.bias", {h});
  for (int64_t i = 0; i < config_.layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    Layer l;
    // Query, key and value as one (3H, H) projection: one GEMM instead of three.
    l.qkv_w = at::cat({get(p + "attention.self.query.weight", {h, h}), get(p + "attention.self.key.weight", {h, h}),
                       get(p + "attention.self.value.weight", {h, h})});
    l.qkv_b = at::cat({get(p + "attention.self.query.bias", {h}), get(p + "attention.self.key.bias", {h}),
                       get(p + "attention.self.value.bias", {h})});
    l.out_w = get(p + "attention.output.dense.weight", {h, h});
    l.out_b = get(p + "attention.output.dense.bias", {h});
    l.ln1_w = get(p + "attention.output.LayerNorm.weight", {h});
    l.ln1_b = get(p + "attention.output.LayerNorm.bias", {h});
    l.inter_w = get(p + "intermediate.dense.weight", {inter, h});
    l.inter_b = get(p + "intermediate.dense.bias", {inter});
    l.output_w = get(p + "output.dense.weight", {h, inter});
    l.output_b = get(p + "output.dense.bias", {h});
    l.ln2_w = get(p + "output.LayerNorm.weight", {h});
    l.ln2_b = get(p + "output.LayerNorm.bias", {h});
    layers_.push_back(std::move(l));
  }
}

at::Tensor BertModel::activation(const at::Tensor& x) const {
  if (config_.hidden_act == "relu") return at::relu(x);
  if (config_.hidden_act == "gelu") return at::gelu(x);  // exact, erf-based, as transformers' "gelu"
  // gelu_new / gelu_pytorch_tanh: the tanh approximation.
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + at::tanh(c * (x + 0.044715 * at::pow(x, 3))));
}

at::Tensor BertModel::forward(const at::Tensor& ids) const {
  TORCH_CHECK(ids.dim() == 2, "bert: ids must be (S, L)");
  const int64_t s = ids.size(0), length = ids.size(1), h = config_.hidden_size, heads = config_.heads, dh = h / heads;
  if (length > config_.max_positions) {
    throw ModelError("bert: " + std::to_string(length) + " tokens exceed the model's " +
                     std::to_string(config_.max_positions) + " positions; lower data.seq_len");
  }
  const std::vector<int64_t> ln_shape{h};
  at::Tensor ids_dev = ids.to(word_.device());
  at::Tensor x = at::embedding(word_, ids_dev) + position_.narrow(0, 0, length).unsqueeze(0) + token_type_[0];
  x = at::layer_norm(x, ln_shape, ln_w_, ln_b_, config_.layer_norm_eps);
  for (const Layer& l : layers_) {
    at::Tensor qkv = at::linear(x, l.qkv_w, l.qkv_b).view({s, length, 3, heads, dh}).permute({2, 0, 3, 1, 4});
    // Every token sees every token: BERT is bidirectional and there is no padding.
    at::Tensor context = attnbench::compat::attention(qkv[0], qkv[1], qkv[2], 0, /*causal=*/false);
    context = context.transpose(1, 2).reshape({s, length, h});
    x = at::layer_norm(at::linear(context, l.out_w, l.out_b) + x, ln_shape, l.ln1_w, l.ln1_b, config_.layer_norm_eps);
    at::Tensor inner = activation(at::linear(x, l.inter_w, l.inter_b));
    x = at::layer_norm(at::linear(inner, l.output_w, l.output_b) + x, ln_shape, l.ln2_w, l.ln2_b, config_.layer_norm_eps);
  }
  return x;
}

}  // namespace attnbench::text
