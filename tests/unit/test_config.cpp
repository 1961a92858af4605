// Asserts how studies expand and fail: Cartesian products with CI-matrix include/exclude semantics,
// --set overrides, axes that apply only to layers that have the parameter, stable hashes, and errors
// that name file:line:column, the key and the valid choices.
// To add a case: write the YAML inline, load it with load_study_text and check the cells or the message.
#include "study/study.h"
#include "cli/run_study.h"
#include "plugins/loader.h"
#include "study/select.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <set>

using attnbench::ConfigError;
using attnbench::load_study_text;
using attnbench::LoadOptions;
using attnbench::Study;

namespace {

const char* const kBase = attnbench::testing::kTwoLayerStudy;

Study load(const std::string& extra, LoadOptions options = {}) { return load_study_text(kBase + extra, "s.yaml", options); }

std::string error_of(const std::string& text, LoadOptions options = {}) {
  try {
    load_study_text(text, "s.yaml", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::multiset<std::string> cells_of(const Study& s) {
  std::multiset<std::string> out;
  for (const auto& c : s.cells) {
    std::string key = c.label;
    for (const auto& [axis, value] : c.axes) {
      if (axis != "attention") key += " " + axis + "=" + value;
    }
    out.insert(key);
  }
  return out;
}

}  // namespace

TEST(Matrix, AttentionEntriesAreTheImplicitFirstAxis) {
  Study s = load("");
  ASSERT_EQ(s.cells.size(), 2u);
  EXPECT_EQ(s.cells[0].label, "a");
  EXPECT_EQ(s.cells[1].label, "b");
  EXPECT_EQ(s.cells[0].seq_len, 32);
  EXPECT_EQ(s.results_path, "results/t.jsonl");
}

TEST(Matrix, CartesianProductWithExcludeAndInclude) {
  Study s = load(R"(
matrix:
  run.device: [cpu, cuda]
  run.threads: [1, 2]
  exclude:
    - {run.device: cuda, run.threads: 2}
  include:
    - {run.device: cpu, run.seed: 7}
    - {attention: a, run.device: cuda, run.threads: 4}
)");
  // 2 entries x 2 devices x 2 threads = 8, minus 2 excluded = 6; the first include adds run.seed to
  // the cpu cells; the second matches no combination (threads 4 is new) so it becomes its own cell.
  EXPECT_EQ(cells_of(s), (std::multiset<std::string>{
                             "a run.device=cpu run.seed=7 run.threads=1", "a run.device=cpu run.seed=7 run.threads=2",
                             "a run.device=cuda run.threads=1", "b run.device=cpu run.seed=7 run.threads=1",
                             "b run.device=cpu run.seed=7 run.threads=2", "b run.device=cuda run.threads=1",
                             "a run.device=cuda run.threads=4"}));
  for (const auto& c : s.cells) {
    if (c.device == "cpu") EXPECT_EQ(c.seed, 7);
  }
}

TEST(Matrix, ExplicitAttentionAxisSelectsEntries) {
  Study s = load("matrix:\n  attention: [b]\n  run.seed: [1, 2, 3]\n");
  ASSERT_EQ(s.cells.size(), 3u);
  for (const auto& c : s.cells) EXPECT_EQ(c.label, "b");
}

TEST(Matrix, PluginParameterAxisAppliesOnlyWhereTheParameterExists) {
  LoadOptions options;
  options.has_param = [](const std::string& plugin, const std::string& key) { return plugin == "reservoir" && key == "res_size"; };
  Study s = load("matrix:\n  attention.params.res_size: [32, 64]\n", options);
  // mha has no res_size: one mha cell, not two identical ones.
  EXPECT_EQ(cells_of(s), (std::multiset<std::string>{"a", "b attention.params.res_size=32", "b attention.params.res_size=64"}));
  EXPECT_EQ(std::get<int64_t>(s.cells[2].attention_params.items().at("res_size")), 64);
}

TEST(Matrix, SetOverridesValuesAndAxes) {
  LoadOptions options;
  options.overrides = {"data.seq_len=32", "matrix.run.seed=[4, 5]", "run.modes=[full]"};
  Study s = load("", options);
  ASSERT_EQ(s.cells.size(), 4u);
  EXPECT_EQ(s.cells[0].seq_len, 32);
  EXPECT_EQ(s.cells[0].modes, std::vector<std::string>{"full"});
  EXPECT_EQ(s.cells[1].seed, 5);
}

TEST(Matrix, AnIncludeThatOverridesASetValueLeavesTheOtherCellsTheirs) {
  // configs/bench_cpu.yaml's shape: an include gives one entry its own modes; --set gives the rest theirs.
  LoadOptions options;
  options.overrides = {"run.modes=[step]"};
  Study s = load("matrix:\n  run.seed: [1, 2]\n  include:\n    - {attention: a, run.seed: 1, run.modes: [full]}\n"
                 "    - {attention: b, measure.min_runs: 2}\n    - {attention: b, run.seed: 2, measure.min_runs: 3}\n",
                 options);
  ASSERT_EQ(s.cells.size(), 4u);
  for (const auto& c : s.cells) {
    const bool own = c.label == "a" && c.seed == 1;
    EXPECT_EQ(c.modes, std::vector<std::string>{own ? "full" : "step"}) << c.label << " seed " << c.seed;
  }
  // Two includes on one cell: the later wins there, and the earlier one keeps its value on its other cell.
  EXPECT_EQ(s.cells[2].label + std::to_string(s.cells[2].seed), "b1");
  EXPECT_EQ(s.cells[2].measure.min_runs, 2);
  EXPECT_EQ(s.cells[3].measure.min_runs, 3);
}

TEST(Matrix, HashIsStableAndDependsOnlyOnParameters) {
  Study a = load("");
  Study b = load("output: {results: elsewhere.jsonl}\n");
  EXPECT_EQ(a.cells[0].hash, b.cells[0].hash);
  EXPECT_EQ(a.cells[0].hash.size(), 16u);
  LoadOptions options;
  options.overrides = {"data.seq_len=9", "run.seed_len=2"};
  EXPECT_NE(load("", options).cells[0].hash, a.cells[0].hash);
}

TEST(Matrix, CellsHashAsTheyDidWhenOlderResultsWereWritten) {
  // configs/quickstart.yaml as of commit 7b6a900, and the hashes that runner wrote into its results: a
  // results file written then must still resume, so these may never change.
  const char* quickstart = R"(
name: quickstart
data:
  embedder: bert
  params: {model: models/all-MiniLM-L6-v2, corpus: data/wiki_sample.xml}
  samples: 2
  seq_len: 128
attention:
  - {name: MHA, plugin: mha, params: {heads: 4}}
  - {name: ReservoirAttention, plugin: reservoir, params: {heads: 4, res_size: 256, density: 0.01, topology: uniform}}
run: {device: cpu, threads: 1, seed_len: 16, horizon: 32}
measure: {warmup: 1, min_runs: 3, min_time_ms: 100}
output: {results: results/quickstart.jsonl}
)";
  Study s = load_study_text(quickstart, "quickstart.yaml", attnbench::plugin_aware_options({}));
  ASSERT_EQ(s.cells.size(), 2u);
  EXPECT_EQ(s.cells[0].hash, "5e9863b502bea6bb");
  EXPECT_EQ(s.cells[1].hash, "aaa8f1d030899444");
}

TEST(ConfigErrors, MalformedYamlNamesLineAndColumn) {
  EXPECT_NE(error_of("name: [unclosed\n").find("s.yaml:2:1: malformed YAML"), std::string::npos) << error_of("name: [unclosed\n");
}

TEST(ConfigErrors, UnknownKeyListsValidKeys) {
  std::string e = error_of(std::string(kBase) + "run:\n  devcie: cpu\n");
  EXPECT_NE(e.find("s.yaml:8:3: run.devcie: unknown key 'devcie'; valid keys: device, amp"), std::string::npos) << e;
}

TEST(ConfigErrors, WrongTypeAndBadChoice) {
  std::string e = error_of(std::string(kBase) + "run:\n  threads: many\n");
  EXPECT_NE(e.find("s.yaml:8:12: run.threads: 'many' is not an integer"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "run:\n  device: gpu\n");
  EXPECT_NE(e.find("run.device: 'gpu' is not one of cpu, cuda"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "run:\n  amp: maybe\n");
  EXPECT_NE(e.find("run.amp: 'maybe' is not a boolean"), std::string::npos) << e;
}

TEST(ConfigErrors, OutOfRange) {
  std::string e = error_of(std::string(kBase) + "measure:\n  min_runs: 0\n");
  EXPECT_NE(e.find("measure.min_runs: 0 is out of range; must be in [1, 1000000]"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "run:\n  seed_len: 100\n");
  EXPECT_NE(e.find("seed_len 100 exceeds data.seq_len 32"), std::string::npos) << e;
}

TEST(ConfigErrors, MatrixProblems) {
  EXPECT_NE(error_of(std::string(kBase) + "matrix:\n  run.seed: []\n").find("axis 'run.seed' has no values"), std::string::npos);
  EXPECT_NE(error_of(std::string(kBase) + "matrix:\n  seed: [1]\n").find("must be a dotted path under data, attention, run, measure, consistency or quality"),
            std::string::npos);
  std::string e = error_of(std::string(kBase) + "matrix:\n  run.seed: [1]\n  exclude: [{run.sed: 1}]\n");
  EXPECT_NE(e.find("'run.sed' is not a matrix axis; axes: attention, run.seed"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "matrix:\n  run.seed: [1]\n  exclude: [{run.seed: 1}]\n");
  EXPECT_NE(e.find("expands to no cells"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "matrix:\n  run.seed: [1, 2]\n  exclude: [{run.seed: 1}]\n  include: [{run.seed: 1}]\n");
  EXPECT_NE(e.find("include entry 1 adds back what exclude entry 1 removes"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "matrix:\n  include: [{attention: zz, run.seed: 3}]\n");
  EXPECT_NE(e.find("matrix.include: 'zz' names no attention entry; entries: a, b"), std::string::npos) << e;
  e = error_of(std::string(kBase) + "matrix:\n  attention: [zz]\n");
  EXPECT_NE(e.find("'zz' names no attention entry; entries: a, b"), std::string::npos) << e;
}

TEST(ConfigErrors, AttentionEntries) {
  EXPECT_NE(error_of("name: x\n").find("attention: must be a non-empty list"), std::string::npos);
  EXPECT_NE(error_of("attention:\n  - {name: a}\n").find("needs a 'plugin'"), std::string::npos);
  EXPECT_NE(error_of("attention:\n  - {plugin: mha}\n  - {plugin: mha}\n").find("duplicate name 'mha'"), std::string::npos);
}

TEST(ConfigErrors, PluginParameterErrorsCarryTheLocation) {
  LoadOptions options;
  options.complete_params = [](attnbench_plugin_kind kind, const std::string&, const attnbench::Params& given) {
    if (kind == ATTNBENCH_PLUGIN_ATTENTION && given.contains("heads")) {
      throw std::invalid_argument("plugin 'mha' has no parameter 'heads'; valid: x");
    }
    return given;
  };
  std::string e = error_of(kBase, options);
  EXPECT_NE(e.find("s.yaml:5:36: attention[a]: plugin 'mha' has no parameter 'heads'; valid: x"), std::string::npos) << e;
}

TEST(ConfigErrors, InvalidUtf8IsAnErrorNotACrash) {
  // The input libFuzzer found: a non-UTF-8 byte inside a value reached the JSON serializer.
  EXPECT_NE(error_of(std::string(kBase) + "run: {modes: [f\xffull]}\n").find("s.yaml: invalid UTF-8 at byte "), std::string::npos);
}

TEST(ConfigErrors, MissingFile) {
  try {
    attnbench::load_study("/nonexistent/study.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/study.yaml: cannot open the study file (does it exist?)");
  }
}

TEST(Shards, PartitionAThreeAxisMatrixExactly) {
  LoadOptions options;
  options.overrides = {"matrix.run.seed=[1, 2, 3]", "matrix.run.threads=[1, 2]", "matrix.data.samples=[1, 2]"};
  const Study full = load("", options);
  ASSERT_EQ(full.cells.size(), 24u);  // 2 attention entries x 3 x 2 x 2
  for (int64_t count : {1, 5, 24, 30}) {
    std::multiset<std::string> seen;
    for (int64_t index = 1; index <= count; ++index) {
      Study shard = full;
      attnbench::shard_cells(shard, index, count);
      for (const auto& c : shard.cells) seen.insert(c.hash);
    }
    std::multiset<std::string> all;
    for (const auto& c : full.cells) all.insert(c.hash);
    EXPECT_EQ(seen, all) << count << " shards";  // every cell in exactly one shard
  }
  Study s = full;
  EXPECT_THROW(attnbench::shard_cells(s, 0, 4), ConfigError);
  EXPECT_THROW(attnbench::shard_cells(s, 5, 4), ConfigError);
}
