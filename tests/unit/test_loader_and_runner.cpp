// Asserts the plugin boundary and the runner end to end:
//  - the loader rejects fixtures built with a wrong SDK ABI major or torch version, naming each field
//    with both values, and rejects libraries that are not plugins;
//  - plugin parameters are validated against the plugin's own list;
//  - the measurement protocols on the exact fixture plugin: step == forward, prefix == step and the two
//    closed loops agree bit for bit, and the closed loop feeds each token once;
//  - run_study writes one JSON line per cell with the documented fields, skips done cells on rerun,
//    records a failing plugin's cell as an error and goes on, and skips CUDA cells on a CPU build;
//  - the status a plugin reports crosses the boundary: Unsupported skips the cell, out of memory is an
//    error with a hint, a parameter validate() refuses is a located ConfigError when the study loads;
//  - a plugin built for SDK ABI minor 0 still loads and runs, and the host calls nothing minor 1 added.
#include "measure/device.h"
#include "plugins/loader.h"
#include "measure/protocols.h"
#include "cli/run_study.h"
#include <attnbench/support/safetensors.h>
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using attnbench::PluginError;
using attnbench::testing::read_jsonl;
using attnbench::testing::temp_path;

namespace {

std::string fixture(const std::string& name) { return std::string(ATTNBENCH_FIXTURE_DIR) + "/attnbench_" + name + ".so"; }

std::string load_error(const std::string& spec) {
  try {
    attnbench::load_plugin(spec, ATTNBENCH_PLUGIN_ATTENTION);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

std::unique_ptr<attnbench::AttentionLayer> fixture_layer(const std::string& fault = "none", int64_t embed_dim = 6) {
  const attnbench::Plugin& plugin = attnbench::load_plugin(fixture("fixture"), ATTNBENCH_PLUGIN_ATTENTION);
  attnbench::Params given;
  given.set("fault", fault);
  attnbench::CreateArgs args;
  args.params = attnbench::complete_params(plugin, given);
  args.embed_dim = embed_dim;
  return std::make_unique<attnbench::AttentionLayer>(plugin, args);
}

attnbench::Study study_from(const std::string& yaml, const std::string& results) {
  attnbench::Study s = attnbench::load_study_text(yaml, "test.yaml", attnbench::plugin_aware_options({}));
  s.results_path = results;
  return s;
}

const char* kFixtureStudy = R"(
name: fixture_study
data: {embedder: synthetic, params: {embed_dim: 8}, samples: 2, seq_len: 12}
attention:
  - name: fx
    plugin: %s
run: {seed_len: 4, horizon: 5}
measure: {warmup: 0, min_runs: 2, min_time_ms: 0}
)";

std::string fixture_study(const std::string& extra = "") {
  char buf[1024];
  std::snprintf(buf, sizeof(buf), kFixtureStudy, fixture("fixture").c_str());
  return buf + extra;
}

}  // namespace

TEST(Loader, RejectsWrongAbiMajorNamingBothValues) {
  std::string e = load_error(fixture("fixture_bad_abi"));
  EXPECT_NE(e.find("incompatible plugin"), std::string::npos) << e;
  EXPECT_NE(e.find("SDK ABI major: plugin 99, runner 1"), std::string::npos) << e;
  EXPECT_EQ(e.find("torch:"), std::string::npos) << "only differing fields are listed: " << e;
}

TEST(Loader, RejectsWrongTorchVersionNamingBothValues) {
  std::string e = load_error(fixture("fixture_bad_torch"));
  std::string expected = "torch: plugin built against torch 99.7, runner uses torch " + std::to_string(TORCH_VERSION_MAJOR) +
                         "." + std::to_string(TORCH_VERSION_MINOR);
  EXPECT_NE(e.find(expected), std::string::npos) << e;
}

TEST(Loader, NotAPluginMissingFileUnknownNameAndWrongKind) {
  EXPECT_NE(load_error(std::string(ATTNBENCH_FIXTURE_DIR) + "/attnbench_not_a_plugin.so").find("is not an attnbench plugin"),
            std::string::npos);
  EXPECT_NE(load_error("/no/such/plugin.so").find("plugin file '/no/such/plugin.so' does not exist"), std::string::npos);
  std::string e = load_error("no_such_plugin");
  EXPECT_NE(e.find("unknown plugin 'no_such_plugin'"), std::string::npos) << e;
  EXPECT_NE(e.find("available: "), std::string::npos) << e;
  EXPECT_NE(e.find("mha"), std::string::npos) << e;
  e = load_error("synthetic");
  EXPECT_NE(e.find("plugin 'synthetic' is an embedder plugin, but an attention plugin is needed here"), std::string::npos) << e;
}

TEST(Loader, AMinorZeroPluginLoadsAndRunsWithoutMinorOneCalls) {
  const attnbench::Plugin& old = attnbench::load_plugin(fixture("fixture_minor0"), ATTNBENCH_PLUGIN_ATTENTION);
  EXPECT_EQ(old.info->sdk_abi_minor, 0u);
  EXPECT_EQ(old.info->struct_size, ATTNBENCH_PLUGIN_INFO_V1_0_SIZE);
  EXPECT_FALSE(old.has_minor(1));
  // The fixture's minor-1 entries abort when called: running a study and a failing call proves the host
  // stays within what minor 0 had.
  std::string results = temp_path("minor0.jsonl");
  fs::remove(results);
  std::string yaml = fixture_study("matrix:\n  attention.params.fault: [none, throw_forward]\n");
  yaml.replace(yaml.find("attnbench_fixture.so"), std::string("attnbench_fixture.so").size(), "attnbench_fixture_minor0.so");
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study_from(yaml, results), {}, out), 1) << out.str();
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["status"], "ok");
  EXPECT_EQ(lines[0]["metrics"]["consistency"]["step_vs_full"]["rel_rms"], 0.0);
  EXPECT_EQ(lines[1]["status"], "error");
  EXPECT_EQ(lines[1]["message"], "plugin 'fixture_minor0' forward(): fixture: asked to fail in forward");
}

