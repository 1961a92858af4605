// Asserts that memory measures the layer, not the harness, and that a cell out of memory fails alone:
//  - the harness's own tensor peak for a fixture layer grows linearly in L (every mode, every position);
//  - a mode's peak_bytes is the layer's: MHA's step memory grows by 2·E·4 bytes a token (its KV cache,
//    within 10%), ReservoirAttention's is the same at every L;
//  - prefix recompute past 1024 tokens checks 16 seeded positions, the first and last included, and
//    the result names them; consistency.positions: -1 checks every one;
//  - the accounting allocator counts what torch allocates on the CPU and refuses an allocation past
//    run.max_memory with a one-line message; the cell fails, the next runs;
//  - the bytes a step moves are what MHA and the reservoir declare (weights, cache up to the position,
//    state), and a cell reports the bandwidth per position and the thread pools it set.
#include "cli/run_study.h"
#include "conformance/helpers.h"
#include "measure/device.h"
#include "measure/protocols.h"
#include "plugins/loader.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

namespace fs = std::filesystem;
using attnbench::testing::read_jsonl;
using attnbench::testing::temp_path;

namespace {

std::string fixture_path() { return std::string(ATTNBENCH_FIXTURE_DIR) + "/attnbench_fixture.so"; }

nlohmann::json run_one(const std::string& yaml, const std::string& name) {
  std::string results = temp_path(name + ".jsonl");
  fs::remove(results);
  attnbench::Study study = attnbench::load_study_text(yaml, name + ".yaml", attnbench::plugin_aware_options({}));
  study.results_path = results;
  std::ostringstream out;
  attnbench::run_study(study, {}, out);
  return read_jsonl(results);
}

std::string fixture_study(int64_t length, const std::string& run = "", const std::string& extra = "") {
  return "name: m\ndata: {embedder: synthetic, params: {embed_dim: 16}, seq_len: " + std::to_string(length) +
         "}\nattention: [{name: fx, plugin: " + fixture_path() + "}]\nrun: {seed_len: 4, horizon: 4" + run +
         "}\nmeasure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n" + extra;
}

// The step-mode memory of a fresh layer at length L, measured as the runner measures it.
int64_t step_peak(const std::string& plugin, const attnbench::Params& params, int64_t length, int64_t embed_dim) {
  auto layer = attnbench::testing::make_layer(plugin, params, embed_dim);
  attnbench::MeasureSettings once;
  once.warmup = 0;
  once.min_runs = 1;
  once.min_time_ms = 0;
  attnbench::Measurer measurer(*layer, {at::randn({length, 1, embed_dim})}, once, c10::kCPU);
  measurer.time_steps();
  return measurer.peak_bytes();
}

}  // namespace

TEST(Memory, TheHarnessPeakGrowsLinearlyInL) {
  const std::string every = "consistency: {positions: -1}\n";
  const int64_t small = run_one(fixture_study(128, "", every), "linear_small").at(0)["metrics"]["peak_tensor_bytes"];
  const int64_t large = run_one(fixture_study(1024, "", every), "linear_large").at(0)["metrics"]["peak_tensor_bytes"];
  // 8x the tokens: about 8x the bytes when every buffer is O(L), 64x if one were O(L^2).
  EXPECT_GT(small, 0);
  EXPECT_LT(static_cast<double>(large) / static_cast<double>(small), 10.0) << small << " -> " << large;
}

TEST(Memory, StepMemoryIsTheKvCacheForMhaAndConstantForTheReservoir) {
  const int64_t e = 32, short_l = 512, long_l = 2048;
  attnbench::Params mha;
  mha.set("heads", int64_t{4});
  const double per_token = static_cast<double>(step_peak("mha", mha, long_l, e) - step_peak("mha", mha, short_l, e)) /
                           static_cast<double>(long_l - short_l);
  EXPECT_NEAR(per_token, 2.0 * e * 4, 0.1 * 2.0 * e * 4);
  attnbench::Params ra;
  ra.set("heads", int64_t{4});
  ra.set("res_size", int64_t{64});
  ra.set("density", 0.1);
  EXPECT_EQ(step_peak("reservoir", ra, short_l, e), step_peak("reservoir", ra, long_l, e));
  EXPECT_GT(step_peak("reservoir", ra, short_l, e), 0);
}

TEST(Memory, LongSequencesCheckSampledPrefixPositions) {
  const nlohmann::json line = run_one(fixture_study(1100, ", modes: [consistency]"), "positions").at(0);
  const nlohmann::json& c = line["metrics"]["consistency"];
  ASSERT_TRUE(c["prefix_positions"].is_array()) << c.dump();
  std::vector<int64_t> positions = c["prefix_positions"];
  ASSERT_EQ(positions.size(), 16u);
  EXPECT_EQ(positions.front(), 0);
  EXPECT_EQ(positions.back(), 1099);
  EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));
  EXPECT_EQ(std::adjacent_find(positions.begin(), positions.end()), positions.end());
  EXPECT_EQ(c["prefix_vs_step"]["max_abs"], 0.0);  // the fixture is exact
  EXPECT_EQ(c["step_vs_full"]["max_abs"], 0.0);
  const nlohmann::json all =
      run_one(fixture_study(1100, ", modes: [consistency]", "consistency: {positions: -1}\n"), "every").at(0);
  EXPECT_EQ(all["metrics"]["consistency"]["prefix_positions"], "all");
  const nlohmann::json short_one = run_one(fixture_study(40, ", modes: [consistency]"), "short").at(0);
  EXPECT_EQ(short_one["metrics"]["consistency"]["prefix_positions"], "all");
}

