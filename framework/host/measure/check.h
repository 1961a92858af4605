// The conformance checker (`runner check-plugin`): puts any attention plugin through the contract the
// runner relies on and reports each failure by name.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace attnbench {

struct CheckOptions {
  int64_t embed_dim = 32;
  std::string device = "cpu";
  std::vector<std::string> params;  // "key=value", typed by the plugin's parameter list
  double tolerance = 1e-5;          // relative RMS for the equalities
  int64_t length = 24;
  int64_t batch = 3;
};

// Runs every check, printing "PASS name" or "FAIL name: why" per line and a summary. Returns the
// number of failed checks (0: the plugin conforms).
int check_plugin(const std::string& spec, const CheckOptions& options, std::ostream& out);

}  // namespace attnbench
