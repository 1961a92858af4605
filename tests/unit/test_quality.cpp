// Asserts the quality mode against layers whose answers are known (tests/fixtures/fixture_quality.cpp):
//  - a layer that returns its input remembers nothing: r²(k) < 0.05 at every delay;
//  - a layer that holds its last D inputs in separate coordinates has memory capacity within 2% of D;
//  - a layer that outputs zeros scores no better than the baseline in every task;
//  - memory capacity never exceeds the number of readout features (Dambre et al., 2012);
//  - the ridge readout recovers an exact linear map, and reads constant features as the mean;
//  - a task's bad episode and a bad task parameter are one clear error each, the latter at load time.
#include "cli/run_study.h"
#include "measure/readout.h"
#include "plugins/loader.h"
#include "test_util.h"

#include <attnbench/support/safetensors.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

namespace fs = std::filesystem;
using attnbench::testing::read_jsonl;
using attnbench::testing::temp_path;

namespace {

std::string fixture(const std::string& name) { return std::string(ATTNBENCH_FIXTURE_DIR) + "/attnbench_" + name + ".so"; }

// Short episodes: the properties hold at any size, the tests should take seconds.
const char* kSmallTasks = R"(
  params:
    memory_capacity: {max_delay: 30, washout: 50, train: 1000, validation: 300, test: 500}
    mackey_glass: {trials: 2, washout: 50, train: 500, validation: 100, test: 200, horizons: "10,50"}
    next_embedding: {documents: 8, tokens: 64})";

// A corpus whose next token follows from the current one (x_{t+1} = 0.9 x_t + noise), for next_embedding.
std::string predictable_corpus() {
  const std::string path = temp_path("ar1.safetensors");
  at::manual_seed(3);
  at::Tensor x = at::empty({8, 64, 16});
  x.select(1, 0).normal_();
  for (int64_t t = 1; t < 64; ++t) x.select(1, t).copy_(0.9 * x.select(1, t - 1) + 0.3 * at::randn({8, 16}));
  attnbench::save_safetensors(path, {{"embeddings", x}});
  return path;
}

std::vector<nlohmann::json> run(const std::string& layer_params, const std::string& tasks, const std::string& name) {
  const std::string yaml = "name: q\ndata: {embedder: file, params: {path: " + predictable_corpus() +
                           "}, seq_len: 64}\nattention: [{name: fx, plugin: " + fixture("fixture_quality") +
                           ", params: " + layer_params + "}]\nrun: {modes: [quality]}\nquality:\n  tasks: " + tasks +
                           kSmallTasks + "\n";
  attnbench::Study study = attnbench::load_study_text(yaml, name + ".yaml", attnbench::plugin_aware_options({}));
  study.results_path = temp_path(name + ".jsonl");
  fs::remove(study.results_path);
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study, {}, out), 0) << out.str();
  return read_jsonl(study.results_path);
}

nlohmann::json quality_of(const std::string& layer_params, const std::string& tasks, const std::string& name) {
  const auto lines = run(layer_params, tasks, name);
  EXPECT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines.at(0)["status"], "ok") << lines.at(0).dump();
  return lines.at(0)["metrics"]["quality"];
}

}  // namespace

TEST(Quality, ALayerThatReturnsItsInputRemembersNothing) {
  const nlohmann::json mc = quality_of("{kind: identity}", "[memory_capacity]", "identity")["memory_capacity"];
  ASSERT_EQ(mc["curve"]["y"].size(), 30u);
  for (double r2 : mc["curve"]["y"]) EXPECT_LT(r2, 0.05);
  EXPECT_LT(mc["score"].get<double>(), 0.5);
  EXPECT_EQ(mc["score_name"], "MC");
}

TEST(Quality, ALayerHoldingItsLastDInputsHasMemoryCapacityD) {
  const nlohmann::json mc = quality_of("{kind: delay_line, delays: 10}", "[memory_capacity]", "delay")["memory_capacity"];
  EXPECT_NEAR(mc["score"].get<double>(), 10.0, 0.2);
  const std::vector<double> r2 = mc["curve"]["y"];
  for (size_t k = 0; k < 10; ++k) EXPECT_GT(r2[k], 0.99) << "delay " << k + 1;
  for (size_t k = 10; k < r2.size(); ++k) EXPECT_LT(r2[k], 0.05) << "delay " << k + 1;
  // The readout's sizes are in the result.
  EXPECT_EQ(mc["readout"]["train"], 1000);
  EXPECT_EQ(mc["readout"]["validation"], 300);
  EXPECT_EQ(mc["readout"]["test"], 500);
  EXPECT_EQ(mc["readout"]["washout"], 50);
  EXPECT_EQ(mc["readout"]["features"], 16);
}

TEST(Quality, ALayerThatOutputsZerosIsNoBetterThanTheBaselineInAnyTask) {
  const nlohmann::json q = quality_of("{kind: zeros}", "[memory_capacity, mackey_glass, next_embedding]", "zeros");
  ASSERT_EQ(q.size(), 3u);
  for (const auto& [task, r] : q.items()) {
    const double score = r["score"], baseline = r["baseline"];
    if (r["better"] == "higher") EXPECT_LE(score, baseline) << task;
    else EXPECT_GE(score, baseline) << task;
  }
  EXPECT_LT(q["memory_capacity"]["score"].get<double>(), 1e-12);  // constant features: the readout is the mean
  // The baselines are real: the predictable corpus and the smooth series are easy to beat from the input.
  EXPECT_GT(q["next_embedding"]["baseline"].get<double>(), 0.5);
  EXPECT_LT(q["mackey_glass"]["baseline"].get<double>(), 0.3);
  for (const char* name : {"nrmse", "nrmse_10", "nrmse_50", "valid_time"}) {
    EXPECT_TRUE(q["mackey_glass"]["scores"].contains(name)) << name;
  }
}

