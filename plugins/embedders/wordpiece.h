// The WordPiece tokenizer of Hugging Face's BertTokenizer for uncased models: text cleaning, CJK
// splitting, lower-casing, accent stripping (NFD, marks removed), punctuation splitting, then greedy
// longest-match-first pieces with "##" continuations.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnbench::text {

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class WordPiece {
 public:
  // vocab.txt: one token per line, its id the line number. Throws TokenizerError naming the file when it
  // is missing, empty, or lacks [UNK], [CLS] or [SEP].
  explicit WordPiece(const std::string& vocab_path, bool lower_case = true);

  // Word pieces of `text`, no special tokens.
  std::vector<std::string> tokenize(const std::string& text) const;
  // [CLS] pieces [SEP] as ids, the pieces truncated so that the whole fits max_length (0: no limit).
  std::vector<int64_t> encode(const std::string& text, int64_t max_length = 0) const;

  int64_t id(const std::string& token) const;  // the [UNK] id for unknown tokens
  int64_t size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  std::vector<std::string> basic_tokens(const std::string& text) const;
  void word_pieces(const std::string& word, std::vector<std::string>& out) const;

  std::unordered_map<std::string, int64_t> vocab_;
  bool lower_case_;
  int64_t unk_ = 0, cls_ = 0, sep_ = 0;
};

}  // namespace attnbench::text
