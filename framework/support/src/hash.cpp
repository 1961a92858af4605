#include <attnbench/support/hash.h>

#include <fmt/format.h>

namespace attnbench {

std::string hash_json(const nlohmann::json& value) {
  // FNV-1a over the canonical dump (nlohmann sorts object keys). Invalid UTF-8 (a YAML "\x" escape can
  // make some, found by fuzzing) is replaced rather than thrown on: the hash stays defined and stable.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace attnbench
