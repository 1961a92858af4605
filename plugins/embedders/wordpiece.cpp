#include "wordpiece.h"

#include <utf8proc.h>

#include <cstdlib>
#include <fstream>

namespace attnbench::text {
namespace {

constexpr size_t kMaxWordChars = 100;  // longer words become [UNK], as in BertTokenizer

std::vector<int32_t> code_points(const std::string& s) {
  std::vector<int32_t> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: skip it, as the cleaning step drops U+FFFD
      ++p;
      --left;
      continue;
    }
    out.push_back(cp);
    p += n;
    left -= n;
  }
  return out;
}

void append_utf8(std::string& out, int32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

bool is_whitespace(int32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

bool is_punctuation(int32_t cp) {
  // ASCII symbols count as punctuation in BERT although Unicode files some of them elsewhere ("$", "^").
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  auto c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_cjk(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Python's str.lower() then NFD with combining marks (Mn) removed.
std::string lower_and_strip_accents(const std::string& word) {
  std::string lowered;
  for (int32_t cp : code_points(word)) append_utf8(lowered, utf8proc_tolower(cp));
  utf8proc_uint8_t* nfd = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(lowered.data()),
                                    static_cast<utf8proc_ssize_t>(lowered.size()), &nfd,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (n < 0) return lowered;
  std::string decomposed(reinterpret_cast<const char*>(nfd), static_cast<size_t>(n));
  std::free(nfd);
  std::string out;
  for (int32_t cp : code_points(decomposed)) {
    if (utf8proc_category(cp) != UTF8PROC_CATEGORY_MN) append_utf8(out, cp);
  }
  return out;
}

}  // namespace

WordPiece::WordPiece(const std::string& vocab_path, bool lower_case) : lower_case_(lower_case) {
  std::ifstream in(vocab_path);
  if (!in) throw TokenizerError(vocab_path + ": cannot open the vocabulary (does it exist?)");
  std::string line;
  int64_t index = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab_.emplace(line, index++);
  }
  for (const char* special : {"[UNK]", "[CLS]", "[SEP]"}) {
    if (!vocab_.count(special)) throw TokenizerError(vocab_path + ": the vocabulary has no " + special + " token");
  }
  unk_ = vocab_.at("[UNK]");
  cls_ = vocab_.at("[CLS]");
  sep_ = vocab_.at("[SEP]");
}

int64_t WordPiece::id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? unk_ : it->second;
}

std::vector<std::string> WordPiece::basic_tokens(const std::string& text) const {
  // Clean, space out CJK characters, split on whitespace.
  std::string spaced;
  for (int32_t cp : code_points(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      spaced += ' ';
    } else if (is_cjk(cp)) {
      spaced += ' ';
      append_utf8(spaced, cp);
      spaced += ' ';
    } else {
      append_utf8(spaced, cp);
    }
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start < spaced.size()) {
    size_t end = spaced.find(' ', start);
    if (end == std::string::npos) end = spaced.size();
    if (end > start) {
      std::string word = spaced.substr(start, end - start);
      if (lower_case_) word = lower_and_strip_accents(word);
      // Punctuation characters become tokens of their own.
      std::string current;
      for (int32_t cp : code_points(word)) {
        if (is_punctuation(cp)) {
          if (!current.empty()) out.push_back(current), current.clear();
          std::string p;
          append_utf8(p, cp);
          out.push_back(p);
        } else {
          append_utf8(current, cp);
        }
      }
      if (!current.empty()) out.push_back(current);
    }
    start = end + 1;
  }
  return out;
}

void WordPiece::word_pieces(const std::string& word, std::vector<std::string>& out) const {
  std::vector<int32_t> cps = code_points(word);
  if (cps.size() > kMaxWordChars) {
    out.emplace_back("[UNK]");
    return;
  }
  // Byte offset of every code point, so substrings never split one.
  std::vector<size_t> offset;
  size_t at = 0;
  for (int32_t cp : cps) {
    offset.push_back(at);
    std::string tmp;
    append_utf8(tmp, cp);
    at += tmp.size();
  }
  offset.push_back(at);
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < cps.size()) {
    size_t end = cps.size();
    std::string found;
    while (start < end) {
      std::string candidate = (start > 0 ? "##" : "") + word.substr(offset[start], offset[end] - offset[start]);
      if (vocab_.count(candidate)) {
        found = candidate;
        break;
      }
      --end;
    }
    if (found.empty()) {
      out.emplace_back("[UNK]");
      return;
    }
    pieces.push_back(found);
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<std::string> WordPiece::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const std::string& word : basic_tokens(text)) word_pieces(word, out);
  return out;
}

std::vector<int64_t> WordPiece::encode(const std::string& text, int64_t max_length) const {
  std::vector<std::string> pieces = tokenize(text);
  if (max_length > 0 && static_cast<int64_t>(pieces.size()) > max_length - 2) {
    pieces.resize(static_cast<size_t>(std::max<int64_t>(0, max_length - 2)));
  }
  std::vector<int64_t> ids{cls_};
  for (const std::string& p : pieces) ids.push_back(id(p));
  ids.push_back(sep_);
  return ids;
}

}  // namespace attnbench::text
