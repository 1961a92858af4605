// The steps a Tokenizer is built from, made from their tokenizer.json objects (or, for a checkpoint
// without tokenizer.json, from its older files). Internal to the text library.
#pragma once

#include "tokenizer.h"

#include <nlohmann/json.hpp>

#include <unordered_map>
#include <utility>

namespace attnbench::text {

// An Oniguruma regular expression, the engine the tokenizers library uses, with its default syntax.
class Regex {
 public:
  explicit Regex(const std::string& pattern);  // throws TokenizerError for a pattern that does not compile
  // The [begin, end) byte ranges of the matches, left to right, non-overlapping (an empty match moves
  // on by one character).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;

 private:
  std::shared_ptr<void> regex_;
};

// `where` names the file and the part ("tokenizer.json: normalizer") for error messages.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<TokenModel> make_model(const nlohmann::json& j, const std::string& where);

std::unique_ptr<Normalizer> bert_normalizer(bool clean_text, bool chinese_chars, bool strip_accents, bool lowercase);
std::unique_ptr<PreTokenizer> bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> byte_level_pre_tokenizer(bool add_prefix_space);

// vocab.txt: a token a line, its id the line number.
std::unordered_map<std::string, int64_t> read_vocab_txt(const std::string& path);
std::unique_ptr<TokenModel> make_wordpiece(std::unordered_map<std::string, int64_t> vocab, const std::string& unk,
                                           const std::string& prefix, int64_t max_chars, const std::string& where);
struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};
// merges: pairs in priority order.
std::unique_ptr<TokenModel> make_bpe(std::unordered_map<std::string, int64_t> vocab,
                                     const std::vector<std::pair<std::string, std::string>>& merges,
                                     const BpeOptions& options, const std::string& where);
// pieces: (token, log probability), the id a piece's index.
std::unique_ptr<TokenModel> make_unigram(std::vector<std::pair<std::string, double>> pieces, std::optional<int64_t> unk_id,
                                         bool byte_fallback, const std::string& where);

// GPT-2's reversible map of bytes to printable characters, byte b to kByteChars[b] (UTF-8).
const std::vector<std::string>& byte_chars();

}  // namespace attnbench::text