TEST(Memory, TheCpuAllocatorCountsAndBounds) {
  attnbench::install_cpu_accounting();
  const int64_t before = attnbench::allocated_bytes(c10::kCPU);
  at::Tensor t = at::empty({1024, 256});  // 1 MB of floats
  EXPECT_EQ(attnbench::allocated_bytes(c10::kCPU) - before, 1024 * 256 * 4);
  t.reset();
  EXPECT_EQ(attnbench::allocated_bytes(c10::kCPU), before);
  attnbench::set_cpu_memory_limit(before + (1 << 20));
  try {
    at::empty({2048, 256});
    FAIL() << "an allocation past the limit went through";
  } catch (const c10::OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("CPU out of memory: a tensor of 2.0 MB would take this "
                                                           "cell's tensors past run.max_memory"),
              std::string::npos)
        << e.what_without_backtrace();
  }
  attnbench::set_cpu_memory_limit(0);
}

TEST(Memory, ACellPastMaxMemoryFailsAloneAndTheNextRuns) {
  const std::string yaml = fixture_study(7, ", max_memory: 1MB", "matrix: {data.seq_len: [100000, 7]}\n");
  const std::vector<nlohmann::json> lines = run_one(yaml, "max_memory");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["status"], "error");
  const std::string message = lines[0]["message"];
  EXPECT_NE(message.find("CPU out of memory"), std::string::npos) << message;
  EXPECT_NE(message.find("past run.max_memory (1.0 MB"), std::string::npos) << message;
  EXPECT_NE(message.find("lower data.seq_len (now 100000), run.batch (now 1) or the layer's size for this cell, or raise "
                         "run.max_memory"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(lines[1]["status"], "ok");
}

TEST(Memory, StepTrafficIsTheBytesAStepMoves) {
  const int64_t e = 32, length = 8;
  attnbench::MeasureSettings once;
  once.warmup = 0;
  once.min_runs = 1;
  once.min_time_ms = 0;
  attnbench::Params mha;
  mha.set("heads", int64_t{4});
  auto layer = attnbench::testing::make_layer("mha", mha, e);
  attnbench::Measurer measurer(*layer, {at::randn({length, 1, e})}, once, c10::kCPU);
  measurer.time_steps();
  const int64_t weights = (4 * e * e + 4 * e) * 4;
  ASSERT_EQ(measurer.step_traffic().size(), static_cast<size_t>(length));
  for (int64_t t = 0; t < length; ++t) {
    // reads: weights, the token, keys and values 0..t; writes: key, value, output
    EXPECT_EQ(measurer.step_traffic()[t], weights + (1 + 2 * (t + 1)) * e * 4 + 3 * e * 4) << t;
  }
  attnbench::Params ra;
  ra.set("heads", int64_t{4});
  ra.set("res_size", int64_t{64});
  auto reservoir = attnbench::testing::make_layer("reservoir", ra, e);
  const int64_t nnz = std::get<int64_t>(reservoir->info().details.items().at("nnz"));
  attnbench::Measurer streamed(*reservoir, {at::randn({length, 1, e})}, once, c10::kCPU);
  streamed.time_steps();
  // Win and its bias, Wq, Ek, Ev, W in CSR; the state read and written; the token and the output.
  const int64_t ra_weights = (64 * e + 64 + e * e + 2 * 64 * e) * 4 + nnz * 12 + 65 * 8;
  for (int64_t bytes : streamed.step_traffic()) EXPECT_EQ(bytes, ra_weights + 2 * 64 * 4 + 2 * e * 4);
}

TEST(Memory, ACellReportsBandwidthByPositionAndItsThreads) {
  const nlohmann::json line =
      run_one("name: m\ndata: {embedder: synthetic, params: {embed_dim: 32}, seq_len: 16}\n"
              "attention: [{name: m, plugin: mha, params: {heads: 4}}]\nrun: {modes: [step], threads: 2}\n"
              "measure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n",
              "bandwidth")
          .at(0);
  const nlohmann::json& step = line["metrics"]["step"];
  EXPECT_EQ(step["bandwidth_gbps"].size(), 16u);
  EXPECT_GT(step["peak_gbps"].get<double>(), 0);
  EXPECT_EQ(step["traffic_bytes"]["first"], (4 * 32 * 32 + 4 * 32) * 4 + 3 * 32 * 4 + 3 * 32 * 4);
  EXPECT_EQ(line["threads"]["requested"], 2);
  EXPECT_EQ(line["threads"]["blas"], 2);
  if (line["threads"]["blas_library"] == "openblas") EXPECT_EQ(line["threads"]["torch_intra_op"], 1);
}