TEST(Loader, ATooSmallHandshakeIsRefused) {
  attnbench_plugin_info_v1 info = *attnbench::load_plugin(fixture("fixture"), ATTNBENCH_PLUGIN_ATTENTION).info;
  info.struct_size = ATTNBENCH_PLUGIN_INFO_V1_0_SIZE;  // claims minor 1 without room for its fields
  EXPECT_NE(attnbench::handshake_mismatch(info).find("handshake struct size: plugin"), std::string::npos);
  info.struct_size = 16;
  EXPECT_NE(attnbench::handshake_mismatch(info).find("not a v1 handshake"), std::string::npos);
}

TEST(Loader, ListsBuiltInPluginsWithVersions) {
  bool mha = false, reservoir = false, synthetic = false;
  for (const auto& p : attnbench::list_plugins()) {
    mha |= p.name == "mha" && p.error.empty() && p.kind == "attention" && p.version == "1.0.0";
    reservoir |= p.name == "reservoir" && p.error.empty();
    synthetic |= p.name == "synthetic" && p.kind == "embedder";
  }
  EXPECT_TRUE(mha && reservoir && synthetic);
}

TEST(Loader, ParametersAreCheckedAgainstThePluginsList) {
  const attnbench::Plugin& mha = attnbench::load_plugin("mha", ATTNBENCH_PLUGIN_ATTENTION);
  attnbench::Params p;
  p.set("hedas", int64_t{2});
  try {
    attnbench::complete_params(mha, p);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "plugin 'mha' has no parameter 'hedas'; valid: heads, embed_dim, causal, weights, max_len, cuda_graphs");
  }
  attnbench::Params wrong;
  wrong.set("heads", std::string("four"));
  try {
    attnbench::complete_params(mha, wrong);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "plugin 'mha' parameter 'heads' must be an int");
  }
  attnbench::Params filled = attnbench::complete_params(mha, {});
  EXPECT_EQ(filled.get_int("heads"), 4);
  EXPECT_TRUE(filled.get_bool("causal"));
}

TEST(Loader, ExceptionsInsideThePluginBecomeErrors) {
  auto layer = fixture_layer("throw_forward");
  auto state = layer->init_state(1);
  try {
    layer->forward(at::zeros({2, 1, 6}), *state);
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "plugin 'fixture' forward(): fixture: asked to fail in forward");
  }
  try {
    fixture_layer("throw_create");
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "plugin 'fixture' failed to create: fixture: asked to fail in create");
  }
  auto bad = fixture_layer("wrong_shape");
  auto s2 = bad->init_state(1);
  try {
    bad->forward(at::zeros({2, 1, 6}), *s2);
    FAIL();
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("forward() returned shape [2, 1, 5] for input [2, 1, 6]"), std::string::npos);
  }
}

TEST(Protocols, ExactFixtureAgreesBitForBit) {
  auto layer = fixture_layer();
  at::Tensor x = at::randn({10, 3, 6});
  at::Tensor full = attnbench::run_full(*layer, x);
  at::Tensor steps = attnbench::run_steps(*layer, x);
  at::Tensor prefix = attnbench::run_prefix(*layer, x);
  EXPECT_TRUE(at::equal(full, steps));
  EXPECT_TRUE(at::equal(prefix, steps));
  // Hand-computed: y_t = (max(x_0..x_t) + x_t) / 2.
  at::Tensor expected = (std::get<0>(at::cummax(x, 0)) + x) / 2;
  EXPECT_TRUE(at::equal(full, expected));
  at::Tensor by_step = attnbench::rollout_steps(*layer, x, 4, 6);
  at::Tensor by_prefix = attnbench::rollout_prefix(*layer, x, 4, 6);
  EXPECT_EQ(by_step.sizes(), (std::vector<int64_t>{6, 3, 6}));
  EXPECT_TRUE(at::equal(by_step, by_prefix));
}

