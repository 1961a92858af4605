#include "model.h"

#include <attnbench/support/safetensors.h>
#include <attnbench/support/torch_compat.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace attnbench::text {
namespace {

// A size from config.json; beyond 2^24 (or below `least`) it is a broken file, not a model, and would
// surface later as an allocation failure that names nothing.
int64_t require_int(const nlohmann::json& j, const std::string& key, const std::string& path, int64_t least = 1) {
  if (!j.contains(key) || !j[key].is_number_integer()) throw ModelError(path + ": config has no integer '" + key + "'");
  const int64_t value = j[key].get<int64_t>();
  constexpr int64_t kMost = int64_t{1} << 24;
  if (value < least || value > kMost) {
    throw ModelError(path + ": '" + key + "' is " + std::to_string(value) + "; it must be in [" + std::to_string(least) +
                     ", " + std::to_string(kMost) + "]");
  }
  return value;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// The tensors of model.safetensors, found under their base-model names with or without the prefix a
// task head's checkpoint adds ("bert.", "transformer.", ...), LayerNorm weight/bias also as gamma/beta.
class Checkpoint {
 public:
  Checkpoint(const std::string& model_dir, std::string prefix, c10::Device device, c10::ScalarType dtype)
      : path_((std::filesystem::path(model_dir) / "model.safetensors").string()),
        file_(load_safetensors(path_)),
        prefix_(std::move(prefix)),
        device_(device),
        dtype_(dtype) {}

  at::Tensor get(const std::string& name, at::IntArrayRef shape) const {
    std::vector<std::string> names{name};
    const bool layer_norm = name.find("LayerNorm") != std::string::npos;
    auto ends_with = [&](const std::string& suffix) {
      return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (layer_norm && ends_with(".weight")) names.push_back(name.substr(0, name.size() - 7) + ".gamma");
    if (layer_norm && ends_with(".bias")) names.push_back(name.substr(0, name.size() - 5) + ".beta");
    for (const std::string& n : names) {
      for (const std::string& candidate : {n, prefix_ + n}) {
        if (file_.tensors.count(candidate)) return require_tensor(file_, path_, candidate, shape).to(device_, dtype_).contiguous();
      }
    }
    return require_tensor(file_, path_, name, shape);  // throws: missing, naming the file's tensors
  }

 private:
  std::string path_;
  TensorFile file_;
  std::string prefix_;
  c10::Device device_;
  c10::ScalarType dtype_;
};

}  // namespace

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> types{"bert", "distilbert", "roberta", "xlm-roberta", "gpt2"};
  return types;
}

namespace {

ModelConfig parse_model_config(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) throw ModelError(path + ": cannot open (is " + model_dir + " a Hugging Face checkpoint directory?)");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw ModelError(path + ": not a JSON object");
  ModelConfig c;
  c.model_type = j.value("model_type", "");
  const auto& types = supported_model_types();
  if (std::find(types.begin(), types.end(), c.model_type) == types.end()) {
    throw ModelError(path + ": model_type '" + c.model_type + "' is not supported; supported: " + join(types));
  }
  c.vocab_size = require_int(j, "vocab_size", path);
  if (c.model_type == "gpt2") {
    c.family = Family::kGpt2;
    c.hidden_size = require_int(j, "n_embd", path);
    c.layers = require_int(j, "n_layer", path, 0);
    c.heads = require_int(j, "n_head", path);
    c.intermediate_size = j.contains("n_inner") && j["n_inner"].is_number_integer() ? j["n_inner"].get<int64_t>() : 4 * c.hidden_size;
    c.max_positions = j.contains("n_positions") ? require_int(j, "n_positions", path) : j.value("n_ctx", int64_t{1024});
    c.layer_norm_eps = j.value("layer_norm_epsilon", 1e-5);
    c.hidden_act = j.value("activation_function", std::string("gelu_new"));
    c.scale_attn_weights = j.value("scale_attn_weights", true);
    c.scale_attn_by_inverse_layer_idx = j.value("scale_attn_by_inverse_layer_idx", false);
    c.type_vocab_size = 0;
  } else if (c.model_type == "distilbert") {
    c.family = Family::kDistilBert;
    c.hidden_size = require_int(j, "dim", path);
    c.layers = require_int(j, "n_layers", path, 0);
    c.heads = require_int(j, "n_heads", path);
    c.intermediate_size = require_int(j, "hidden_dim", path);
    c.max_positions = j.value("max_position_embeddings", int64_t{512});
    c.hidden_act = j.value("activation", std::string("gelu"));
    c.layer_norm_eps = 1e-12;  // DistilBERT's LayerNorms fix it; config.json does not say
    c.type_vocab_size = 0;
  } else {
    c.family = c.model_type == "bert" ? Family::kBert : Family::kRoberta;
    c.hidden_size = require_int(j, "hidden_size", path);
    c.layers = require_int(j, "num_hidden_layers", path, 0);
    c.heads = require_int(j, "num_attention_heads", path);
    c.intermediate_size = require_int(j, "intermediate_size", path);
    c.max_positions = j.value("max_position_embeddings", int64_t{512});
    c.type_vocab_size = j.value("type_vocab_size", int64_t{2});
    c.layer_norm_eps = j.value("layer_norm_eps", 1e-12);
    c.hidden_act = j.value("hidden_act", std::string("gelu"));
    if (c.family == Family::kRoberta) {
      c.pad_token_id = j.contains("pad_token_id") && j["pad_token_id"].is_number_integer() ? j["pad_token_id"].get<int64_t>() : 1;
    }
    if (j.value("position_embedding_type", std::string("absolute")) != "absolute") {
      throw ModelError(path + ": only absolute position embeddings are supported");
    }
  }
  if (c.hidden_act != "gelu" && c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "relu") {
    throw ModelError(path + ": hidden_act '" + c.hidden_act + "' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)");
  }
  if (c.heads < 1 || c.hidden_size % c.heads != 0) throw ModelError(path + ": the number of attention heads must divide the hidden size");
  if (c.family != Family::kGpt2 && c.family != Family::kDistilBert && c.type_vocab_size < 1) {
    throw ModelError(path + ": type_vocab_size must be at least 1");
  }
  return c;
}

}  // namespace

