// What travels with every result so a reader can judge it: the machine (host, CPU, GPUs) and the build
// (attnbench's version, git commit and dirty flag, build type, compiler, CUDA architectures, torch).
// The build facts are baked in when attnbench is built, so an installed or moved runner reports the
// build it is, not whatever checkout happens to sit where it was compiled.
#pragma once

#include <nlohmann/json.hpp>

namespace attnbench {

nlohmann::json make_context();

// The build facts alone, for `runner --version`.
nlohmann::json build_facts();

}  // namespace attnbench
