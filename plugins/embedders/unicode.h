// The Unicode facts the tokenizers need, with the definitions Hugging Face's tokenizers library uses
// (Rust's char methods, the unicode_categories crate, Oniguruma's classes), on top of utf8proc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnbench::text::unicode {

// Code points of UTF-8 text; bytes that are not valid UTF-8 are dropped (the corpus readers reject
// such text, so only hand-made input reaches this).
std::vector<char32_t> decode(const std::string& text);
void append(std::string& out, char32_t cp);
std::string encode(char32_t cp);
// `text` with its invalid bytes dropped: what every later stage may assume.
std::string valid(const std::string& text);

// The White_Space property: Rust's char::is_whitespace and Oniguruma's \s.
bool is_whitespace(char32_t cp);
bool is_letter(char32_t cp);          // \p{L}
bool is_number(char32_t cp);          // \p{N}
bool is_punctuation(char32_t cp);     // Pc Pd Ps Pe Pi Pf Po
bool is_mark_nonspacing(char32_t cp); // Mn
// Cc Cf Co: what BERT's text cleaning drops (unicode_categories' is_other; unassigned code points
// are kept, as the fast tokenizer keeps them).
bool is_other(char32_t cp);

enum class Form { kNfc, kNfd, kNfkc, kNfkd };
std::string normalize(const std::string& text, Form form);
// Full lower-case mapping, character by character (Rust's char::to_lowercase: 'İ' becomes "i̇").
std::string lowercase(const std::string& text);
// Extended grapheme clusters (UAX #29), as the unicode-segmentation crate splits them.
std::vector<std::string> graphemes(const std::string& text);

}  // namespace attnbench::text::unicode
