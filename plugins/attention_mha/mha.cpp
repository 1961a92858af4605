// The `mha` attention plugin: torch.nn.MultiheadAttention(E, heads) with PyTorch's parameter names and
// initialisation, a causal full-sequence forward and a preallocated KV cache for streaming.
#include <attnbench/attention.h>

#include "mha_cuda.h"
#include <attnbench/support/checks.h>
#include <attnbench/support/cpu_kernels.h>
#include <attnbench/support/safetensors.h>
#include <attnbench/support/torch_compat.h>

#include <ATen/CPUGeneratorImpl.h>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>

namespace {

const attnbench_param_spec_v1 kParams[] = {
    {"heads", ATTNBENCH_PARAM_INT, "4", "number of heads H; must divide E"},
    {"embed_dim", ATTNBENCH_PARAM_INT, "0", "model width E; 0 takes the embedder's width"},
    {"causal", ATTNBENCH_PARAM_BOOL, "true",
     "mask future tokens in forward; false reproduces the reference's unmasked full-sequence timing"},
    {"weights", ATTNBENCH_PARAM_STRING, "",
     ".safetensors with in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias (a PyTorch state_dict)"},
    {"max_len", ATTNBENCH_PARAM_INT, "0", "KV cache capacity in tokens; 0 grows it by doubling"},
    {"cuda_graphs", ATTNBENCH_PARAM_BOOL, "true", "on CUDA, replay step()'s kernels as one CUDA graph (false: launch them one by one)"},
};

constexpr int64_t kInitialCapacity = 256;

struct KvCache final : attnbench::State {
  at::Tensor k, v;  // (B, capacity, E), heads side by side in E; rows [0, length) are filled
  int64_t length = 0;
#ifdef ATTNBENCH_WITH_CUDA
  at::Tensor position;  // `length` on the device, which the step's kernels read and advance
  attnbench::mha::CudaDecodeScratch cuda;
#endif
};

class MultiheadAttention final : public attnbench::Attention {
 public:
  static void validate(const attnbench::Params& p, int64_t embed_dim) {
    const int64_t e = p.get_int("embed_dim") > 0 ? p.get_int("embed_dim") : embed_dim;
    if (p.get_int("embed_dim") < 0 || (embed_dim > 0 && e != embed_dim)) {
      throw attnbench::InvalidParameter("embed_dim", "mha: embed_dim " + std::to_string(p.get_int("embed_dim")) +
                                                         " differs from the embedder's width " + std::to_string(embed_dim) +
                                                         "; leave embed_dim at 0 to follow the embedder");
    }
    attnbench::checks::divides("mha", "heads", p.get_int("heads"), e);
    // The cache is allocated whole at max_len: beyond twice the longest sequence a study may have, a typo.
    attnbench::checks::in_range("mha", "max_len", static_cast<double>(p.get_int("max_len")), 0, 1 << 23);
    attnbench::checks::file_or_empty("mha", "weights", p.get_string("weights"));
  }

