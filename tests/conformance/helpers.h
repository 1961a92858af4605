// Helpers shared by the built-in plugins' conformance tests.
#pragma once

#include "plugins/loader.h"
#include "measure/protocols.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

namespace attnbench::testing {

inline std::unique_ptr<AttentionLayer> make_layer(const std::string& plugin_name, const Params& given, int64_t embed_dim,
                                                  uint64_t seed = 0, int threads = 1) {
  const Plugin& plugin = load_plugin(plugin_name, ATTNBENCH_PLUGIN_ATTENTION);
  CreateArgs args;
  args.params = complete_params(plugin, given);
  args.embed_dim = embed_dim;
  args.seed = seed;
  args.threads = threads;
  return std::make_unique<AttentionLayer>(plugin, args);
}

// The message of the PluginError that creating the layer throws, or "(no error)".
inline std::string create_error(const std::string& plugin_name, const Params& given, int64_t embed_dim) {
  try {
    make_layer(plugin_name, given, embed_dim);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

inline double rel(const at::Tensor& a, const at::Tensor& b) { return compare(a, b).rel_rms; }

// Every protocol the runner derives from forward and step, held to `tolerance` (relative RMS).
inline void expect_streaming_contract(AttentionLayer& layer, const at::Tensor& x, double tolerance,
                                      double rollout_tolerance) {
  at::Tensor full = run_full(layer, x);
  at::Tensor steps = run_steps(layer, x);
  for (int64_t t = 0; t < x.size(0); ++t) {
    EXPECT_LT(rel(steps[t], full[t]), tolerance) << "position " << t;
  }
  EXPECT_LT(rel(run_prefix(layer, x), steps), tolerance);
  EXPECT_LT(rel(rollout_steps(layer, x, 5, 8), rollout_prefix(layer, x, 5, 8)), rollout_tolerance);
  // Forward continuing from a state equals one forward over the concatenation.
  auto state = layer.init_state(x.size(1));
  at::Tensor first = layer.forward(x.slice(0, 0, 7), *state);
  at::Tensor rest = layer.forward(x.slice(0, 7), *state);
  EXPECT_LT(rel(at::cat({first, rest}), full), tolerance);
  // Batch rows are independent sequences.
  for (int64_t b = 0; b < x.size(1); ++b) {
    EXPECT_LT(rel(run_full(layer, x.slice(1, b, b + 1)), full.slice(1, b, b + 1)), tolerance) << "row " << b;
  }
}

// run.threads splits a CPU step's rows and heads over threads; each output element is still computed by
// one thread in the same order, so the steps equal those of one thread exactly.
inline void expect_threads_leave_steps_unchanged(const std::string& plugin_name, const Params& given) {
  constexpr int64_t kWide = 256;
  at::Tensor x = at::randn({12, 1, kWide});
  at::Tensor one = run_steps(*make_layer(plugin_name, given, kWide, 7, 1), x);
  at::Tensor two = run_steps(*make_layer(plugin_name, given, kWide, 7, 2), x);
  EXPECT_TRUE(at::equal(one, two)) << "relative RMS " << rel(two, one);
}

}  // namespace attnbench::testing
