// tokenizer.json normalizers, each as the tokenizers library defines it (src/normalizers/).
#include "tokenizer_parts.h"
#include "unicode.h"

#include <cstring>

namespace attnbench::text {
namespace {

using unicode::decode;

bool is_chinese_char(char32_t cp) {
  // tokenizers' ranges, which differ from the Python BertTokenizer's in one place (0x2B920, not 0x2B820).
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

std::string strip_accents(const std::string& text) {
  std::string out;
  for (char32_t cp : decode(unicode::normalize(text, unicode::Form::kNfd))) {
    if (!unicode::is_mark_nonspacing(cp)) unicode::append(out, cp);
  }
  return out;
}

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, bool strip, bool lower) : clean_(clean), chinese_(chinese), strip_(strip), lower_(lower) {}
  std::string normalize(const std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (char32_t cp : decode(text)) {
      if (clean_) {
        // tab, newline and carriage return are whitespace here, not control characters
        const bool tnr = cp == '\t' || cp == '\n' || cp == '\r';
        if (cp == 0 || cp == 0xFFFD || (!tnr && unicode::is_other(cp))) continue;
        if (unicode::is_whitespace(cp)) cp = ' ';
      }
      if (chinese_ && is_chinese_char(cp)) {
        out += ' ';
        unicode::append(out, cp);
        out += ' ';
      } else {
        unicode::append(out, cp);
      }
    }
    if (strip_) out = strip_accents(out);
    if (lower_) out = unicode::lowercase(out);
    return out;
  }

 private:
  bool clean_, chinese_, strip_, lower_;
};

class UnicodeForm final : public Normalizer {
 public:
  explicit UnicodeForm(unicode::Form form) : form_(form) {}
  std::string normalize(const std::string& text) const override { return unicode::normalize(text, form_); }

 private:
  unicode::Form form_;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(const std::string& text) const override { return unicode::lowercase(text); }
};

class StripAccents final : public Normalizer {
 public:
  // The mark filter alone: tokenizer.json pairs it with an NFD step of its own.
  std::string normalize(const std::string& text) const override {
    std::string out;
    for (char32_t cp : decode(text)) {
      if (!unicode::is_mark_nonspacing(cp)) unicode::append(out, cp);
    }
    return out;
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(const std::string& text) const override {
    std::vector<char32_t> cps = decode(text);
    size_t begin = 0, end = cps.size();
    if (left_) while (begin < end && unicode::is_whitespace(cps[begin])) ++begin;
    if (right_) while (end > begin && unicode::is_whitespace(cps[end - 1])) --end;
    std::string out;
    for (size_t i = begin; i < end; ++i) unicode::append(out, cps[i]);
    return out;
  }

 private:
  bool left_, right_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::string literal, std::optional<Regex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  std::string normalize(const std::string& text) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    if (regex_) {
      matches = regex_->find_all(text);
    } else if (!literal_.empty()) {
      for (size_t at = text.find(literal_); at != std::string::npos; at = text.find(literal_, at + literal_.size())) {
        matches.emplace_back(at, at + literal_.size());
      }
    }
    std::string out;
    size_t last = 0;
    for (const auto& [begin, end] : matches) {
      out.append(text, last, begin - last);
      out += content_;
      last = end;
    }
    out.append(text, last, std::string::npos);
    return out;
  }

 private:
  std::string literal_;
  std::optional<Regex> regex_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(const std::string& text) const override { return text.empty() ? text : prefix_ + text; }

 private:
  std::string prefix_;
};

std::vector<uint8_t> base64_decode(const std::string& text, const std::string& where) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<uint8_t> out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) throw TokenizerError(where + ": precompiled_charsmap is not base64");
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<uint8_t>((bits >> count) & 0xFF));
    }
  }
  return out;
}

// SentencePiece's precompiled character map: a double-array trie (Darts) over UTF-8 bytes whose values
// index a pool of NUL-terminated replacements. Applied per grapheme cluster the way the tokenizers
// library does it (spm_precompiled): a cluster under 6 bytes is replaced whole by the value of the
// shortest key that is a prefix of it, else each character on its own.
class Precompiled final : public Normalizer {
 public:
  Precompiled(const std::vector<uint8_t>& blob, const std::string& where) {
    if (blob.empty()) return;  // no rules: the identity
    if (blob.size() < 4) throw TokenizerError(where + ": precompiled_charsmap is truncated");
    uint32_t trie_bytes = 0;
    std::memcpy(&trie_bytes, blob.data(), 4);
    if (trie_bytes % 4 != 0 || trie_bytes == 0 || 4 + static_cast<size_t>(trie_bytes) > blob.size()) {
      throw TokenizerError(where + ": precompiled_charsmap's trie size does not fit the map");
    }
    units_.resize(trie_bytes / 4);
    std::memcpy(units_.data(), blob.data() + 4, trie_bytes);
    pool_.assign(blob.begin() + 4 + trie_bytes, blob.end());
  }