  explicit MultiheadAttention(const attnbench::CreateArgs& args)
      : device_(args.device),
        dtype_(args.dtype),
        embed_dim_(args.params.get_int("embed_dim") > 0 ? args.params.get_int("embed_dim") : args.embed_dim),
        heads_(args.params.get_int("heads")),
        causal_(args.params.get_bool("causal")),
        max_len_(args.params.get_int("max_len")),
        cuda_graphs_(args.params.get_bool("cuda_graphs")),
        threads_(args.threads),
        weights_path_(args.params.get_string("weights")) {
    validate(args.params, args.embed_dim);
    head_dim_ = embed_dim_ / heads_;
    const int64_t e = embed_dim_;
    if (weights_path_.empty()) {
      // As torch.nn.MultiheadAttention._reset_parameters: xavier_uniform_ in_proj, zero biases, and the
      // Linear default (kaiming_uniform_ with a = sqrt(5), i.e. U(-1/sqrt(E), 1/sqrt(E))) for out_proj.
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(args.seed);
      double in_bound = std::sqrt(6.0 / static_cast<double>(e + 3 * e));
      double out_bound = 1.0 / std::sqrt(static_cast<double>(e));
      in_proj_weight_ = at::empty({3 * e, e}).uniform_(-in_bound, in_bound, gen);
      in_proj_bias_ = at::zeros({3 * e});
      out_proj_weight_ = at::empty({e, e}).uniform_(-out_bound, out_bound, gen);
      out_proj_bias_ = at::zeros({e});
    } else {
      attnbench::TensorFile file = attnbench::load_safetensors(weights_path_);
      in_proj_weight_ = attnbench::require_tensor(file, weights_path_, "in_proj_weight", {3 * e, e});
      in_proj_bias_ = attnbench::require_tensor(file, weights_path_, "in_proj_bias", {3 * e});
      out_proj_weight_ = attnbench::require_tensor(file, weights_path_, "out_proj.weight", {e, e});
      out_proj_bias_ = attnbench::require_tensor(file, weights_path_, "out_proj.bias", {e});
    }
    for (at::Tensor* t : {&in_proj_weight_, &in_proj_bias_, &out_proj_weight_, &out_proj_bias_}) {
      *t = t->to(device_, dtype_).contiguous();
    }
    for (int64_t i = 0; i < 3; ++i) {
      weight_parts_[i] = in_proj_weight_.narrow(0, i * e, e);
      bias_parts_[i] = in_proj_bias_.narrow(0, i * e, e);
    }
#ifdef ATTNBENCH_WITH_CUDA
    cuda_weights_ = {in_proj_weight_, in_proj_bias_, out_proj_weight_, out_proj_bias_, heads_};
#endif
  }

  attnbench::AttentionInfo info() const override {
    attnbench::AttentionInfo info;
    info.description = "MultiheadAttention E=" + std::to_string(embed_dim_) + " H=" + std::to_string(heads_) +
                       (causal_ ? " causal" : " unmasked");
    info.embed_dim = embed_dim_;
    info.causal = causal_;
    info.devices = {"cpu", "cuda"};
    info.details.set("heads", heads_);
    info.details.set("head_dim", head_dim_);
    info.details.set("cuda_graphs", cuda_graphs_);
    info.details.set("weights", weights_path_.empty() ? std::string("random (seeded)") : weights_path_);
    return info;
  }

  std::unique_ptr<attnbench::State> init_state(int64_t batch) override {
    auto cache = std::make_unique<KvCache>();
    // Without max_len the cache is allocated on first use (or by reserve()), so it holds what it needs.
    const int64_t capacity = max_len_ > 0 ? max_len_ : 0;
    auto opts = at::TensorOptions().device(device_).dtype(dtype_);
    cache->k = at::empty({batch, capacity, embed_dim_}, opts);
    cache->v = at::empty({batch, capacity, embed_dim_}, opts);
    return cache;
  }

  at::Tensor forward(const at::Tensor& x, attnbench::State& state) override {
    TORCH_CHECK(x.dim() == 3 && x.size(2) == embed_dim_, "mha: forward expects (L, B, ", embed_dim_, "), got ", x.sizes());
    auto& cache = attnbench::state_cast<KvCache>(state);
    TORCH_CHECK(x.size(1) == cache.k.size(0), "mha: input batch ", x.size(1), " differs from the state's ", cache.k.size(0));
    const int64_t length = x.size(0), batch = x.size(1), start = cache.length;
    at::Tensor qkv = affine(x.reshape({length * batch, embed_dim_}), in_proj_weight_, in_proj_bias_)
                         .view({length, batch, 3, embed_dim_});
    ensure_capacity(cache, start + length);
    cache.k.narrow(1, start, length).copy_(qkv.select(2, 1).transpose(0, 1));
    cache.v.narrow(1, start, length).copy_(qkv.select(2, 2).transpose(0, 1));
    cache.length = start + length;
#ifdef ATTNBENCH_WITH_CUDA
    if (cache.position.defined()) cache.position.fill_(cache.length);
#endif
    at::Tensor q = qkv.select(2, 0).reshape({length, batch, heads_, head_dim_}).permute({1, 2, 0, 3});
    at::Tensor attended = attnbench::compat::attention(q, heads_view(cache.k, cache.length),
                                                       heads_view(cache.v, cache.length), start, causal_);
    at::Tensor merged = attended.permute({2, 0, 1, 3}).reshape({length * batch, embed_dim_});
    return affine(merged, out_proj_weight_, out_proj_bias_).view({length, batch, embed_dim_});
  }