TEST(Protocols, ClosedLoopFeedsEachTokenOnce) {
  auto layer = fixture_layer();
  at::Tensor x = at::randn({8, 1, 6});
  // Independent closed form: after the seed, the running max m is fixed (outputs never exceed it), and
  // each output feeds the next: y_0 = (m + x_3) / 2, out_h = (m + previous) / 2.
  at::Tensor m = std::get<0>(x.slice(0, 0, 4).max(0));
  at::Tensor previous = (m + x[3]) / 2;
  at::Tensor rollout = attnbench::rollout_steps(*layer, x, 4, 3);
  for (int64_t h = 0; h < 3; ++h) {
    previous = (m + previous) / 2;
    EXPECT_TRUE(at::equal(rollout[h], previous)) << "horizon step " << h;
  }
}

TEST(Runner, WritesOneLinePerCellWithTheDocumentedFields) {
  std::string results = temp_path("fields.jsonl");
  fs::remove(results);
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study_from(fixture_study(), results), {}, out), 0) << out.str();
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 1u);
  const nlohmann::json& r = lines[0];
  EXPECT_EQ(r["schema_version"], 1);
  EXPECT_EQ(r["status"], "ok");
  EXPECT_EQ(r["hash"].get<std::string>().size(), 16u);
  EXPECT_EQ(r["attention"]["plugin"], "fixture");
  EXPECT_EQ(r["params"]["data"]["seq_len"], 12);
  for (const char* key : {"host", "cpu", "torch", "compiler", "build_type", "git_commit", "gpus"}) {
    EXPECT_TRUE(r["context"].contains(key)) << key;
  }
  const nlohmann::json& m = r["metrics"];
  for (const char* mode : {"full", "step", "prefix"}) {
    for (const char* stat : {"median", "mean", "stdev", "p10", "p90", "p99", "min", "max", "n", "samples"}) {
      EXPECT_TRUE(m[mode]["time_ms"].contains(stat)) << mode << "." << stat;
    }
  }
  EXPECT_EQ(m["full"]["time_ms"]["n"], 2);  // min_runs alternating over the two samples
  EXPECT_GT(m["full"]["tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(m["step"]["per_position_us"].size(), 12u);
  EXPECT_EQ(m["step"]["per_token_us"]["n"], 24);
  EXPECT_EQ(m["consistency"]["step_vs_full"]["rel_rms"], 0.0);
  EXPECT_EQ(m["consistency"]["prefix_vs_step"]["max_abs"], 0.0);
  EXPECT_EQ(m["rollout"]["step_vs_prefix"]["rel_rms"], 0.0);
  EXPECT_EQ(m["rollout"]["step_vs_prefix"]["seed_len"], 4);
  EXPECT_EQ(m["rollout"]["step_vs_prefix"]["horizon"], 5);
  EXPECT_EQ(m["state_bytes"], 8 * 4);
  EXPECT_GT(m["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_NE(out.str().find("[Full sequence]"), std::string::npos);
  EXPECT_NE(out.str().find("[Closed loop]     step vs prefix: rel 0.000e+00"), std::string::npos) << out.str();
}

TEST(Runner, RerunSkipsDoneCellsAndForceRunsThemAgain) {
  std::string results = temp_path("resume.jsonl");
  fs::remove(results);
  std::string yaml = fixture_study("matrix:\n  run.seed: [1, 2]\n");
  std::ostringstream out;
  attnbench::run_study(study_from(yaml, results), {}, out);
  EXPECT_EQ(read_jsonl(results).size(), 2u);
  std::ostringstream again;
  attnbench::run_study(study_from(yaml, results), {}, again);
  EXPECT_EQ(read_jsonl(results).size(), 2u);
  EXPECT_NE(again.str().find("already in"), std::string::npos);
  attnbench::RunOptions force;
  force.force = true;
  attnbench::run_study(study_from(yaml, results), force, again);
  EXPECT_EQ(read_jsonl(results).size(), 4u);
}

TEST(Runner, AFailingCellIsRecordedAndTheMatrixGoesOn) {
  std::string results = temp_path("faults.jsonl");
  fs::remove(results);
  std::string yaml = fixture_study("matrix:\n  attention.params.fault: [throw_forward, none, wrong_shape, nan, step_differs]\n");
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study_from(yaml, results), {}, out), 1);
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["status"], "error");
  EXPECT_EQ(lines[0]["message"], "plugin 'fixture' forward(): fixture: asked to fail in forward");
  EXPECT_EQ(lines[1]["status"], "ok");
  EXPECT_EQ(lines[2]["status"], "error");
  EXPECT_NE(lines[2]["message"].get<std::string>().find("returned shape [12, 1, 7] for input [12, 1, 8]"), std::string::npos);
  EXPECT_EQ(lines[3]["status"], "error");
  EXPECT_EQ(lines[3]["message"], "plugin 'fixture' forward() returned NaN or Inf");
  // A wrong step is a measurement, not a crash: its timings are kept, and the gate marks the cell.
  EXPECT_EQ(lines[4]["status"], "inconsistent");
  EXPECT_NEAR(lines[4]["metrics"]["consistency"]["step_vs_full"]["max_abs"].get<double>(), 1e-3, 1e-6);
}

