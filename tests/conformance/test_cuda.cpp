// Asserts the CUDA paths of the built-in plugins (skipped where there is no CUDA device): step equals
// forward on CUDA with and without CUDA graphs, CUDA outputs equal the CPU's for the same weights, AMP
// (fp16) stays within 1e-3 relative of fp32, batches of 4 to 17 (the reservoir's fused step, MHA's
// batched projections) step as forward and as each sequence alone, attention steps as forward for
// every shape of its slices and for wide heads, the reservoir's other kernels (input projection, a W
// too large for one block's shared memory) match the CPU too, and so does its split step where it
// scores from the folded keys (whose bytes its declared traffic then counts).
#include "conformance/helpers.h"
#include "measure/device.h"

using attnbench::Params;
using attnbench::testing::rel;

namespace {

constexpr int64_t kE = 64;

std::unique_ptr<attnbench::AttentionLayer> layer_on(const std::string& plugin_name, Params given, c10::Device device,
                                                    c10::ScalarType dtype = at::kFloat, int64_t embed_dim = kE) {
  const attnbench::Plugin& plugin = attnbench::load_plugin(plugin_name, ATTNBENCH_PLUGIN_ATTENTION);
  attnbench::CreateArgs args;
  args.params = attnbench::complete_params(plugin, given);
  args.embed_dim = embed_dim;
  args.device = device;
  args.dtype = dtype;
  return std::make_unique<attnbench::AttentionLayer>(plugin, args);
}

Params params_for(const std::string& plugin, bool graphs) {
  Params p;
  p.set("heads", int64_t{4});
  p.set("cuda_graphs", graphs);
  if (plugin == "reservoir") p.set("res_size", int64_t{128});
  return p;
}

class Cuda : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!attnbench::cuda_available()) GTEST_SKIP() << attnbench::cuda_unavailable_reason();
  }
};

}  // namespace

TEST_P(Cuda, StepEqualsForwardWithAndWithoutGraphs) {
  const c10::Device cuda(c10::kCUDA, 0);
  for (bool graphs : {false, true}) {
    auto layer = layer_on(GetParam(), params_for(GetParam(), graphs), cuda);
    // 300 tokens: past MHA's initial cache capacity, so a graphed step is recaptured after regrowth.
    at::Tensor x = at::randn({300, 2, kE}).to(cuda);
    at::Tensor full = attnbench::run_full(*layer, x);
    at::Tensor steps = attnbench::run_steps(*layer, x);
    EXPECT_LT(rel(steps, full), 1e-6) << "graphs " << graphs;
    EXPECT_LT(rel(attnbench::rollout_steps(*layer, x, 5, 20), attnbench::rollout_prefix(*layer, x, 5, 20)), 1e-5);
  }
}

TEST_P(Cuda, MatchesTheCpuForTheSameWeights) {
  at::Tensor x = at::randn({40, 2, kE});
  auto cpu = layer_on(GetParam(), params_for(GetParam(), false), c10::kCPU);
  auto gpu = layer_on(GetParam(), params_for(GetParam(), true), c10::Device(c10::kCUDA, 0));
  EXPECT_LT(rel(attnbench::run_full(*gpu, x.cuda()), attnbench::run_full(*cpu, x)), 1e-5);
  EXPECT_LT(rel(attnbench::run_steps(*gpu, x.cuda()), attnbench::run_steps(*cpu, x)), 1e-5);
}

TEST_P(Cuda, HalfPrecisionStaysCloseToFloat) {
  const c10::Device cuda(c10::kCUDA, 0);
  at::Tensor x = at::randn({64, 1, kE}).to(cuda);
  auto fp32 = layer_on(GetParam(), params_for(GetParam(), true), cuda);
  auto fp16 = layer_on(GetParam(), params_for(GetParam(), true), cuda, at::kHalf);
  at::Tensor half_full = attnbench::run_full(*fp16, x.to(at::kHalf));
  EXPECT_EQ(half_full.scalar_type(), at::kHalf);
  EXPECT_LT(rel(attnbench::run_steps(*fp16, x.to(at::kHalf)), half_full), 1e-3);
  EXPECT_LT(rel(half_full, attnbench::run_full(*fp32, x)), 1e-2);
}

// 4 and 16: the bounds of the reservoir's fused step and MHA's batched projections; 17: the other
// kernels again. Sequence 0 alone takes the batch-1 kernels.
TEST_P(Cuda, BatchesStepAsForwardAndAsEachSequenceAlone) {
  const c10::Device cuda(c10::kCUDA, 0);
  for (int64_t batch : {4, 16, 17}) {
    for (c10::ScalarType dtype : {at::kFloat, at::kHalf}) {
      auto layer = layer_on(GetParam(), params_for(GetParam(), true), cuda, dtype);
      at::Tensor x = at::randn({60, batch, kE}).to(cuda, dtype);
      at::Tensor steps = attnbench::run_steps(*layer, x);
      const double bound = dtype == at::kFloat ? 1e-6 : 1e-3;
      EXPECT_LT(rel(steps, attnbench::run_full(*layer, x)), bound) << "batch " << batch << " " << dtype;
      EXPECT_LT(rel(steps.narrow(1, 0, 1), attnbench::run_steps(*layer, x.narrow(1, 0, 1))), bound)
          << "batch " << batch << " " << dtype;
    }
  }
}