  at::Tensor step(const at::Tensor& x_t, attnbench::State& state) override {
    TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == embed_dim_, "mha: step expects (B, ", embed_dim_, "), got ", x_t.sizes());
    if (x_t.size(0) == 1 && x_t.is_cpu() && x_t.scalar_type() == at::kFloat) return step_one_cpu(x_t, state);
#ifdef ATTNBENCH_WITH_CUDA
    if (x_t.is_cuda()) {
      auto& cache = attnbench::state_cast<KvCache>(state);
      TORCH_CHECK(x_t.size(0) == cache.k.size(0), "mha: input batch ", x_t.size(0), " differs from the state's ", cache.k.size(0));
      if (!cache.position.defined()) {  // made on first use, so forward-only work (prefix recompute) skips it
        cache.position = at::full({1}, cache.length, x_t.options().dtype(at::kLong));
      }
      ensure_capacity(cache, cache.length + 1);
      at::Tensor out = attnbench::mha::cuda_decode_step(x_t.contiguous(), cache.k, cache.v, cache.position,
                                                        cache.length + 1, cuda_weights_, cache.cuda, cuda_graphs_);
      cache.length += 1;  // host-side twin of the position the kernels advanced
      return out;
    }
#endif
    return forward(x_t.unsqueeze(0), state).squeeze(0);
  }

  // The cache at exactly the tokens announced, so a sequence of known length never copies it to grow
  // and holds no more than it needs (max_len, when set, fixes the capacity instead).
  void reserve(attnbench::State& state, int64_t tokens) override {
    auto& cache = attnbench::state_cast<KvCache>(state);
    const bool empty = cache.length == 0 && tokens > 0;
    if (max_len_ == 0 && (tokens > cache.k.size(1) || (empty && tokens != cache.k.size(1)))) resize(cache, tokens);
  }

  // A step reads every weight, the token, and the cache's keys and values up to and including its own;
  // it writes its key, its value and its output.
  attnbench::StepTraffic step_traffic(const attnbench::State& state) const override {
    const auto& cache = attnbench::state_cast<KvCache>(state);
    const int64_t element = static_cast<int64_t>(c10::elementSize(dtype_)), batch = cache.k.size(0);
    int64_t weights = 0;
    for (const at::Tensor* t : {&in_proj_weight_, &in_proj_bias_, &out_proj_weight_, &out_proj_bias_}) weights += t->nbytes();
    return {weights + batch * (1 + 2 * (cache.length + 1)) * embed_dim_ * element, batch * 3 * embed_dim_ * element};
  }

  int64_t state_bytes(const attnbench::State& state) const override {
    const auto& cache = attnbench::state_cast<KvCache>(state);
    return 2 * cache.k.size(0) * cache.length * embed_dim_ * static_cast<int64_t>(cache.k.element_size());
  }

 private:
  // x W^T + b for x (M, E). A single row goes through gemv: BLAS's gemm with M = 1 is several times
  // slower (measured 452 us vs 95 us for 2304x768 on one core), and one row is what streaming sends.
  static at::Tensor affine(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    if (x.size(0) == 1) return at::addmv(b, w, x[0]).unsqueeze(0);
    return at::addmm(b, x, w.t());
  }

  // (B, T, E) cache rows as the (B, H, T, Dh) view attention wants; no copy.
  at::Tensor heads_view(const at::Tensor& cache, int64_t length) const {
    return cache.narrow(1, 0, length).view({cache.size(0), length, heads_, head_dim_}).transpose(1, 2);
  }