ModelConfig read_model_config(const std::string& model_dir) {
  try {
    return parse_model_config(model_dir);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
    throw ModelError((std::filesystem::path(model_dir) / "config.json").string() + ": " + e.what());
  }
}

at::Tensor TextModel::activation(const at::Tensor& x) const {
  if (config_.hidden_act == "relu") return at::relu(x);
  if (config_.hidden_act == "gelu") return at::gelu(x);  // exact, erf-based, as transformers' "gelu"
  // gelu_new / gelu_pytorch_tanh: the tanh approximation.
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + at::tanh(c * (x + 0.044715 * at::pow(x, 3))));
}

void TextModel::check_input(const at::Tensor& ids) const {
  TORCH_CHECK(ids.dim() == 2, "ids must be (S, L)");
  const int64_t length = ids.size(1);
  // RoBERTa's positions start after the padding id, so it has that many fewer.
  const int64_t available = config_.family == Family::kRoberta ? config_.max_positions - config_.pad_token_id - 1 : config_.max_positions;
  if (length > available) {
    throw ModelError(config_.model_type + ": " + std::to_string(length) + " tokens exceed the model's " +
                     std::to_string(available) + " positions; lower data.seq_len");
  }
  if (ids.numel() == 0) return;
  const int64_t low = ids.min().item<int64_t>(), high = ids.max().item<int64_t>();
  if (low < 0 || high >= config_.vocab_size) {
    throw ModelError(config_.model_type + ": token id " + std::to_string(low < 0 ? low : high) + " is outside the model's " +
                     std::to_string(config_.vocab_size) + "-token vocabulary: the tokenizer files do not belong to this checkpoint");
  }
}

std::unique_ptr<TextModel> load_model(const std::string& model_dir, c10::Device device, c10::ScalarType dtype) {
  if (read_model_config(model_dir).family == Family::kGpt2) return std::make_unique<Gpt2Model>(model_dir, device, dtype);
  return std::make_unique<BertModel>(model_dir, device, dtype);
}

