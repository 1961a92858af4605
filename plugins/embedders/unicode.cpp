#include "unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace attnbench::text::unicode {

std::vector<char32_t> decode(const std::string& text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {
      ++p;
      --left;
      continue;
    }
    out.push_back(static_cast<char32_t>(cp));
    p += n;
    left -= n;
  }
  return out;
}

void append(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string encode(char32_t cp) {
  std::string out;
  append(out, cp);
  return out;
}

std::string valid(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : decode(text)) append(out, cp);
  return out;
}

bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

namespace {
utf8proc_category_t category(char32_t cp) { return utf8proc_category(static_cast<utf8proc_int32_t>(cp)); }
}  // namespace

bool is_letter(char32_t cp) {
  auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t cp) {
  auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t cp) {
  auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_mark_nonspacing(char32_t cp) { return category(cp) == UTF8PROC_CATEGORY_MN; }

bool is_other(char32_t cp) {
  auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

std::string normalize(const std::string& text, Form form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case Form::kNfc: options |= UTF8PROC_COMPOSE; break;
    case Form::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case Form::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case Form::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* mapped = nullptr;
  const std::string input = valid(text);
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(input.data()),
                                    static_cast<utf8proc_ssize_t>(input.size()), &mapped,
                                    static_cast<utf8proc_option_t>(options));
  if (n < 0) return input;  // only for invalid input, which valid() removed
  std::string out(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
  std::free(mapped);
  return out;
}

std::string lowercase(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : decode(text)) {
    // The one unconditional lower-case mapping to two code points (SpecialCasing.txt); utf8proc gives
    // the simple mapping only.
    if (cp == 0x130) {
      out += "i\xcc\x87";
      continue;
    }
    append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

std::vector<std::string> graphemes(const std::string& text) {
  std::vector<std::string> out;
  utf8proc_int32_t state = 0;
  char32_t previous = 0;
  bool first = true;
  for (char32_t cp : decode(text)) {
    if (first || utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(previous),
                                                  static_cast<utf8proc_int32_t>(cp), &state)) {
      out.emplace_back();
    }
    append(out.back(), cp);
    previous = cp;
    first = false;
  }
  return out;
}

}  // namespace attnbench::text::unicode