  // One token of one sequence on the CPU in fp32, in Eigen (support/cpu_kernels.h): the projections
  // write straight into the cache and preallocated buffers, and each head is a GEMV, a softmax and a
  // GEMV. At E=768 a token reads 9.4 MB of weights (~125 us at this machine's cache bandwidth); torch's
  // operators added ~45 us on Debian's build and far more on a wheel's, which this path does not.
  at::Tensor step_one_cpu(const at::Tensor& x_t, attnbench::State& state) {
    using RowMajor = attnbench::cpu::RowMajorMatrix;
    using Strided = Eigen::Stride<Eigen::Dynamic, 1>;
    auto& cache = attnbench::state_cast<KvCache>(state);
    const int64_t e = embed_dim_, t = cache.length;
    ensure_capacity(cache, t + 1);
    const at::Tensor x = x_t[0].contiguous();
    if (!query_.defined()) {
      query_ = at::empty({e});
      attended_ = at::empty({e});
    }
    const float* in = x.data_ptr<float>();
    attnbench::cpu::gemv(query_.data_ptr<float>(), weight_parts_[0], in, bias_parts_[0], threads_);
    attnbench::cpu::gemv(cache.k.data_ptr<float>() + t * e, weight_parts_[1], in, bias_parts_[1], threads_);
    attnbench::cpu::gemv(cache.v.data_ptr<float>() + t * e, weight_parts_[2], in, bias_parts_[2], threads_);
    cache.length = t + 1;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
    scores_.resize(std::max(threads_, 1));
    attnbench::cpu::parallel_parts(heads_, threads_, [&](int part, int64_t first, int64_t last) {
      Eigen::VectorXf& scores = scores_[part];
      scores.resize(cache.length);
      for (int64_t h = first; h < last; ++h) {
        // Head h of every cached token: rows of Dh floats, E apart.
        Eigen::Map<const RowMajor, 0, Strided> k(cache.k.data_ptr<float>() + h * head_dim_, cache.length, head_dim_, Strided(e, 1));
        Eigen::Map<const RowMajor, 0, Strided> v(cache.v.data_ptr<float>() + h * head_dim_, cache.length, head_dim_, Strided(e, 1));
        Eigen::Map<const Eigen::VectorXf> q(query_.data_ptr<float>() + h * head_dim_, head_dim_);
        scores.noalias() = k * q;
        scores *= scale;
        scores = (scores.array() - scores.maxCoeff()).exp();
        scores /= scores.sum();
        Eigen::Map<Eigen::VectorXf>(attended_.data_ptr<float>() + h * head_dim_, head_dim_).noalias() = v.transpose() * scores;
      }
    });
    at::Tensor out = at::empty({1, e});
    attnbench::cpu::gemv(out.data_ptr<float>(), out_proj_weight_, attended_.data_ptr<float>(), out_proj_bias_, threads_);
    return out;
  }

  // Grows the cache by doubling (amortised O(1) per token) unless max_len fixes its capacity.
  void ensure_capacity(KvCache& cache, int64_t needed) const {
    const int64_t capacity = cache.k.size(1);
    if (needed <= capacity) return;
    if (max_len_ > 0) {
      throw std::length_error("mha: KV cache is full at max_len=" + std::to_string(max_len_) +
                              " tokens; raise attention.params.max_len or set it to 0 to grow");
    }
    resize(cache, std::max({needed, 2 * capacity, kInitialCapacity}));
  }

  void resize(KvCache& cache, int64_t capacity) const {
    for (at::Tensor* t : {&cache.k, &cache.v}) {
      at::Tensor bigger = at::empty({t->size(0), capacity, embed_dim_}, t->options());
      bigger.narrow(1, 0, cache.length).copy_(t->narrow(1, 0, cache.length));
      *t = bigger;
    }
  }

  c10::Device device_;
  c10::ScalarType dtype_;
  int64_t embed_dim_, heads_, head_dim_ = 0;
  bool causal_;
  int64_t max_len_;
  bool cuda_graphs_;
  int threads_;  // run.threads: the CPU step splits its rows and heads over them
  std::string weights_path_;
  at::Tensor in_proj_weight_, in_proj_bias_, out_proj_weight_, out_proj_bias_;
  at::Tensor weight_parts_[3], bias_parts_[3];  // q, k, v rows of in_proj, as views
  at::Tensor query_, attended_;                 // step_one_cpu's buffers, (E) each
  std::vector<Eigen::VectorXf> scores_;  // one per thread of the CPU step
#ifdef ATTNBENCH_WITH_CUDA
  attnbench::mha::CudaWeights cuda_weights_;
#endif
};

}  // namespace

ATTNBENCH_ATTENTION_PLUGIN(MultiheadAttention, "mha", "1.0.0", kParams)
