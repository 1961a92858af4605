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
  double tolerance = 1e-5;          // relative RMS for the equalities (the closed loop gets 10x)
  int64_t max_length = 2049;        // the longest sequence; check_lengths() derives the others
  int64_t batch = 3;
  uint64_t seed = 0;                // the inputs and the random length
  bool isolate = true;              // each check in a child process, so a crash fails only that check
  double timeout_s = 600;           // per check, when isolated; 0: none
};

// The sequence lengths every sequence check runs at: 1, one past each power of two below the longest,
// the longest, and one drawn with the seed between 2 and the longest. One past a power of two is where a
// buffer sized to that power (a window, a KV cache that doubles) first overflows.
std::vector<int64_t> check_lengths(const CheckOptions& options);

// Runs every check, printing a header with the sizes, then "PASS name", "FAIL name: why" or "SKIP name:
// why" per line, flushed as it goes, and a summary. A check that cannot run because an earlier one
// failed is skipped, naming that one. Returns the number of failed checks (0: the plugin conforms).
//
// With `isolate`, every check runs in a child process (measure/isolate.h) and this process never calls
// the plugin or computes with torch; a crash is that check's FAIL, naming the signal and the call.
int check_plugin(const std::string& spec, const CheckOptions& options, std::ostream& out);

}  // namespace attnbench
