// The BPE model (GPT-2's and RoBERTa's, over byte-level characters): a word starts as its characters
// and the adjacent pair of lowest merge rank is merged until none is left, the leftmost pair first among
// equal ranks, as tokenizers' Word::merge_all does.
#include "tokenizer_parts.h"
#include "unicode.h"

#include <cstdio>
#include <queue>

namespace attnbench::text {
namespace {

uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }

class Bpe final : public TokenModel {
 public:
  Bpe(std::unordered_map<std::string, int64_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
      BpeOptions options, const std::string& where)
      : vocab_(std::move(vocab)), options_(std::move(options)) {
    for (const auto& [token, id] : vocab_) {
      if (id < 0 || id > 0x7FFFFFFF) throw TokenizerError(where + ": token '" + token + "' has an id out of range");
    }
    if (options_.unk_token && !vocab_.count(*options_.unk_token)) {
      throw TokenizerError(where + ": the unknown token '" + *options_.unk_token + "' is not in the vocabulary");
    }
    const std::string& prefix = options_.continuing_subword_prefix;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [a, b] = merges[rank];
      auto ia = vocab_.find(a), ib = vocab_.find(b);
      const std::string merged = a + (!prefix.empty() && b.compare(0, prefix.size(), prefix) == 0 ? b.substr(prefix.size()) : b);
      auto im = vocab_.find(merged);
      if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end()) {
        throw TokenizerError(where + ": merge " + std::to_string(rank + 1) + " ('" + a + "', '" + b +
                             "') names a token that is not in the vocabulary");
      }
      merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(static_cast<int64_t>(rank), im->second));
    }
  }

  void encode(const std::string& word, std::vector<int64_t>& ids) const override {
    if (options_.ignore_merges) {
      auto it = vocab_.find(word);
      if (it != vocab_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    std::vector<int64_t> symbols = initial_symbols(word);
    merge_all(symbols);
    ids.insert(ids.end(), symbols.begin(), symbols.end());
  }

  std::optional<int64_t> id(const std::string& token) const override {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  int64_t size() const override { return static_cast<int64_t>(vocab_.size()); }
  const char* kind() const override { return "BPE"; }

 private:
  // One id a character; unknown characters become bytes (byte_fallback), the unknown token (fused
  // when fuse_unk) or, without an unknown token, nothing, as in tokenizers' merge_word.
  std::vector<int64_t> initial_symbols(const std::string& word) const {
    std::vector<int64_t> out;
    std::optional<int64_t> pending_unk;
    const std::vector<char32_t> cps = unicode::decode(word);
    for (size_t i = 0; i < cps.size(); ++i) {
      std::string s = unicode::encode(cps[i]);
      if (i > 0) s = options_.continuing_subword_prefix + s;
      if (i + 1 == cps.size()) s += options_.end_of_word_suffix;
      auto it = vocab_.find(s);
      if (it != vocab_.end()) {
        if (pending_unk) out.push_back(*pending_unk), pending_unk.reset();
        out.push_back(it->second);
        continue;
      }
      if (options_.byte_fallback) {
        std::vector<int64_t> bytes;
        for (unsigned char b : s) {
          char name[8];
          std::snprintf(name, sizeof(name), "<0x%02X>", b);
          auto byte = vocab_.find(name);
          if (byte == vocab_.end()) break;
          bytes.push_back(byte->second);
        }
        if (bytes.size() == s.size()) {
          if (pending_unk) out.push_back(*pending_unk), pending_unk.reset();
          out.insert(out.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (options_.unk_token) {
        const int64_t unk = vocab_.at(*options_.unk_token);
        if (pending_unk && !options_.fuse_unk) out.push_back(*pending_unk);
        pending_unk = unk;
      }
    }
    if (pending_unk) out.push_back(*pending_unk);
    return out;
  }

  void merge_all(std::vector<int64_t>& symbols) const {
    const auto n = static_cast<int64_t>(symbols.size());
    if (n < 2) return;
    std::vector<int64_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
    std::vector<bool> alive(static_cast<size_t>(n), true);
    for (int64_t i = 0; i < n; ++i) prev[static_cast<size_t>(i)] = i - 1, next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
    struct Merge {
      int64_t rank, pos, new_id;
      bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
    auto push = [&](int64_t pos) {
      const int64_t right = next[static_cast<size_t>(pos)];
      if (right < 0) return;
      auto it = merges_.find(pair_key(symbols[static_cast<size_t>(pos)], symbols[static_cast<size_t>(right)]));
      if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
    };
    for (int64_t i = 0; i + 1 < n; ++i) push(i);
    while (!queue.empty()) {
      const Merge top = queue.top();
      queue.pop();
      const auto pos = static_cast<size_t>(top.pos);
      if (!alive[pos] || next[pos] < 0) continue;
      const auto right = static_cast<size_t>(next[pos]);
      auto it = merges_.find(pair_key(symbols[pos], symbols[right]));
      if (it == merges_.end() || it->second.second != top.new_id) continue;  // a stale entry
      symbols[pos] = top.new_id;
      alive[right] = false;
      next[pos] = next[right];
      if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = top.pos;
      if (prev[pos] >= 0) push(prev[pos]);
      push(top.pos);
    }
    std::vector<int64_t> out;
    for (int64_t i = 0; i < n; ++i) {
      if (alive[static_cast<size_t>(i)]) out.push_back(symbols[static_cast<size_t>(i)]);
    }
    symbols = std::move(out);
  }

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> merges_;  // (left, right) -> (rank, merged id)
  BpeOptions options_;
};

}  // namespace

std::unique_ptr<TokenModel> make_bpe(std::unordered_map<std::string, int64_t> vocab,
                                     const std::vector<std::pair<std::string, std::string>>& merges,
                                     const BpeOptions& options, const std::string& where) {
  return std::make_unique<Bpe>(std::move(vocab), merges, options, where);
}

}  // namespace attnbench::text
