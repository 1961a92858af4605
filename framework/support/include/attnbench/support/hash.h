// A stable content hash: the same JSON value gives the same 16 hex digits on every machine and run.
// Identifies study cells and cached embeddings.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace attnbench {

std::string hash_json(const nlohmann::json& value);

}  // namespace attnbench
