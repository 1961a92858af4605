// Fuzzes the vocabulary reader and the WordPiece tokenizer: the input is read as a vocab.txt and, with a
// fixed vocabulary, tokenized as text (arbitrary bytes, invalid UTF-8 included).
#include "fuzz_util.h"
#include "wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnbench::text;
  static const std::string fixed = [] {
    const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n##s\na\n##b\n";
    return fuzz_input_file(reinterpret_cast<const uint8_t*>(vocab), sizeof(vocab) - 1, ".fixed_vocab");
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  WordPiece(fixed).encode(text, 64);
  try {
    WordPiece(fuzz_input_file(data, size, ".vocab")).encode("the abs", 16);
  } catch (const TokenizerError&) {
  }
  return 0;
}
