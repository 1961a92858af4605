// bert_dump MODEL_DIR TEXTS OUT.safetensors [max_length]
// Tokenizes each line of TEXTS with the checkpoint's vocab.txt and runs the BERT encoder on it (fp32),
// writing ids_<i> and hidden_<i> for scripts/hf_parity.py to compare with Hugging Face transformers.
#include "bert.h"
#include <attnbench/support/safetensors.h>
#include "wordpiece.h"

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: bert_dump MODEL_DIR TEXTS OUT.safetensors [max_length]\n";
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const int64_t max_length = argc > 4 ? std::stoll(argv[4]) : 512;
    attnbench::text::WordPiece tokenizer(dir + "/vocab.txt");
    attnbench::text::BertModel model(dir, c10::kCPU, at::kFloat);
    std::ifstream in(argv[2]);
    std::map<std::string, at::Tensor> out;
    std::string line;
    for (int i = 0; std::getline(in, line); ++i) {
      std::vector<int64_t> ids = tokenizer.encode(line, max_length);
      at::Tensor t = at::tensor(ids, at::kLong);
      out["ids_" + std::to_string(i)] = t;
      out["hidden_" + std::to_string(i)] = model.forward(t.unsqueeze(0))[0];
    }
    attnbench::save_safetensors(argv[3], out);
  } catch (const std::exception& e) {
    std::cerr << "bert_dump: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
