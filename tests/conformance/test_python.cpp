// Asserts that the `python` plugin hosts Python layers faithfully: tensors cross as the very same
// TensorImpl in both directions (no copies), `args` arrive as typed keyword arguments beside embed_dim,
// device, dtype and seed, the Python MHA example (torch.nn.MultiheadAttention with a KV cache) equals the
// C++ `mha` plugin loaded with the same weights (relative RMS < 1e-6, fp32, forward and step), Python
// states die when the host deletes them, any thread may call, a MemoryError is an out-of-memory failure
// naming the method and its file:line, reserve() replaces or keeps the state, and validate() rejects
// each bad parameter with one exact message; docs/python-layers.md's complete example is the example file.
// The examples themselves go through `runner check-plugin`
// (tests/CMakeLists.txt) and the bad layers through the catalogue (tests/catalogue).
#include "conformance/helpers.h"
#include <attnbench/support/safetensors.h>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <fstream>
#include <thread>

using attnbench::Params;
using attnbench::PluginError;
using attnbench::testing::make_layer;
using attnbench::testing::rel;

namespace {

const std::string kExamples = ATTNBENCH_SOURCE_DIR "/examples/python/";
const std::string kFixtures = ATTNBENCH_SOURCE_DIR "/tests/fixtures/python_layers.py";

Params python_params(const std::string& module, const std::string& cls, const std::string& args = "{}") {
  Params p;
  p.set("module", module);
  p.set("class", cls);
  p.set("args", args);
  return p;
}

// The 1-based line of the first line of `file` that contains `text`, 0 if none does.
int line_of(const std::string& file, const std::string& text) {
  std::ifstream in(file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(text) != std::string::npos) return n;
  }
  return 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(PythonLayers, TensorsCrossWithoutCopies) {
  auto layer = make_layer("python", python_params(kFixtures, "Echo"), 8);
  auto state = layer->init_state(2);
  at::Tensor x = at::randn({5, 2, 8});
  EXPECT_TRUE(layer->forward(x, *state).is_same(x));  // Echo returns what it got: the same TensorImpl back
  at::Tensor x_t = at::randn({2, 8});
  EXPECT_TRUE(layer->step(x_t, *state).is_same(x_t));
}

TEST(PythonLayers, ArgsArriveAsTypedKeywordArguments) {
  auto layer = make_layer("python", python_params(kFixtures, "Echo", "{a: 1, b: 2.5, c: true, d: text, e: '7', f: [1, x], g: ~, h: {i: 2}}"),
                          8, /*seed=*/11);
  attnbench::AttentionInfo info = layer->info();
  EXPECT_EQ(info.description,
            "embed_dim=8 device=cpu dtype=torch.float32 seed=11 a=1 b=2.5 c=True d='text' e='7' f=[1, 'x'] g=None h={'i': 2}");
  EXPECT_FALSE(info.causal);
  EXPECT_EQ(info.devices, std::vector<std::string>{"cpu"});
  EXPECT_EQ(info.embed_dim, 8);
  EXPECT_EQ(info.details.get_string("class"), "Echo");
  EXPECT_EQ(info.details.get_string("module"), kFixtures);
}

TEST(PythonLayers, MhaExampleEqualsTheCppPluginWithTheSameWeights) {
  constexpr int64_t kE = 32;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto uniform = [&](std::vector<int64_t> shape) { return at::empty(shape).uniform_(-0.5, 0.5, gen); };
  const std::string weights = attnbench::testing::temp_path("python_mha.safetensors");
  attnbench::save_safetensors(weights, {{"in_proj_weight", uniform({3 * kE, kE})}, {"in_proj_bias", uniform({3 * kE})},
                                        {"out_proj.weight", uniform({kE, kE})}, {"out_proj.bias", uniform({kE})}});
  Params cpp;
  cpp.set("heads", int64_t{4});
  cpp.set("weights", weights);
  auto reference = make_layer("mha", cpp, kE);
  auto python = make_layer("python", python_params(kExamples + "mha.py", "MultiheadAttention",
                                                   "{heads: 4, weights: " + weights + "}"), kE);
  c10::InferenceMode inference;  // as the runner calls layers
  for (int64_t batch : {3, 1}) {  // batch 1 takes the C++ plugin's own CPU step
    at::Tensor x = at::empty({20, batch, kE}).normal_(0, 1, gen);
    EXPECT_LT(rel(attnbench::run_full(*python, x), attnbench::run_full(*reference, x)), 1e-6) << "batch " << batch;
    EXPECT_LT(rel(attnbench::run_steps(*python, x), attnbench::run_steps(*reference, x)), 1e-6) << "batch " << batch;
  }
}

TEST(PythonLayers, StatesDieWhenTheHostDeletesThem) {
  auto layer = make_layer("python", python_params(kFixtures, "Counting"), 8);
  auto kept = layer->init_state(1);
  auto dropped = layer->init_state(1);
  const int64_t alive = layer->state_bytes(*kept);  // Token.live
  EXPECT_GE(alive, 2);
  dropped.reset();
  EXPECT_EQ(layer->state_bytes(*kept), alive - 1);
}

TEST(PythonLayers, AnyThreadMayCall) {
  auto layer = make_layer("python", python_params(kFixtures, "Threads"), 8);
  auto state = layer->init_state(1);
  const int64_t here = layer->state_bytes(*state);
  int64_t there = 0;
  std::thread([&] { there = layer->state_bytes(*state); }).join();
  EXPECT_NE(here, 0);
  EXPECT_NE(there, 0);
  EXPECT_NE(here, there);
}

TEST(PythonLayers, MemoryErrorIsOutOfMemoryNamingMethodAndLine) {
  auto layer = make_layer("python", python_params(kFixtures, "Exhausted"), 8);
  auto state = layer->init_state(1);
  try {
    layer->step(at::randn({1, 8}), *state);
    FAIL() << "step did not throw";
  } catch (const PluginError& e) {
    EXPECT_EQ(e.status(), ATTNBENCH_OUT_OF_MEMORY);
    EXPECT_EQ(std::string(e.what()),
              "plugin 'python' step(): python: Exhausted.step (" + kFixtures + ":" +
                  std::to_string(line_of(kFixtures, "raise MemoryError") - 1) +
                  ") raised MemoryError: no room for the next token\n  File \"" + kFixtures + "\", line " +
                  std::to_string(line_of(kFixtures, "raise MemoryError")) +
                  ", in step: raise MemoryError(\"no room for the next token\")");
  }
}

TEST(PythonLayers, ReserveReplacesTheStateOrKeepsItOnNone) {
  auto layer = make_layer("python", python_params(kFixtures, "Reserving"), 8);
  auto state = layer->init_state(1);
  layer->reserve(*state, 40);
  EXPECT_EQ(layer->state_bytes(*state), 40);
  layer->reserve(*state, 0);
  EXPECT_EQ(layer->state_bytes(*state), 40);
}

TEST(PythonLayers, ValidateNamesTheBadParameter) {
  const attnbench::Plugin& plugin = attnbench::load_plugin("python", ATTNBENCH_PLUGIN_ATTENTION);
  auto failure_of = [&](const Params& given) {
    attnbench::Failure failure;
    attnbench::validate_params(plugin, attnbench::complete_params(plugin, given), 8, failure);
    return failure;
  };
  EXPECT_EQ(failure_of(python_params(kFixtures, "Echo")).status, ATTNBENCH_OK);
  struct Case {
    Params params;
    std::string parameter, message;
  };
  const Case cases[] = {
      {python_params("", "Echo"), "module", "python: give module, the .py file that defines the layer class"},
      {python_params(kFixtures, "2x"), "class",
       "python: class '2x' is not a Python class name; give the layer class defined in the module"},
      {python_params(kFixtures, "Echo", "[1, 2]"), "args",
       "python: args must be a mapping of keyword arguments such as '{heads: 4}', got '[1, 2]'"},
      {python_params(kFixtures, "Echo", "{seed: 3}"), "args",
       "python: args may not set 'seed': the plugin passes embed_dim, device, dtype and seed itself"},
      {python_params(kFixtures, "Echo", "{a b: 3}"), "args", "python: args key 'a b' is not a Python keyword argument name"},
      {python_params(kFixtures, "Echo", "{a: [1}"), "args",
       "python: args '{a: [1}' is not a YAML mapping (illegal flow end at column 7); write e.g. '{heads: 4, decay: 0.9}'"},
  };
  for (const Case& c : cases) {
    attnbench::Failure failure = failure_of(c.params);
    EXPECT_EQ(failure.status, ATTNBENCH_INVALID_ARGUMENT) << c.message;
    EXPECT_EQ(failure.parameter, c.parameter) << c.message;
    EXPECT_EQ(failure.message, c.message);
  }
}

TEST(PythonLayers, DocsCompleteExampleIsTheExampleFile) {
  const std::string docs = read_file(ATTNBENCH_SOURCE_DIR "/docs/python-layers.md");
  const size_t section = docs.find("### A complete example");
  ASSERT_NE(section, std::string::npos);
  const size_t begin = docs.find("```python\n", section) + 10;
  const std::string shown = docs.substr(begin, docs.find("```", begin) - begin);
  std::string file = read_file(kExamples + "linear_attention.py");
  file = file.substr(file.find("\"\"\"\n", 3) + 4);  // after the module docstring
  EXPECT_EQ(shown, file);
}
