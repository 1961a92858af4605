// Hugging Face's fast-tokenizer pipeline, read from a checkpoint's tokenizer.json (or, without one,
// from its older files): added tokens, normalizer, pre-tokenizer, model (WordPiece, byte-level BPE or
// Unigram) and post-processor, each step as the tokenizers library defines it, so that the ids equal
// the library's for the file (and AutoTokenizer's wherever transformers runs the file's pipeline; since
// transformers 5 some tokenizer classes substitute their own: docs/embedders.md). Text only: no offsets,
// no padding, no pairs.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench::text {

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Text to text, applied before splitting (BertNormalizer, NFKC, Precompiled, ...).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(const std::string& text) const = 0;
};

// Text to words. `at_start`: the text begins the input (Metaspace's prepend_scheme "first").
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void split(const std::string& text, bool at_start, std::vector<std::string>& words) const = 0;
};

// A word to ids.
class TokenModel {
 public:
  virtual ~TokenModel() = default;
  virtual void encode(const std::string& word, std::vector<int64_t>& ids) const = 0;
  virtual std::optional<int64_t> id(const std::string& token) const = 0;
  virtual int64_t size() const = 0;
  virtual const char* kind() const = 0;
};

// A token matched in the text before anything else (special tokens such as [CLS] or <mask>).
struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = true;
};

class Tokenizer {
 public:
  // `dir`/tokenizer.json when it exists; otherwise vocab.txt (WordPiece, with tokenizer_config.json's
  // do_lower_case) or vocab.json and merges.txt (byte-level BPE), with the special tokens
  // transformers' converters give the `model_type` (config.json's). Throws TokenizerError naming the
  // file and what is wrong or unsupported.
  static Tokenizer from_directory(const std::string& dir, const std::string& model_type);
  static Tokenizer from_json_file(const std::string& path);
  // A BERT vocab.txt, as BertTokenizerFast converts it: [CLS] text [SEP].
  static Tokenizer from_vocab_txt(const std::string& path, bool lower_case = true);

  // The ids AutoTokenizer gives (special tokens included); when max_length > 0 the text's tokens are
  // cut so that the whole fits, as truncation=True does.
  std::vector<int64_t> encode(const std::string& text, int64_t max_length = 0) const;
  // What was read, e.g. "tokenizer.json (BPE)", for the results' details.
  const std::string& source() const { return source_; }

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  static Tokenizer from_json(const nlohmann::json& j, const std::string& path);
  static Tokenizer from_files(const std::string& dir, const std::string& model_type);
  void content_ids(const std::string& text, std::vector<int64_t>& ids) const;
  void add_token(AddedToken token);

  std::vector<AddedToken> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<TokenModel> model_;
  std::vector<int64_t> prefix_, suffix_;  // the post-processor's special tokens around a single text
  std::string source_;
};

}  // namespace attnbench::text
