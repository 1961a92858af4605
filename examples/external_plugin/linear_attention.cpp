// An out-of-tree attention plugin: causal linear attention (Katharopoulos et al., 2020). Its state is
// a running sum of outer products per head, so like a reservoir it does not grow with the sequence:
//
//   phi(x) = elu(x) + 1,  S_t = S_{t-1} + phi(k_t) v_t^T,  z_t = z_{t-1} + phi(k_t)
//   y_t    = W_o [ phi(q_t)^T S_t / (phi(q_t)^T z_t) ]  per head
//
// It uses the installed SDK (attnbench/attention.h), ATen, and attnbench's plugin-support library for
// its parameter checks and for reading weights from a .safetensors file (a PyTorch state_dict).
#include <attnbench/attention.h>
#include <attnbench/support/checks.h>
#include <attnbench/support/safetensors.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace {

const attnbench_param_spec_v1 kParams[] = {
    {"heads", ATTNBENCH_PARAM_INT, "4", "number of heads; must divide E"},
    {"weights", ATTNBENCH_PARAM_STRING, "", ".safetensors with qkv.weight (3E, E) and out.weight (E, E); empty: random"},
};

struct LinearState final : attnbench::State {
  at::Tensor s;  // (B, H, Dh, Dh) float32: sum of phi(k) v^T
  at::Tensor z;  // (B, H, Dh) float32: sum of phi(k)
};

class LinearAttention final : public attnbench::Attention {
 public:
  // Called when a study loads (so --dry-run finds a bad value) and by the constructor.
  static void validate(const attnbench::Params& params, int64_t embed_dim) {
    attnbench::checks::divides("linear", "heads", params.get_int("heads"), embed_dim);
    attnbench::checks::file_or_empty("linear", "weights", params.get_string("weights"));
  }

  explicit LinearAttention(const attnbench::CreateArgs& args)
      : device_(args.device), dtype_(args.dtype), e_(args.embed_dim), heads_(args.params.get_int("heads")) {
    validate(args.params, e_);
    dh_ = e_ / heads_;
    const std::string& path = args.params.get_string("weights");
    if (path.empty()) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(args.seed);
      const double bound = 1.0 / std::sqrt(static_cast<double>(e_));
      qkv_ = at::empty({3 * e_, e_}).uniform_(-bound, bound, gen);
      out_ = at::empty({e_, e_}).uniform_(-bound, bound, gen);
    } else {
      attnbench::TensorFile file = attnbench::load_safetensors(path);
      qkv_ = attnbench::require_tensor(file, path, "qkv.weight", {3 * e_, e_});
      out_ = attnbench::require_tensor(file, path, "out.weight", {e_, e_});
    }
    qkv_ = qkv_.to(device_, dtype_);
    out_ = out_.to(device_, dtype_);
  }

  attnbench::AttentionInfo info() const override {
    attnbench::AttentionInfo info;
    info.description = "causal linear attention, H=" + std::to_string(heads_);
    info.embed_dim = e_;
    info.devices = {"cpu", "cuda"};
    return info;
  }

  std::unique_ptr<attnbench::State> init_state(int64_t batch) override {
    auto st = std::make_unique<LinearState>();
    auto f32 = at::TensorOptions().device(device_).dtype(at::kFloat);
    st->s = at::zeros({batch, heads_, dh_, dh_}, f32);
    st->z = at::zeros({batch, heads_, dh_}, f32);
    return st;
  }

  at::Tensor forward(const at::Tensor& x, attnbench::State& state) override {
    auto& st = attnbench::state_cast<LinearState>(state);
    const int64_t length = x.size(0), batch = x.size(1);
    // (L, B, 3, H, Dh) -> q, k, v as (B, H, L, Dh), in float32 for the running sums.
    at::Tensor qkv = at::linear(x, qkv_).view({length, batch, 3, heads_, dh_}).permute({2, 1, 3, 0, 4}).to(at::kFloat);
    at::Tensor q = at::elu(qkv[0]) + 1, k = at::elu(qkv[1]) + 1, v = qkv[2];
    // Prefix sums over time of phi(k) v^T and phi(k), continuing from the state.
    at::Tensor kv = at::cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), 2) + st.s.unsqueeze(2);  // (B, H, L, Dh, Dh)
    at::Tensor ksum = at::cumsum(k, 2) + st.z.unsqueeze(2);                                // (B, H, L, Dh)
    at::Tensor num = at::matmul(q.unsqueeze(-2), kv).squeeze(-2);                          // (B, H, L, Dh)
    at::Tensor den = (q * ksum).sum(-1, /*keepdim=*/true);
    st.s = kv.select(2, length - 1).clone();
    st.z = ksum.select(2, length - 1).clone();
    at::Tensor heads = (num / den).permute({2, 0, 1, 3}).reshape({length, batch, e_}).to(dtype_);
    return at::linear(heads, out_);
  }

  at::Tensor step(const at::Tensor& x_t, attnbench::State& state) override {
    return forward(x_t.unsqueeze(0), state).squeeze(0);
  }

  int64_t state_bytes(const attnbench::State& state) const override {
    const auto& st = attnbench::state_cast<LinearState>(state);
    return (st.s.numel() + st.z.numel()) * 4;
  }

 private:
  c10::Device device_;
  c10::ScalarType dtype_;
  int64_t e_, heads_, dh_ = 0;
  at::Tensor qkv_, out_;
};

}  // namespace

ATTNBENCH_ATTENTION_PLUGIN(LinearAttention, "linear", "0.1.0", kParams)