// The slice kernels' shapes (cuda_kernels.cuh): a head's merge of more slices than a thread loads ahead
// (1100 cached tokens, or 2048 reservoir rows, one head), for a head of 64 columns and one of 512 (wider
// than a block: two columns a thread, and too wide for rows scored in groups); slices of more rows than
// a thread loads ahead (8 heads, which share one wave of blocks); slices of more rows than a group of a
// warp for each warp (17000 cached tokens: 67 a slice); and sequences x heads beyond one wave of the
// build for few blocks (40 x 16, for any GPU of under 320 multiprocessors), which takes the build for
// many blocks. MHA's slices follow the filled part of its cache, so also a short stream in a cache
// fixed at 20000 tokens (max_len).
TEST_P(Cuda, SliceShapesStepAsForward) {
  const c10::Device cuda(c10::kCUDA, 0);
  const bool mha = GetParam() == "mha";
  struct Shape {
    int64_t e, heads, batch, tokens, max_len = 0;
  };
  std::vector<Shape> shapes = {{64, 1, 1, 1100}, {512, 1, 1, 1100}, {256, 8, 1, 1100}, {64, 16, 40, 1100}};
  if (mha) shapes.insert(shapes.end(), {{64, 1, 1, 17000}, {64, 4, 2, 300, 20000}});
  for (const Shape& s : shapes) {
    Params p = params_for(GetParam(), true);
    p.set("heads", s.heads);
    if (s.max_len > 0) p.set("max_len", s.max_len);
    if (!mha) p.set("res_size", int64_t{2048});
    auto layer = layer_on(GetParam(), p, cuda, at::kFloat, s.e);
    at::Tensor x = at::randn({mha ? s.tokens : 40, s.batch, s.e}).to(cuda);
    EXPECT_LT(rel(attnbench::run_steps(*layer, x), attnbench::run_full(*layer, x)), 1e-6)
        << "embed_dim " << s.e << ", heads " << s.heads << ", batch " << s.batch << ", tokens " << x.size(0)
        << ", max_len " << s.max_len;
  }
}

INSTANTIATE_TEST_SUITE_P(BuiltIn, Cuda, ::testing::Values("mha", "reservoir"));

TEST(CudaReservoir, InputProjectionAndLargeReservoirMatchTheCpu) {
  if (!attnbench::cuda_available()) GTEST_SKIP() << attnbench::cuda_unavailable_reason();
  const c10::Device cuda(c10::kCUDA, 0);
  Params projected = params_for("reservoir", true);
  projected.set("in_size", int64_t{32});
  // 2048 nodes at density 0.01: ~42k nonzeros, past what one block stages, so the cooperative kernel runs.
  Params large = params_for("reservoir", true);
  large.set("res_size", int64_t{2048});
  for (const Params& p : {projected, large}) {
    at::Tensor x = at::randn({40, 2, kE});
    auto cpu = layer_on("reservoir", p, c10::kCPU);
    auto gpu = layer_on("reservoir", p, cuda);
    at::Tensor full = attnbench::run_full(*gpu, x.cuda());
    EXPECT_LT(rel(full, attnbench::run_full(*cpu, x)), 1e-5);
    EXPECT_LT(rel(attnbench::run_steps(*gpu, x.cuda()), full), 1e-6);
  }
}

// At most E / (H - 1) reservoir rows (48 at E = 64, 2 heads): the split step (batch 1 to 3) scores the
// token against the folded keys before it waits for the recurrence.
TEST(CudaReservoir, SplitStepWithFoldedKeysStepsAsForward) {
  if (!attnbench::cuda_available()) GTEST_SKIP() << attnbench::cuda_unavailable_reason();
  const c10::Device cuda(c10::kCUDA, 0);
  const int64_t heads = 2, n = 48;
  Params p = params_for("reservoir", true);
  p.set("heads", heads);
  p.set("res_size", n);
  p.set("density", 0.2);  // at 0.01, 48 rows hold a W of spectral radius 0
  for (int64_t batch : {1, 3}) {
    at::Tensor x = at::randn({40, batch, kE});
    auto cpu = layer_on("reservoir", p, c10::kCPU);
    auto gpu = layer_on("reservoir", p, cuda);
    const at::Tensor steps = attnbench::run_steps(*gpu, x.cuda());
    EXPECT_LT(rel(steps, attnbench::run_full(*gpu, x.cuda())), 1e-6) << "batch " << batch;
    EXPECT_LT(rel(steps, attnbench::run_steps(*cpu, x)), 1e-5) << "batch " << batch;
    auto half = layer_on("reservoir", p, cuda, at::kHalf);
    const at::Tensor x_half = x.to(cuda, at::kHalf);
    EXPECT_LT(rel(attnbench::run_steps(*half, x_half), attnbench::run_full(*half, x_half)), 1e-3) << "batch " << batch;
    // Win and its bias, Ev, the folded keys (H N E floats, not Wq's E E and Ek's N E), W in CSR; the state
    // and the token.
    const int64_t nnz = std::get<int64_t>(gpu->info().details.items().at("nnz"));
    const int64_t weights = (n * kE + n + kE * n + heads * n * kE) * 4 + nnz * 12 + (n + 1) * 8;
    EXPECT_EQ(gpu->step_traffic(*gpu->init_state(batch)).read_bytes, weights + batch * n * 4 + batch * kE * 4)
        << "batch " << batch;
  }
}
