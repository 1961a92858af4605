// The Unigram model (SentencePiece's, XLM-R's): the segmentation of a word into pieces with the highest
// total log probability (Viterbi over a byte trie of the pieces), a character no piece covers scoring
// the lowest piece's score minus 10 as the unknown piece, consecutive unknowns fused into one, as the
// tokenizers library's Unigram::encode_optimized does (ties keep the earlier candidate).
#include "tokenizer_parts.h"
#include "unicode.h"

#include <cstdio>
#include <limits>

namespace attnbench::text {
namespace {

constexpr double kUnkPenalty = 10.0;

class Unigram final : public TokenModel {
 public:
  Unigram(std::vector<std::pair<std::string, double>> pieces, std::optional<int64_t> unk_id, bool byte_fallback,
          const std::string& where)
      : pieces_(std::move(pieces)), unk_id_(unk_id), byte_fallback_(byte_fallback) {
    if (pieces_.empty()) throw TokenizerError(where + ": the Unigram vocabulary is empty");
    if (unk_id_ && (*unk_id_ < 0 || *unk_id_ >= static_cast<int64_t>(pieces_.size()))) {
      throw TokenizerError(where + ": unk_id " + std::to_string(*unk_id_) + " is outside the vocabulary");
    }
    nodes_.push_back(-1);  // the root
    double min_score = std::numeric_limits<double>::infinity();
    for (size_t id = 0; id < pieces_.size(); ++id) {
      const std::string& piece = pieces_[id].first;
      ids_[piece] = static_cast<int64_t>(id);  // a piece listed twice keeps its last id, as the library's map does
      min_score = std::min(min_score, pieces_[id].second);
      if (piece.empty()) continue;
      int32_t node = 0;
      for (unsigned char c : piece) {
        const uint64_t key = (static_cast<uint64_t>(node) << 8) | c;
        auto it = children_.find(key);
        if (it == children_.end()) {
          it = children_.emplace(key, static_cast<int32_t>(nodes_.size())).first;
          nodes_.push_back(-1);
        }
        node = it->second;
      }
      nodes_[static_cast<size_t>(node)] = static_cast<int64_t>(id);
    }
    unk_score_ = min_score - kUnkPenalty;
  }

  void encode(const std::string& word, std::vector<int64_t>& ids) const override {
    if (word.empty()) return;
    struct Best {
      int64_t id = -1;
      double score = 0;
      int64_t start = -1;  // -1: not reached yet
    };
    const size_t size = word.size();
    std::vector<Best> best(size + 1);
    best[0].start = 0;
    size_t start = 0;
    while (start < size) {
      const size_t char_len = utf8_length(word, start);
      const double base = best[start].score;
      bool single_char = false;
      int32_t node = 0;
      for (size_t end = start; end < size; ++end) {
        auto it = children_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(word[end]));
        if (it == children_.end()) break;
        node = it->second;
        const int64_t id = nodes_[static_cast<size_t>(node)];
        if (id < 0) continue;
        const double score = base + pieces_[static_cast<size_t>(id)].second;
        Best& target = best[end + 1];
        if (target.start < 0 || score > target.score) target = {id, score, static_cast<int64_t>(start)};
        if (end + 1 - start == char_len) single_char = true;
      }
      if (!single_char) {
        if (!unk_id_) throw TokenizerError("Unigram: a character has no piece and the model has no unk_id");
        Best& target = best[start + char_len];
        const double score = base + unk_score_;
        if (target.start < 0 || score > target.score) target = {*unk_id_, score, static_cast<int64_t>(start)};
      }
      start += char_len;
    }
    // Back from the end; unknown pieces next to each other become one.
    std::vector<std::pair<int64_t, std::string>> reversed;
    for (size_t end = size; end > 0;) {
      const Best& node = best[end];
      const auto from = static_cast<size_t>(node.start);
      std::string piece = word.substr(from, end - from);
      if (unk_id_ && node.id == *unk_id_ && !reversed.empty() && reversed.back().first == *unk_id_) {
        reversed.back().second = piece + reversed.back().second;
      } else {
        reversed.emplace_back(node.id, std::move(piece));
      }
      end = from;
    }
    // The library looks each piece's text up again: a fused unknown piece may spell a known one.
    for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) {
      auto known = ids_.find(it->second);
      if (known != ids_.end()) {
        ids.push_back(known->second);
      } else if (!(byte_fallback_ && append_bytes(it->second, ids))) {
        ids.push_back(*unk_id_);
      }
    }
  }

  std::optional<int64_t> id(const std::string& token) const override {
    auto it = ids_.find(token);
    return it == ids_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  int64_t size() const override { return static_cast<int64_t>(pieces_.size()); }
  const char* kind() const override { return "Unigram"; }

 private:
  static size_t utf8_length(const std::string& s, size_t at) {
    size_t n = 1;
    while (at + n < s.size() && (static_cast<unsigned char>(s[at + n]) & 0xC0) == 0x80) ++n;
    return n;
  }

  // <0xXX> pieces for each byte of `text`, when the vocabulary has them all.
  bool append_bytes(const std::string& text, std::vector<int64_t>& ids) const {
    std::vector<int64_t> bytes;
    for (unsigned char b : text) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = ids_.find(name);
      if (it == ids_.end()) return false;
      bytes.push_back(it->second);
    }
    ids.insert(ids.end(), bytes.begin(), bytes.end());
    return true;
  }

  std::vector<std::pair<std::string, double>> pieces_;
  std::unordered_map<std::string, int64_t> ids_;
  std::unordered_map<uint64_t, int32_t> children_;  // (node << 8 | byte) -> node
  std::vector<int64_t> nodes_;                      // node -> the piece ending there, or -1
  std::optional<int64_t> unk_id_;
  bool byte_fallback_;
  double unk_score_ = 0;
};

}  // namespace

std::unique_ptr<TokenModel> make_unigram(std::vector<std::pair<std::string, double>> pieces, std::optional<int64_t> unk_id,
                                         bool byte_fallback, const std::string& where) {
  return std::make_unique<Unigram>(std::move(pieces), unk_id, byte_fallback, where);
}

}  // namespace attnbench::text
