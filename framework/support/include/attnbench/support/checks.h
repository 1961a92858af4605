// Parameter checks for a plugin's validate(): each throws attnbench::InvalidParameter naming the
// parameter, with a message that says what is valid, so the runner can point at the value in the study.
// `who` prefixes the message with the plugin's name ("mha: heads 7 must ...").
#pragma once

#include <attnbench/common.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace attnbench::checks {

// `value` must be >= 1 and, once the width is known (embed_dim > 0), divide it.
inline void divides(const std::string& who, const std::string& name, int64_t value, int64_t embed_dim) {
  if (value >= 1 && (embed_dim <= 0 || embed_dim % value == 0)) return;
  std::string message = who + ": " + name + " " + std::to_string(value) + " must be >= 1";
  if (embed_dim > 0) {
    std::string divisors;
    for (int64_t d = 1; d <= embed_dim; ++d) {
      if (embed_dim % d == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(d);
    }
    message += " and divide embed_dim " + std::to_string(embed_dim) + "; valid: " + divisors;
  }
  throw InvalidParameter(name, message);
}

inline void one_of(const std::string& who, const std::string& name, const std::string& value,
                   const std::vector<std::string>& choices) {
  std::string valid;
  for (const std::string& c : choices) {
    if (c == value) return;
    valid += (valid.empty() ? "" : ", ") + c;
  }
  throw InvalidParameter(name, who + ": unknown " + name + " '" + value + "'; valid: " + valid);
}

// lo <= value <= hi (or lo < value with open_low), and finite.
inline void in_range(const std::string& who, const std::string& name, double value, double lo, double hi,
                     bool open_low = false) {
  const bool ok = std::isfinite(value) && (open_low ? value > lo : value >= lo) && value <= hi;
  if (ok) return;
  auto text = [](double v) {
    if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  std::string bounds = std::isinf(hi) ? (open_low ? "> " : ">= ") + text(lo)
                                      : "in " + std::string(open_low ? "(" : "[") + text(lo) + ", " + text(hi) + "]";
  throw InvalidParameter(name, who + ": " + name + " must be " + bounds + ", got " + text(value));
}

// A size that follows from several parameters (the nonzeros of a graph, the weights of a layer) and
// beyond `limit` cannot fit memory or finish in reasonable time: the message says what it counts, the
// number and the limit, and blames `name`, the parameter to lower.
inline void size_at_most(const std::string& who, const std::string& name, const std::string& what, double value,
                         double limit) {
  if (value <= limit) return;
  auto text = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return std::string(buf);
  };
  throw InvalidParameter(name, who + ": " + what + " would be " + text(value) + "; the limit is " + text(limit) +
                                   " (lower " + name + ")");
}

// An optional file parameter: empty, or the path of a regular file.
inline void file_or_empty(const std::string& who, const std::string& name, const std::string& path) {
  std::error_code ec;
  if (path.empty() || std::filesystem::is_regular_file(path, ec)) return;
  throw InvalidParameter(name, who + ": " + name + " '" + path + "' " +
                                   (std::filesystem::exists(path, ec) ? "is not a regular file" : "does not exist"));
}

}  // namespace attnbench::checks