TEST(Runner, StatusFromThePluginDecidesSkipOrError) {
  std::string results = temp_path("status.jsonl");
  fs::remove(results);
  std::string yaml = fixture_study("matrix:\n  attention.params.fault: [unsupported, out_of_memory, none]\n");
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study_from(yaml, results), {}, out), 1) << out.str();
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["status"], "skipped");
  EXPECT_EQ(lines[0]["message"], "plugin 'fixture' forward(): fixture: asked to skip this cell");
  EXPECT_EQ(lines[1]["status"], "error");
  const std::string oom = lines[1]["message"];
  EXPECT_NE(oom.find("fixture: asked to run out of memory"), std::string::npos) << oom;
  EXPECT_NE(oom.find("(lower data.seq_len (now 12), run.batch (now 1) or the layer's size for this cell)"), std::string::npos) << oom;
  EXPECT_EQ(oom.find("Exception raised from"), std::string::npos) << "no C++ backtrace: " << oom;
  EXPECT_EQ(oom.find('\n'), std::string::npos) << oom;
  EXPECT_EQ(lines[2]["status"], "ok");
}

TEST(Runner, ValidateRunsWhenTheStudyLoadsAndNamesTheParameter) {
  try {
    study_from(fixture_study("matrix:\n  attention.params.fault: [none, sometimes]\n"), temp_path("never.jsonl"));
    FAIL();
  } catch (const attnbench::ConfigError& e) {
    EXPECT_STREQ(e.what(), "test.yaml:10:34: attention[fx].params.fault: fixture: unknown fault 'sometimes'; valid: none, "
                           "throw_create, throw_forward, wrong_shape, nan, step_differs, cuda_only, unsupported, out_of_memory, crash");
  }
}

TEST(Runner, ContextCarriesTheBuildsProvenance) {
  std::string results = temp_path("provenance.jsonl");
  fs::remove(results);
  std::ostringstream out;
  attnbench::run_study(study_from(fixture_study(), results), {}, out);
  const nlohmann::json context = read_jsonl(results).at(0)["context"];
  for (const char* key : {"attnbench_version", "git_commit", "git_dirty", "build_type", "compiler", "cuda_architectures",
                          "torch", "attnbench_sdk_abi"}) {
    EXPECT_TRUE(context.contains(key)) << key;
  }
  EXPECT_EQ(context["attnbench_sdk_abi"], "1.1");
  EXPECT_EQ(context["git_dirty"].get<bool>(), context["git_commit"].get<std::string>().find("-dirty") != std::string::npos);
}

TEST(Runner, CudaCellsAreSkippedWhereThereIsNoCuda) {
  if (attnbench::cuda_available()) GTEST_SKIP() << "this machine has CUDA";
  std::string results = temp_path("cuda.jsonl");
  fs::remove(results);
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study_from(fixture_study("matrix:\n  run.device: [cuda, cpu]\n"), results), {}, out), 0);
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["status"], "skipped");
  EXPECT_EQ(lines[0]["message"], attnbench::cuda_unavailable_reason());
  EXPECT_EQ(lines[1]["status"], "ok");
}

TEST(Runner, SaveOutputsWritesSafetensorsPerCell) {
  std::string dir = temp_path("outputs");
  fs::remove_all(dir);
  attnbench::RunOptions options;
  options.save_outputs_dir = dir;
  options.force = true;
  std::ostringstream out;
  attnbench::run_study(study_from(fixture_study(), temp_path("save.jsonl")), options, out);
  ASSERT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  attnbench::TensorFile file = attnbench::load_safetensors(fs::directory_iterator(dir)->path().string());
  EXPECT_TRUE(at::equal(file.tensors.at("forward"), file.tensors.at("step")));
  EXPECT_EQ(file.tensors.at("input").sizes(), (std::vector<int64_t>{12, 1, 8}));
}