  std::string normalize(const std::string& text) const override {
    if (units_.empty()) return text;
    std::string out;
    out.reserve(text.size());
    for (const std::string& cluster : unicode::graphemes(text)) {
      if (cluster.size() < 6) {
        if (auto replacement = transform(cluster)) {
          out += *replacement;
          continue;
        }
      }
      for (char32_t cp : decode(cluster)) {
        std::string one = unicode::encode(cp);
        auto replacement = transform(one);
        out += replacement ? *replacement : one;
      }
    }
    return out;
  }

 private:
  static uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }

  std::optional<std::string> transform(const std::string& chunk) const {
    size_t pos = offset(units_[0]);
    for (unsigned char c : chunk) {
      if (c == 0) break;
      pos ^= c;
      if (pos >= units_.size()) return std::nullopt;
      const uint32_t unit = units_[pos];
      if ((unit & (0x80000000u | 0xFFu)) != c) return std::nullopt;
      pos ^= offset(unit);
      if (pos >= units_.size()) return std::nullopt;
      if ((unit >> 8) & 1u) {
        const size_t start = units_[pos] & 0x7FFFFFFFu;
        if (start >= pool_.size()) return std::nullopt;
        size_t end = start;
        while (end < pool_.size() && pool_[end] != 0) ++end;
        return std::string(pool_.begin() + static_cast<std::ptrdiff_t>(start), pool_.begin() + static_cast<std::ptrdiff_t>(end));
      }
    }
    return std::nullopt;
  }

  std::vector<uint32_t> units_;
  std::vector<uint8_t> pool_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(const std::string& text) const override {
    std::string out = text;
    for (const auto& step : steps_) out = step->normalize(out);
    return out;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

bool flag(const nlohmann::json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

std::string text_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) throw TokenizerError(where + ": no string '" + key + "'");
  return j[key].get<std::string>();
}

}  // namespace

std::unique_ptr<Normalizer> bert_normalizer(bool clean_text, bool chinese_chars, bool strip_accents, bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, chinese_chars, strip_accents, lowercase);
}

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.is_object() ? j.value("type", "") : "";
  if (type == "BertNormalizer") {
    const bool lower = flag(j, "lowercase", true);
    return bert_normalizer(flag(j, "clean_text", true), flag(j, "handle_chinese_chars", true),
                           flag(j, "strip_accents", lower), lower);  // strip_accents null: as lowercase
  }
  if (type == "NFC") return std::make_unique<UnicodeForm>(unicode::Form::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeForm>(unicode::Form::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(unicode::Form::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(unicode::Form::kNfkd);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip") return std::make_unique<Strip>(flag(j, "strip_left", true), flag(j, "strip_right", true));
  if (type == "Prepend") return std::make_unique<Prepend>(text_field(j, "prepend", where));
  if (type == "Replace") {
    const nlohmann::json& pattern = j.contains("pattern") ? j["pattern"] : nlohmann::json();
    const std::string content = text_field(j, "content", where);
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      return std::make_unique<Replace>(pattern["String"].get<std::string>(), std::nullopt, content);
    }
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      return std::make_unique<Replace>("", Regex(pattern["Regex"].get<std::string>()), content);
    }
    throw TokenizerError(where + ": Replace needs a pattern {\"String\": ...} or {\"Regex\": ...}");
  }
  if (type == "Precompiled") {
    const nlohmann::json& map = j.contains("precompiled_charsmap") ? j["precompiled_charsmap"] : nlohmann::json();
    if (map.is_null()) return std::make_unique<Precompiled>(std::vector<uint8_t>{}, where);
    if (!map.is_string()) throw TokenizerError(where + ": precompiled_charsmap must be a base64 string");
    return std::make_unique<Precompiled>(base64_decode(map.get<std::string>(), where), where);
  }
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) throw TokenizerError(where + ": Sequence has no list 'normalizers'");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : j["normalizers"]) {
      if (auto n = make_normalizer(step, where)) steps.push_back(std::move(n));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw TokenizerError(where + ": normalizer '" + type + "' is not supported (supported: BertNormalizer, NFC, NFD, NFKC, " +
                       "NFKD, Lowercase, StripAccents, Strip, Replace, Prepend, Precompiled, Sequence)");
}

}  // namespace attnbench::text
