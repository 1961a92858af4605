// The WordPiece model (BERT's): greedy longest-match-first pieces of a word, later pieces with a
// continuation prefix ("##"), the unknown token for a word with no such split or too many characters.
#include "tokenizer_parts.h"
#include "unicode.h"

#include <fstream>

namespace attnbench::text {
namespace {

class WordPiece final : public TokenModel {
 public:
  WordPiece(std::unordered_map<std::string, int64_t> vocab, const std::string& unk, std::string prefix, int64_t max_chars,
            const std::string& where)
      : vocab_(std::move(vocab)), prefix_(std::move(prefix)), max_chars_(max_chars) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw TokenizerError(where + ": the vocabulary has no " + unk + " token");
    unk_ = it->second;
    for (const auto& [token, id] : vocab_) {
      if (id < 0) throw TokenizerError(where + ": token '" + token + "' has a negative id");
    }
  }

  void encode(const std::string& word, std::vector<int64_t>& ids) const override {
    const std::vector<char32_t> cps = unicode::decode(word);
    if (static_cast<int64_t>(cps.size()) > max_chars_) {
      ids.push_back(unk_);
      return;
    }
    // Byte offset of every character, so that pieces never split one.
    std::vector<size_t> offset{0};
    for (char32_t cp : cps) offset.push_back(offset.back() + unicode::encode(cp).size());
    const size_t first = ids.size();
    size_t start = 0;
    while (start < cps.size()) {
      size_t end = cps.size();
      int64_t found = -1;
      for (; end > start; --end) {
        const std::string piece = (start > 0 ? prefix_ : "") + word.substr(offset[start], offset[end] - offset[start]);
        auto it = vocab_.find(piece);
        if (it != vocab_.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        ids.resize(first);
        ids.push_back(unk_);
        return;
      }
      ids.push_back(found);
      start = end;
    }
  }

  std::optional<int64_t> id(const std::string& token) const override {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  int64_t size() const override { return static_cast<int64_t>(vocab_.size()); }
  const char* kind() const override { return "WordPiece"; }

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  std::string prefix_;
  int64_t max_chars_;
  int64_t unk_ = 0;
};

}  // namespace

std::unordered_map<std::string, int64_t> read_vocab_txt(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw TokenizerError(path + ": cannot open the vocabulary (does it exist?)");
  std::unordered_map<std::string, int64_t> vocab;
  std::string line;
  int64_t index = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.emplace(line, index++);
  }
  return vocab;
}

std::unique_ptr<TokenModel> make_wordpiece(std::unordered_map<std::string, int64_t> vocab, const std::string& unk,
                                           const std::string& prefix, int64_t max_chars, const std::string& where) {
  return std::make_unique<WordPiece>(std::move(vocab), unk, prefix, max_chars, where);
}

}  // namespace attnbench::text
