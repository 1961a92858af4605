// Fuzzes the tokenizers: the input is read as a vocab.txt and as a tokenizer.json (a bad one must be a
// TokenizerError, never a crash) and tokenized as text (arbitrary bytes, invalid UTF-8 included) by a
// fixed vocab.txt and by each family's tokenizer.json under tests/fixtures/hf (WordPiece, byte-level
// BPE, Unigram with a precompiled character map).
#include "fuzz_util.h"
#include "tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnbench::text;
  static const std::vector<Tokenizer> fixed = [] {
    const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\na\n##b\n";
    std::vector<Tokenizer> t;
    t.push_back(Tokenizer::from_vocab_txt(fuzz_input_file(reinterpret_cast<const uint8_t*>(vocab), sizeof(vocab) - 1, ".fixed_vocab")));
    for (const char* family : {"bert", "distilbert", "roberta", "xlm-roberta", "gpt2"}) {
      t.push_back(Tokenizer::from_json_file(std::string(ATTNBENCH_HF_FIXTURES) + "/" + family + "/tokenizer.json"));
    }
    return t;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const Tokenizer& t : fixed) t.encode(text, 64);
  try {
    Tokenizer::from_vocab_txt(fuzz_input_file(data, size, ".vocab")).encode("the abs", 16);
  } catch (const TokenizerError&) {
  }
  try {
    Tokenizer::from_json_file(fuzz_input_file(data, size, ".tokenizer.json")).encode("the abs [CLS] <s>", 16);
  } catch (const TokenizerError&) {
  }
  return 0;
}