TEST(Quality, MemoryCapacityNeverExceedsTheReadoutFeatures) {
  const std::string yaml = std::string("name: q\ndata: {embedder: synthetic, params: {embed_dim: 8}, seq_len: 16}\n") +
                           "attention: [{name: ra, plugin: reservoir, params: {heads: 2, res_size: 64, density: 0.1}}]\n" +
                           "run: {modes: [quality]}\nquality:\n  tasks: [memory_capacity]" + kSmallTasks + "\n";
  attnbench::Study study = attnbench::load_study_text(yaml, "dambre.yaml", attnbench::plugin_aware_options({}));
  study.results_path = temp_path("dambre.jsonl");
  fs::remove(study.results_path);
  std::ostringstream out;
  ASSERT_EQ(attnbench::run_study(study, {}, out), 0) << out.str();
  const nlohmann::json mc = read_jsonl(study.results_path).at(0)["metrics"]["quality"]["memory_capacity"];
  EXPECT_GT(mc["score"].get<double>(), mc["baseline"].get<double>());  // a reservoir remembers
  EXPECT_LE(mc["score"].get<double>(), mc["readout"]["features"].get<double>());
  EXPECT_NE(out.str().find("[Quality]         memory_capacity: MC "), std::string::npos) << out.str();
}

TEST(Readout, RecoversAnExactLinearMapAndReadsConstantFeaturesAsTheMean) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({300, 5}, at::kDouble);
  const at::Tensor w = at::randn({5, 2}, at::kDouble);
  const at::Tensor y = at::matmul(x, w) + at::tensor({1.5, -2.0}, at::kDouble);
  at::Tensor train = at::zeros({300}, at::kBool), validation = at::zeros({300}, at::kBool);
  train.narrow(0, 0, 200).fill_(true);
  validation.narrow(0, 200, 100).fill_(true);
  const attnbench::Readout fit = attnbench::fit_ridge(x, y, train, validation);
  EXPECT_LT((fit.weights - w).abs().max().item<double>(), 1e-6);
  EXPECT_LT((fit.bias - at::tensor({1.5, -2.0}, at::kDouble)).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(fit.ridge, (std::vector<double>{1e-8, 1e-8}));  // no noise: the least regulariser wins
  const attnbench::Readout flat = attnbench::fit_ridge(at::zeros({300, 5}), y, train, validation);
  EXPECT_TRUE(at::allclose(flat.predict(at::zeros({1, 5})), y.narrow(0, 0, 200).mean(0).unsqueeze(0)));
}

TEST(Quality, ATaskWithABadEpisodeIsOneClearError) {
  for (const auto& [fault, message] : std::vector<std::pair<std::string, std::string>>{
           {"bad_targets", "task 'fixture_task' make() returned targets of shape [39, 1, 1]; expected (40, 1, K) float64"},
           {"no_test", "task 'fixture_task' make() returned a split without train, validation or test rows"},
           {"throw", "task 'fixture_task' make(): fixture_task: asked to fail in make"}}) {
    const std::string yaml = "name: q\ndata: {embedder: synthetic, params: {embed_dim: 16}, seq_len: 8}\n"
                             "attention: [{name: fx, plugin: " + fixture("fixture_quality") + "}]\n"
                             "run: {modes: [quality]}\nquality: {tasks: [" + fixture("fixture_task") +
                             "], params: {" + fixture("fixture_task") + ": {fault: " + fault + "}}}\n";
    attnbench::Study study = attnbench::load_study_text(yaml, "task.yaml", attnbench::plugin_aware_options({}));
    study.results_path = temp_path("task_" + fault + ".jsonl");
    fs::remove(study.results_path);
    std::ostringstream out;
    EXPECT_EQ(attnbench::run_study(study, {}, out), 1);
    const nlohmann::json line = read_jsonl(study.results_path).at(0);
    EXPECT_EQ(line["status"], "error");
    EXPECT_NE(line["message"].get<std::string>().find(message), std::string::npos) << line["message"];
  }
}

TEST(Quality, TaskParametersAreCheckedWhenTheStudyLoads) {
  auto error_of = [](const std::string& quality) {
    const std::string yaml = "name: q\ndata: {embedder: synthetic, params: {embed_dim: 8}, seq_len: 8}\n"
                             "attention: [{plugin: mha, params: {heads: 2}}]\nrun: {modes: [quality]}\n" + quality;
    try {
      attnbench::load_study_text(yaml, "q.yaml", attnbench::plugin_aware_options({}));
    } catch (const attnbench::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(error_of("quality: {params: {memory_capacity: {max_delay: 0}}}\n"),
            "q.yaml:5:49: quality.params.memory_capacity.max_delay: memory_capacity: max_delay must be in [1, 10000], got 0");
  EXPECT_NE(error_of("quality: {tasks: [memory_capacity], params: {mackey_glas: {tau: 30}}}\n")
                .find("quality.params.mackey_glas: unknown plugin 'mackey_glas'"),
            std::string::npos);
  EXPECT_EQ(error_of("quality: {tasks: [memory_capacity], params: {mackey_glass: {tau: 30}}}\n"), "(no error)");
  EXPECT_NE(error_of("quality: {tasks: [no_such_task]}\n").find("unknown plugin 'no_such_task'"), std::string::npos);
  EXPECT_NE(error_of("quality: {params: {mackey_glass: {horizons: '84,x'}}}\n")
                .find("quality.params.mackey_glass.horizons: mackey_glass: horizons '84,x' must be steps"),
            std::string::npos);
}
