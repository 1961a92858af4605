// Asserts that the `mha` plugin is torch.nn.MultiheadAttention: its causal forward equals libtorch's
// module with a causal mask for the same weights (loaded from a safetensors state_dict), step and prefix
// recompute equal forward, closed loops agree, batch rows are independent, the cache grows linearly and
// honours max_len, and bad weights files or parameters are one clear error each.
#include "conformance/helpers.h"
#include <attnbench/support/safetensors.h>

#include <torch/torch.h>

using attnbench::Params;
using attnbench::testing::create_error;
using attnbench::testing::make_layer;
using attnbench::testing::rel;

namespace {

constexpr int64_t kE = 32, kHeads = 4;

struct Reference {
  torch::nn::MultiheadAttention module{nullptr};
  std::string weights;
};

Reference reference_module() {
  torch::manual_seed(3);
  Reference r;
  r.module = torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(kE, kHeads));
  r.module->eval();
  torch::NoGradGuard no_grad;
  r.module->in_proj_bias.uniform_(-0.5, 0.5);  // PyTorch initialises biases to zero; make them count
  r.module->out_proj->bias.uniform_(-0.5, 0.5);
  r.weights = attnbench::testing::temp_path("mha.safetensors");
  attnbench::save_safetensors(r.weights, {{"in_proj_weight", r.module->in_proj_weight},
                                          {"in_proj_bias", r.module->in_proj_bias},
                                          {"out_proj.weight", r.module->out_proj->weight},
                                          {"out_proj.bias", r.module->out_proj->bias}});
  return r;
}

Params with_weights(const std::string& path, bool causal = true) {
  Params p;
  p.set("heads", kHeads);
  p.set("weights", path);
  p.set("causal", causal);
  return p;
}

}  // namespace

TEST(Mha, ForwardEqualsTorchMultiheadAttentionWithCausalMask) {
  Reference ref = reference_module();
  auto layer = make_layer("mha", with_weights(ref.weights), kE);
  torch::NoGradGuard no_grad;
  at::Tensor x = at::randn({20, 3, kE});
  at::Tensor mask = at::full({20, 20}, -INFINITY).triu(1);
  at::Tensor expected = std::get<0>(ref.module->forward(x, x, x, {}, /*need_weights=*/false, mask));
  EXPECT_LT(rel(attnbench::run_full(*layer, x), expected), 1e-6);

  auto unmasked = make_layer("mha", with_weights(ref.weights, /*causal=*/false), kE);
  at::Tensor expected_unmasked = std::get<0>(ref.module->forward(x, x, x, {}, false));
  EXPECT_LT(rel(attnbench::run_full(*unmasked, x), expected_unmasked), 1e-6);
  EXPECT_FALSE(unmasked->info().causal);
}

TEST(Mha, StreamingContractHolds) {
  Reference ref = reference_module();
  auto layer = make_layer("mha", with_weights(ref.weights), kE);
  attnbench::testing::expect_streaming_contract(*layer, at::randn({24, 3, kE}), 1e-6, 1e-5);
  // Batch 1 takes the CPU fast path in step; hold it to the same contract.
  attnbench::testing::expect_streaming_contract(*layer, at::randn({24, 1, kE}), 1e-6, 1e-5);
}

TEST(Mha, CpuStepsOnTwoThreadsEqualOneThread) {
  Params p;
  p.set("heads", kHeads);
  attnbench::testing::expect_threads_leave_steps_unchanged("mha", p);
}

TEST(Mha, CacheGrowsLinearlyAndHonoursMaxLen) {
  Params p;
  p.set("heads", kHeads);
  auto layer = make_layer("mha", p, kE);
  auto state = layer->init_state(2);
  EXPECT_EQ(layer->state_bytes(*state), 0);
  for (int64_t t = 1; t <= 300; ++t) {  // past the initial capacity, so the cache regrows
    layer->step(at::randn({2, kE}), *state);
    if (t % 100 == 0) EXPECT_EQ(layer->state_bytes(*state), 2 * 2 * t * kE * 4);
  }
  p.set("max_len", int64_t{4});
  auto fixed = make_layer("mha", p, kE);
  auto small = fixed->init_state(1);
  fixed->forward(at::randn({4, 1, kE}), *small);
  try {
    fixed->step(at::randn({1, kE}), *small);
    FAIL();
  } catch (const attnbench::PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache is full at max_len=4 tokens; raise attention.params.max_len"),
              std::string::npos) << e.what();
  }
}

TEST(Mha, SeededInitialisationIsReproducible) {
  Params p;
  p.set("heads", kHeads);
  at::Tensor x = at::randn({6, 1, kE});
  at::Tensor a = attnbench::run_full(*make_layer("mha", p, kE, 1), x);
  EXPECT_TRUE(at::equal(a, attnbench::run_full(*make_layer("mha", p, kE, 1), x)));
  EXPECT_FALSE(at::equal(a, attnbench::run_full(*make_layer("mha", p, kE, 2), x)));
}

TEST(Mha, BadWeightsAndParametersAreClearErrors) {
  std::string path = attnbench::testing::temp_path("mha_bad.safetensors");
  attnbench::save_safetensors(path, {{"in_proj_weight", at::zeros({3 * kE, kE})}, {"in_proj_bias", at::zeros({3 * kE})},
                                     {"out_proj.weight", at::zeros({kE, kE + 1})}, {"out_proj.bias", at::zeros({kE})}});
  EXPECT_NE(create_error("mha", with_weights(path), kE).find("tensor 'out_proj.weight' has shape [32, 33], expected [32, 32]"),
            std::string::npos);
  attnbench::save_safetensors(path, {{"in_proj_weight", at::zeros({3 * kE, kE})}});
  EXPECT_NE(create_error("mha", with_weights(path), kE).find("missing tensor 'in_proj_bias'; the file has: in_proj_weight"),
            std::string::npos);
  EXPECT_NE(create_error("mha", with_weights("/no/file.safetensors"), kE).find("mha: weights '/no/file.safetensors' does not exist"), std::string::npos);
  Params p;
  p.set("heads", int64_t{5});
  EXPECT_NE(create_error("mha", p, kE).find("heads 5 must be >= 1 and divide embed_dim 32"), std::string::npos);
  Params width;
  width.set("embed_dim", int64_t{16});
  EXPECT_NE(create_error("mha", width, kE).find("embed_dim 16 differs from the embedder's width 32"), std::string::npos);
}
