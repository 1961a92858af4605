// hf_dump MODEL_DIR TEXTS.json OUT.safetensors [max_length] [--ids-only]
// Tokenizes each string of TEXTS.json (a JSON list) with the checkpoint's tokenizer and runs its model
// on the ids (fp32, CPU), writing ids_<i> and hidden_<i> (not with --ids-only) for scripts/hf_parity.py
// to compare with Hugging Face transformers.
#include "model.h"
#include "tokenizer.h"
#include <attnbench/support/safetensors.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: hf_dump MODEL_DIR TEXTS.json OUT.safetensors [max_length] [--ids-only]\n";
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const int64_t max_length = argc > 4 && std::string(argv[4]) != "--ids-only" ? std::stoll(argv[4]) : 0;
    const bool ids_only = std::string(argv[argc - 1]) == "--ids-only";
    std::ifstream in(argv[2]);
    const nlohmann::json texts = nlohmann::json::parse(in);
    const auto config = attnbench::text::read_model_config(dir);
    const auto tokenizer = attnbench::text::Tokenizer::from_directory(dir, config.model_type);
    std::unique_ptr<attnbench::text::TextModel> model;
    if (!ids_only) model = attnbench::text::load_model(dir, c10::kCPU, at::kFloat);
    std::map<std::string, at::Tensor> out;
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int64_t> ids = tokenizer.encode(texts[i].get<std::string>(), max_length);
      at::Tensor t = at::tensor(ids, at::kLong);
      out["ids_" + std::to_string(i)] = t;
      if (model && !ids.empty()) out["hidden_" + std::to_string(i)] = model->forward(t.unsqueeze(0))[0];
    }
    attnbench::save_safetensors(argv[3], out);
  } catch (const std::exception& e) {
    std::cerr << "hf_dump: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
