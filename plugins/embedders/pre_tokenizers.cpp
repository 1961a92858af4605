// tokenizer.json pre-tokenizers (src/pre_tokenizers/ of the tokenizers library) and the Oniguruma
// regular expressions some of them and the Replace normalizer use.
#include "tokenizer_parts.h"
#include "unicode.h"

#include <oniguruma.h>

#include <mutex>

namespace attnbench::text {

Regex::Regex(const std::string& pattern) {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
  OnigRegex regex = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int status = onig_new(&regex, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
  if (status != ONIG_NORMAL) {
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, status, &info);
    throw TokenizerError("regular expression '" + pattern + "': " + reinterpret_cast<const char*>(message));
  }
  regex_ = std::shared_ptr<void>(regex, [](void* r) { onig_free(static_cast<OnigRegex>(r)); });
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(const std::string& text) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* regex = static_cast<OnigRegex>(regex_.get());
  std::unique_ptr<OnigRegion, void (*)(OnigRegion*)> region(onig_region_new(), [](OnigRegion* r) { onig_region_free(r, 1); });
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  size_t at = 0;
  while (at <= text.size()) {
    int found = onig_search(regex, begin, end, begin + at, end, region.get(), ONIG_OPTION_NONE);
    if (found < 0) break;  // ONIG_MISMATCH (or an error: treat as no further match)
    const auto match_begin = static_cast<size_t>(region->beg[0]), match_end = static_cast<size_t>(region->end[0]);
    if (match_end > match_begin) {
      out.emplace_back(match_begin, match_end);
      at = match_end;
    } else {
      // An empty match: step over one character.
      if (match_begin >= text.size()) break;
      at = match_begin + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    }
  }
  return out;
}

const std::vector<std::string>& byte_chars() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<size_t>(b)] = unicode::encode(printable ? static_cast<char32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

namespace {

// Pieces of `text` at the matches of `regex`, matches and the text between them alike.
void split_isolated(const Regex& regex, const std::string& text, std::vector<std::string>& out) {
  size_t last = 0;
  for (const auto& [begin, end] : regex.find_all(text)) {
    if (begin > last) out.push_back(text.substr(last, begin - last));
    out.push_back(text.substr(begin, end - begin));
    last = end;
  }
  if (last < text.size()) out.push_back(text.substr(last));
}

void split_on_whitespace(const std::string& text, std::vector<std::string>& out) {
  std::string word;
  for (char32_t cp : unicode::decode(text)) {
    if (unicode::is_whitespace(cp)) {
      if (!word.empty()) out.push_back(std::move(word)), word.clear();
    } else {
      unicode::append(word, cp);
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
}

class BertPreTokenizer final : public PreTokenizer {
 public:
  // Whitespace separates words and is dropped; punctuation (ASCII symbols included) stands alone.
  void split(const std::string& text, bool, std::vector<std::string>& words) const override {
    std::string word;
    for (char32_t cp : unicode::decode(text)) {
      const bool ascii_punct = (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
      if (unicode::is_whitespace(cp)) {
        if (!word.empty()) words.push_back(std::move(word)), word.clear();
      } else if (ascii_punct || unicode::is_punctuation(cp)) {
        if (!word.empty()) words.push_back(std::move(word)), word.clear();
        words.push_back(unicode::encode(cp));
      } else {
        unicode::append(word, cp);
      }
    }
    if (!word.empty()) words.push_back(std::move(word));
  }
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::optional<Regex>(Regex(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"))
                         : std::nullopt) {}
  void split(const std::string& text, bool, std::vector<std::string>& words) const override {
    const std::string input = add_prefix_space_ && (text.empty() || text[0] != ' ') ? " " + text : text;
    std::vector<std::string> pieces;
    if (regex_) {
      split_isolated(*regex_, input, pieces);
    } else {
      pieces.push_back(input);
    }
    const auto& table = byte_chars();
    for (const std::string& piece : pieces) {
      std::string mapped;
      for (unsigned char b : piece) mapped += table[b];
      if (!mapped.empty()) words.push_back(std::move(mapped));
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void split(const std::string& text, bool at_start, std::vector<std::string>& words) const override {
    std::string replaced;
    for (char c : text) {
      if (c == ' ') {
        replaced += replacement_;
      } else {
        replaced += c;
      }
    }
    const bool starts = replaced.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && at_start))) replaced = replacement_ + replaced;
    if (!split_) {
      if (!replaced.empty()) words.push_back(replaced);
      return;
    }
    // Each replacement character begins a new word (tokenizers' MergedWithNext).
    size_t start = 0;
    for (size_t at = replaced.find(replacement_, 1); at != std::string::npos; at = replaced.find(replacement_, at + 1)) {
      if (at > start) words.push_back(replaced.substr(start, at - start));
      start = at;
    }
    if (start < replaced.size()) words.push_back(replaced.substr(start));
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class Whitespace final : public PreTokenizer {
 public:
  Whitespace() : regex_(R"(\w+|[^\w\s]+)") {}
  void split(const std::string& text, bool, std::vector<std::string>& words) const override {
    for (const auto& [begin, end] : regex_.find_all(text)) words.push_back(text.substr(begin, end - begin));
  }

 private:
  Regex regex_;
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void split(const std::string& text, bool, std::vector<std::string>& words) const override { split_on_whitespace(text, words); }
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(const std::string& text, bool at_start, std::vector<std::string>& words) const override {
    std::vector<std::string> current{text};
    for (const auto& step : steps_) {
      std::vector<std::string> next;
      for (size_t i = 0; i < current.size(); ++i) step->split(current[i], at_start && i == 0, next);
      current = std::move(next);
    }
    for (auto& w : current) words.push_back(std::move(w));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool flag(const nlohmann::json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

}  // namespace

std::unique_ptr<PreTokenizer> bert_pre_tokenizer() { return std::make_unique<BertPreTokenizer>(); }
std::unique_ptr<PreTokenizer> byte_level_pre_tokenizer(bool add_prefix_space) {
  return std::make_unique<ByteLevel>(add_prefix_space, true);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = j.is_object() ? j.value("type", "") : "";
  if (type == "BertPreTokenizer") return bert_pre_tokenizer();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(flag(j, "add_prefix_space", true), flag(j, "use_regex", true));
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Metaspace") {
    std::string replacement = j.contains("replacement") && j["replacement"].is_string() ? j["replacement"].get<std::string>() : "\xe2\x96\x81";
    if (replacement.empty()) throw TokenizerError(where + ": Metaspace's replacement is empty");
    Metaspace::Prepend prepend = flag(j, "add_prefix_space", true) ? Metaspace::Prepend::kAlways : Metaspace::Prepend::kNever;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const std::string scheme = j["prepend_scheme"].get<std::string>();
      if (scheme == "always") {
        prepend = Metaspace::Prepend::kAlways;
      } else if (scheme == "first") {
        prepend = Metaspace::Prepend::kFirst;
      } else if (scheme == "never") {
        prepend = Metaspace::Prepend::kNever;
      } else {
        throw TokenizerError(where + ": Metaspace prepend_scheme '" + scheme + "' is not one of always, first, never");
      }
    }
    return std::make_unique<Metaspace>(replacement, prepend, flag(j, "split", true));
  }
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) throw TokenizerError(where + ": Sequence has no list 'pretokenizers'");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : j["pretokenizers"]) {
      if (auto p = make_pre_tokenizer(step, where)) steps.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  throw TokenizerError(where + ": pre-tokenizer '" + type + "' is not supported (supported: BertPreTokenizer, ByteLevel, " +
                       "Metaspace, Whitespace, WhitespaceSplit, Sequence)");
}

}  // namespace attnbench::text
