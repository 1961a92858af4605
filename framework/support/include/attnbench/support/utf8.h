// UTF-8 validation for text users hand attnbench (studies, corpora): JSON results can only hold UTF-8.
#pragma once

#include <cstddef>
#include <string>

namespace attnbench {

// The byte offset of the first invalid UTF-8 sequence in `text`, or std::string::npos.
size_t first_invalid_utf8(const std::string& text);
inline bool valid_utf8(const std::string& text) { return first_invalid_utf8(text) == std::string::npos; }

}  // namespace attnbench