BertModel::BertModel(const std::string& model_dir, c10::Device device, c10::ScalarType dtype)
    : TextModel(read_model_config(model_dir)) {
  if (config_.family == Family::kGpt2) throw ModelError(model_dir + ": a gpt2 checkpoint is not an encoder; load it with load_model");
  const bool distil = config_.family == Family::kDistilBert;
  const std::string prefix = distil ? "distilbert." : config_.family == Family::kRoberta ? "roberta." : "bert.";
  Checkpoint file(model_dir, prefix, device, dtype);
  const int64_t h = config_.hidden_size, inter = config_.intermediate_size;
  word_ = file.get("embeddings.word_embeddings.weight", {config_.vocab_size, h});
  position_ = file.get("embeddings.position_embeddings.weight", {config_.max_positions, h});
  if (!distil) token_type_ = file.get("embeddings.token_type_embeddings.weight", {config_.type_vocab_size, h});
  ln_w_ = file.get("embeddings.LayerNorm.weight", {h});
  ln_b_ = file.get("embeddings.LayerNorm.bias", {h});
  // DistilBERT names the same post-norm layer differently.
  struct Names {
    const char *query, *key, *value, *out, *ln1, *inter, *output, *ln2;
  };
  const Names names = distil ? Names{"attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm",
                                     "ffn.lin1", "ffn.lin2", "output_layer_norm"}
                             : Names{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                                     "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
  for (int64_t i = 0; i < config_.layers; ++i) {
    const std::string p = (distil ? "transformer.layer." : "encoder.layer.") + std::to_string(i) + ".";
    auto weight = [&](const char* module, at::IntArrayRef shape) { return file.get(p + module + ".weight", shape); };
    auto bias = [&](const char* module, int64_t n) { return file.get(p + module + ".bias", {n}); };
    Layer l;
    // Query, key and value as one (3H, H) projection: one GEMM instead of three.
    l.qkv_w = at::cat({weight(names.query, {h, h}), weight(names.key, {h, h}), weight(names.value, {h, h})});
    l.qkv_b = at::cat({bias(names.query, h), bias(names.key, h), bias(names.value, h)});
    l.out_w = weight(names.out, {h, h});
    l.out_b = bias(names.out, h);
    l.ln1_w = weight(names.ln1, {h});
    l.ln1_b = bias(names.ln1, h);
    l.inter_w = weight(names.inter, {inter, h});
    l.inter_b = bias(names.inter, inter);
    l.output_w = weight(names.output, {h, inter});
    l.output_b = bias(names.output, h);
    l.ln2_w = weight(names.ln2, {h});
    l.ln2_b = bias(names.ln2, h);
    layers_.push_back(std::move(l));
  }
}

at::Tensor BertModel::forward(const at::Tensor& ids) const {
  check_input(ids);
  const int64_t s = ids.size(0), length = ids.size(1), h = config_.hidden_size, heads = config_.heads, dh = h / heads;
  const std::vector<int64_t> ln_shape{h};
  at::Tensor ids_dev = ids.to(word_.device());
  at::Tensor x = at::embedding(word_, ids_dev);
  if (config_.family == Family::kRoberta) {
    // transformers' create_position_ids_from_input_ids: padding tokens sit at pad_token_id, the others
    // count up from pad_token_id + 1.
    at::Tensor not_pad = ids_dev.ne(config_.pad_token_id).to(at::kLong);
    at::Tensor positions = at::cumsum(not_pad, 1) * not_pad + config_.pad_token_id;
    x = x + at::embedding(position_, positions);
  } else {
    x = x + position_.narrow(0, 0, length).unsqueeze(0);
  }
  if (token_type_.defined()) x = x + token_type_[0];
  x = at::layer_norm(x, ln_shape, ln_w_, ln_b_, config_.layer_norm_eps);
  for (const Layer& l : layers_) {
    at::Tensor qkv = at::linear(x, l.qkv_w, l.qkv_b).view({s, length, 3, heads, dh}).permute({2, 0, 3, 1, 4});
    // Every token sees every token: these encoders are bidirectional and there is no padding.
    at::Tensor context = attnbench::compat::attention(qkv[0], qkv[1], qkv[2], 0, /*causal=*/false);
    context = context.transpose(1, 2).reshape({s, length, h});
    x = at::layer_norm(at::linear(context, l.out_w, l.out_b) + x, ln_shape, l.ln1_w, l.ln1_b, config_.layer_norm_eps);
    at::Tensor inner = activation(at::linear(x, l.inter_w, l.inter_b));
    x = at::layer_norm(at::linear(inner, l.output_w, l.output_b) + x, ln_shape, l.ln2_w, l.ln2_b, config_.layer_norm_eps);
  }
  return x;
}

Gpt2Model::Gpt2Model(const std::string& model_dir, c10::Device device, c10::ScalarType dtype)
    : TextModel(read_model_config(model_dir)) {
  if (config_.family != Family::kGpt2) throw ModelError(model_dir + ": not a gpt2 checkpoint; load it with load_model");
  Checkpoint file(model_dir, "transformer.", device, dtype);
  const int64_t h = config_.hidden_size, inner = config_.intermediate_size;
  wte_ = file.get("wte.weight", {config_.vocab_size, h});
  wpe_ = file.get("wpe.weight", {config_.max_positions, h});
  lnf_w_ = file.get("ln_f.weight", {h});
  lnf_b_ = file.get("ln_f.bias", {h});
  for (int64_t i = 0; i < config_.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    // Conv1D computes x @ W + b with W stored (in, out); at::linear wants (out, in).
    auto conv = [&](const std::string& module, int64_t in, int64_t out) { return file.get(p + module + ".weight", {in, out}).t().contiguous(); };
    Block b;
    b.ln1_w = file.get(p + "ln_1.weight", {h});
    b.ln1_b = file.get(p + "ln_1.bias", {h});
    b.qkv_w = conv("attn.c_attn", h, 3 * h);
    b.qkv_b = file.get(p + "attn.c_attn.bias", {3 * h});
    b.proj_w = conv("attn.c_proj", h, h);
    b.proj_b = file.get(p + "attn.c_proj.bias", {h});
    b.ln2_w = file.get(p + "ln_2.weight", {h});
    b.ln2_b = file.get(p + "ln_2.bias", {h});
    b.fc_w = conv("mlp.c_fc", h, inner);
    b.fc_b = file.get(p + "mlp.c_fc.bias", {inner});
    b.fc_proj_w = conv("mlp.c_proj", inner, h);
    b.fc_proj_b = file.get(p + "mlp.c_proj.bias", {h});
    blocks_.push_back(std::move(b));
  }
}

at::Tensor Gpt2Model::forward(const at::Tensor& ids) const {
  check_input(ids);
  const int64_t s = ids.size(0), length = ids.size(1), h = config_.hidden_size, heads = config_.heads, dh = h / heads;
  const std::vector<int64_t> ln_shape{h};
  at::Tensor x = at::embedding(wte_, ids.to(wte_.device())) + wpe_.narrow(0, 0, length).unsqueeze(0);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    at::Tensor a = at::layer_norm(x, ln_shape, b.ln1_w, b.ln1_b, config_.layer_norm_eps);
    at::Tensor qkv = at::linear(a, b.qkv_w, b.qkv_b).view({s, length, 3, heads, dh}).permute({2, 0, 3, 1, 4});
    // attention() scales by 1/sqrt(dh); the options that change that scale the queries instead.
    double q_scale = config_.scale_attn_weights ? 1.0 : std::sqrt(static_cast<double>(dh));
    if (config_.scale_attn_by_inverse_layer_idx) q_scale /= static_cast<double>(i + 1);
    at::Tensor q = q_scale == 1.0 ? qkv[0] : qkv[0] * q_scale;
    at::Tensor context = attnbench::compat::attention(q, qkv[1], qkv[2], 0, /*causal=*/true);
    context = context.transpose(1, 2).reshape({s, length, h});
    x = x + at::linear(context, b.proj_w, b.proj_b);
    at::Tensor m = at::layer_norm(x, ln_shape, b.ln2_w, b.ln2_b, config_.layer_norm_eps);
    x = x + at::linear(activation(at::linear(m, b.fc_w, b.fc_b)), b.fc_proj_w, b.fc_proj_b);
  }
  return at::layer_norm(x, ln_shape, lnf_w_, lnf_b_, config_.layer_norm_eps);
}

}  // namespace attnbench::text
