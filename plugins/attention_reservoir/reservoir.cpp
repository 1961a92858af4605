// The `reservoir` attention plugin: ReservoirAttention. A sparse echo state network advances once per
// token; attention reads its state with static keys, so the only sequential work is W x + tanh + leak.
//
// Per token t, with state x (N) and input u_t (E):
//   x_t = (1 - a) x_{t-1} + a tanh(Win [1; P u_t] + W x_{t-1})      P: optional input projection to in_size
//   q = Wq u_t, split into H heads of Dh = E / H
//   p[h, r] = softmax_r(q_h . Ek[r, h] / sqrt(Dh));  out_h = sum_r p[h, r] x_t[r] Ev[r, h]
#include <attnbench/attention.h>

#include "reservoir_cuda.h"
#include <attnbench/support/checks.h>
#include <attnbench/support/cpu_kernels.h>
#include <attnbench/support/safetensors.h>
#include "topology.h"

#include <ATen/CPUGeneratorImpl.h>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

namespace {

using attnbench::reservoir::SparseMatrix;

const attnbench_param_spec_v1 kParams[] = {
    {"heads", ATTNBENCH_PARAM_INT, "4", "number of heads H; must divide E"},
    {"res_size", ATTNBENCH_PARAM_INT, "256", "reservoir size N (nodes)"},
    {"in_size", ATTNBENCH_PARAM_INT, "0", "reservoir input width; 0 or E feeds u directly, else a projection"},
    {"density", ATTNBENCH_PARAM_FLOAT, "0.01", "target fraction of nonzeros in W, in (0, 1]"},
    {"topology", ATTNBENCH_PARAM_STRING, "uniform", "uniform, geometric or smallworld"},
    {"rho", ATTNBENCH_PARAM_FLOAT, "1.25", "spectral radius W is scaled to (0 keeps W unscaled)"},
    {"leak", ATTNBENCH_PARAM_FLOAT, "0.3", "leak rate a, in (0, 1]"},
    {"seed", ATTNBENCH_PARAM_INT, "-1", "seed of the graph and weights; -1 takes the cell's run.seed"},
    {"radius", ATTNBENCH_PARAM_FLOAT, "0", "geometric only: link radius; 0 derives it from density"},
    {"local_radius", ATTNBENCH_PARAM_INT, "1", "smallworld only: lattice links within this distance"},
    {"weights", ATTNBENCH_PARAM_STRING, "", "load weights from this .safetensors (names in docs/reservoir.md)"},
    {"save_weights", ATTNBENCH_PARAM_STRING, "", "save the weights in use to this .safetensors"},
    {"cuda_graphs", ATTNBENCH_PARAM_BOOL, "true", "on CUDA, replay step()'s kernels as one CUDA graph (false: launch them one by one)"},
};

// Beyond a million nodes the input weights alone (N x E floats) outgrow any machine this runs on.
constexpr double kMaxSize = 1 << 20;
// Products of sizes: 2^31 entries (8 GB of floats, 24 GB as the triplets that build W); the geometric
// graph keeps every node pair (24 bytes each); smallworld and dense uniform graphs visit every pair.
constexpr double kMaxNonzeros = 2147483648.0;
constexpr double kMaxPairs = 1073741824.0;
constexpr double kMaxVisitedPairs = 17179869184.0;
// Rows of the batched readout at once: (H, rows, N) floats, 16 MB at H = 4, N = 256.
constexpr int64_t kReadoutRows = 4096;

struct ReservoirState final : attnbench::State {
  at::Tensor x;  // (B, N) float32: the state stays in fp32 under AMP, so rounding does not accumulate
#ifdef ATTNBENCH_WITH_CUDA
  attnbench::reservoir::CudaStepScratch cuda;  // step() on CUDA
#endif
};

at::Tensor linear_init(int64_t out, int64_t in, at::Generator& gen) {
  // torch.nn.Linear's default (kaiming_uniform_ with a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)).
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return at::empty({out, in}).uniform_(-bound, bound, gen);
}

class ReservoirAttention final : public attnbench::Attention {
 public:
  static void validate(const attnbench::Params& p, int64_t embed_dim) {
    using namespace attnbench::checks;
    const std::string who = "reservoir";
    auto integer = [&](const char* name, double lo, double hi) {
      in_range(who, name, static_cast<double>(p.get_int(name)), lo, hi);
    };
    divides(who, "heads", p.get_int("heads"), embed_dim);
    integer("res_size", 2, kMaxSize);
    integer("in_size", 0, kMaxSize);
    in_range(who, "density", p.get_float("density"), 0, 1, /*open_low=*/true);
    one_of(who, "topology", p.get_string("topology"), attnbench::reservoir::topologies());
    in_range(who, "rho", p.get_float("rho"), 0, INFINITY);
    in_range(who, "leak", p.get_float("leak"), 0, 1, /*open_low=*/true);
    integer("seed", -1, INFINITY);
    in_range(who, "radius", p.get_float("radius"), 0, INFINITY);
    // Beyond the lattice's largest distance every node links to every other: a dense W, slowly built.
    const double side = std::ceil(std::sqrt(static_cast<double>(p.get_int("res_size"))));
    integer("local_radius", 1, 2 * side);
    file_or_empty(who, "weights", p.get_string("weights"));
    // Each size is bounded alone above; their products are what memory and time pay for.
    const double n = static_cast<double>(p.get_int("res_size"));
    const double in = static_cast<double>(p.get_int("in_size") > 0 ? p.get_int("in_size") : embed_dim);
    const std::string& topology = p.get_string("topology");
    size_at_most(who, "res_size", "the nonzeros of W (density x res_size^2)", p.get_float("density") * n * n, kMaxNonzeros);
    if (topology == "geometric") {
      size_at_most(who, "res_size", "the node pairs a geometric graph sorts (res_size (res_size - 1) / 2)", n * (n - 1) / 2,
                   kMaxPairs);
    } else if (topology == "smallworld" || p.get_float("density") > 0.5) {
      size_at_most(who, "res_size", "the node pairs this graph visits (res_size^2)", n * n, kMaxVisitedPairs);
    }
    size_at_most(who, "in_size", "the input weights (res_size x (1 + in_size))", n * (1 + in), kMaxNonzeros);
  }

  explicit ReservoirAttention(const attnbench::CreateArgs& args)
      : device_(args.device),
        dtype_(args.dtype),
        embed_dim_(args.embed_dim),
        heads_(args.params.get_int("heads")),
        leak_(args.params.get_float("leak")),
        cuda_graphs_(args.params.get_bool("cuda_graphs")),
        threads_(args.threads),
        weights_path_(args.params.get_string("weights")) {
    const attnbench::Params& p = args.params;
    validate(p, embed_dim_);
    head_dim_ = embed_dim_ / heads_;
    size_ = p.get_int("res_size");
    in_size_ = p.get_int("in_size") > 0 ? p.get_int("in_size") : embed_dim_;
    graph_.size = size_;
    graph_.density = p.get_float("density");
    graph_.topology = p.get_string("topology");
    graph_.seed = p.get_int("seed") < 0 ? args.seed : static_cast<uint64_t>(p.get_int("seed"));
    graph_.radius = p.get_float("radius");
    graph_.local_radius = p.get_int("local_radius");
    if (weights_path_.empty()) {
      generate(p.get_float("rho"));
    } else {
      load();
    }
    stats_ = attnbench::reservoir::degree_stats(w_);
    achieved_rho_ = attnbench::reservoir::spectral_radius(w_);
    if (!p.get_string("save_weights").empty()) save(p.get_string("save_weights"));
    to_device();
  }

  attnbench::AttentionInfo info() const override {
    attnbench::AttentionInfo info;
    info.description = "ReservoirAttention N=" + std::to_string(size_) + " " + graph_.topology + " density " +
                       std::to_string(stats_.density) + " rho " + std::to_string(achieved_rho_);
    info.embed_dim = embed_dim_;
    info.devices = {"cpu", "cuda"};
    auto& d = info.details;
    d.set("res_size", size_);
    d.set("in_size", in_size_);
    d.set("topology", graph_.topology);
    d.set("spectral_radius", achieved_rho_);
    d.set("spectral_radius_unscaled", unscaled_rho_);
    d.set("nnz", stats_.nnz);
    d.set("density", stats_.density);
    d.set("mean_degree", stats_.mean_degree);
    d.set("min_degree", stats_.min_degree);
    d.set("max_degree", stats_.max_degree);
    d.set("empty_rows", stats_.empty_rows);
    d.set("cuda_graphs", cuda_graphs_);
    d.set("weights", weights_path_.empty() ? std::string("generated (seed ") + std::to_string(graph_.seed) + ")" : weights_path_);
    return info;
  }

  std::unique_ptr<attnbench::State> init_state(int64_t batch) override {
    auto state = std::make_unique<ReservoirState>();
    state->x = at::zeros({batch, size_}, at::TensorOptions().device(device_).dtype(at::kFloat));
    return state;
  }

  at::Tensor forward(const at::Tensor& u, attnbench::State& state) override {
    TORCH_CHECK(u.dim() == 3 && u.size(2) == embed_dim_, "reservoir: forward expects (L, B, ", embed_dim_, "), got ", u.sizes());
    auto& s = attnbench::state_cast<ReservoirState>(state);
    TORCH_CHECK(u.size(1) == s.x.size(0), "reservoir: input batch ", u.size(1), " differs from the state's ", s.x.size(0));
    const int64_t length = u.size(0), batch = u.size(1), rows = length * batch;
    at::Tensor flat = u.reshape({rows, embed_dim_});
    // Everything but the recurrence is a GEMM over all tokens at once.
    at::Tensor pre = at::addmm(win_bias_, reservoir_input(flat), win_input_.t()).to(at::kFloat).view({length, batch, size_});
    at::Tensor states = recur(pre, s.x);  // (L, B, N) float32
    // In blocks of rows, so the (H, rows, N) attention weights stay bounded however long the sequence.
    at::Tensor flat_states = states.view({rows, size_});
    if (rows <= kReadoutRows) return readout(flat, flat_states).view({length, batch, embed_dim_});
    at::Tensor out = at::empty({rows, embed_dim_}, flat.options());
    for (int64_t start = 0; start < rows; start += kReadoutRows) {
      const int64_t n = std::min(kReadoutRows, rows - start);
      out.narrow(0, start, n).copy_(readout(flat.narrow(0, start, n), flat_states.narrow(0, start, n)));
    }
    return out.view({length, batch, embed_dim_});
  }

  at::Tensor step(const at::Tensor& u_t, attnbench::State& state) override {
    TORCH_CHECK(u_t.dim() == 2 && u_t.size(1) == embed_dim_, "reservoir: step expects (B, ", embed_dim_, "), got ", u_t.sizes());
    if (u_t.size(0) == 1 && u_t.is_cpu() && u_t.scalar_type() == at::kFloat) return step_one_cpu(u_t, state);
#ifdef ATTNBENCH_WITH_CUDA
    if (u_t.is_cuda()) {
      auto& s = attnbench::state_cast<ReservoirState>(state);
      return attnbench::reservoir::cuda_step(u_t.contiguous(), s.x, cuda_weights_, s.cuda, cuda_graphs_);
    }
#endif
    return forward(u_t.unsqueeze(0), state).squeeze(0);
  }

  // A step reads every weight (W as CSR: values, 64-bit indices and row offsets; on the fused CUDA step,
  // and the split one where it folds, the folded keys in place of Wq and Ek), the token and the state; it
  // writes the state and its output.
  // Nothing depends on how many tokens came before.
  attnbench::StepTraffic step_traffic(const attnbench::State& state) const override {
    const auto& s = attnbench::state_cast<ReservoirState>(state);
    const int64_t element = static_cast<int64_t>(c10::elementSize(dtype_)), batch = s.x.size(0);
    int64_t weights = w_.nonZeros() * (4 + 8) + (size_ + 1) * 8;
    // Called between a timed step's marks: sums in place, allocates nothing.
    auto add = [&weights](std::initializer_list<const at::Tensor*> read) {
      for (const at::Tensor* t : read) {
        if (t->defined()) weights += t->nbytes();
      }
    };
    add({&win_bias_, &win_input_, &input_proj_dev_, &ev_dev_});
    bool folded = false;
#ifdef ATTNBENCH_WITH_CUDA
    folded = device_.is_cuda() && (attnbench::reservoir::fused_step_applies(cuda_weights_, batch) ||
                                  attnbench::reservoir::split_step_folds(cuda_weights_, size_, embed_dim_, batch));
    if (folded) add({&cuda_weights_.folded_keys});  // scores from these instead of Wq and Ek
#endif
    if (!folded) add({&query_proj_dev_, &ek_dev_});
    const int64_t state_bytes = s.x.nbytes();
    return {weights + state_bytes + batch * embed_dim_ * element, state_bytes + batch * embed_dim_ * element};
  }

  int64_t state_bytes(const attnbench::State& state) const override {
    const auto& s = attnbench::state_cast<ReservoirState>(state);
    return s.x.numel() * static_cast<int64_t>(s.x.element_size());
  }

 private:
  void generate(double rho) {
    w_ = attnbench::reservoir::make_graph(graph_);
    unscaled_rho_ = attnbench::reservoir::spectral_radius(w_);
    if (rho > 0) {
      if (!(unscaled_rho_ > 1e-12)) {
        throw std::invalid_argument("reservoir: W has spectral radius 0 (nnz " + std::to_string(w_.nonZeros()) +
                                    "), so it cannot be scaled to rho; raise density or change topology");
      }
      w_ *= static_cast<float>(rho / unscaled_rho_);
    }
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(graph_.seed);
    win_ = at::empty({size_, 1 + in_size_}).uniform_(-0.5, 0.5, gen);
    if (in_size_ != embed_dim_) input_proj_ = linear_init(in_size_, embed_dim_, gen);
    query_proj_ = linear_init(embed_dim_, embed_dim_, gen);
    const double bound = std::sqrt(6.0 / static_cast<double>(size_ + embed_dim_));  // Xavier on the (N, E) view
    ek_ = at::empty({size_, embed_dim_}).uniform_(-bound, bound, gen);
    ev_ = at::empty({size_, embed_dim_}).uniform_(-bound, bound, gen);
  }

  void load() {
    attnbench::TensorFile file = attnbench::load_safetensors(weights_path_);
    auto it = file.tensors.find("Win");
    if (it == file.tensors.end() || it->second.dim() != 2) {
      throw attnbench::SafetensorsError(weights_path_ + ": missing 2-D tensor 'Win' (N, 1 + in_size)");
    }
    if (it->second.size(0) != size_ || it->second.size(1) != 1 + in_size_) {
      throw std::invalid_argument("reservoir: " + weights_path_ + " has Win of shape " + c10::str(it->second.sizes()) +
                                  " but res_size=" + std::to_string(size_) + ", in_size=" + std::to_string(in_size_) +
                                  "; set them to match the file");
    }
    auto f32 = [&](const std::string& name, at::IntArrayRef shape) {
      return attnbench::require_tensor(file, weights_path_, name, shape).to(at::kFloat).contiguous();
    };
    win_ = f32("Win", {size_, 1 + in_size_});
    query_proj_ = f32("query_proj", {embed_dim_, embed_dim_});
    ek_ = f32("Ek", {size_, embed_dim_});
    ev_ = f32("Ev", {size_, embed_dim_});
    if (in_size_ != embed_dim_) input_proj_ = f32("input_proj", {in_size_, embed_dim_});
    if (file.tensors.count("W")) {
      at::Tensor dense = f32("W", {size_, size_});
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(dense.data_ptr<float>(), size_, size_);
      w_ = m.sparseView();
    } else {
      at::Tensor indptr = attnbench::require_tensor(file, weights_path_, "W.indptr", {size_ + 1}, /*integral=*/true).to(at::kLong);
      const int64_t nnz = indptr[size_].item<int64_t>();
      at::Tensor indices = attnbench::require_tensor(file, weights_path_, "W.indices", {nnz}, /*integral=*/true).to(at::kLong);
      at::Tensor values = f32("W.values", {nnz});
      std::vector<Eigen::Triplet<float, int64_t>> triplets;
      const int64_t* ip = indptr.data_ptr<int64_t>();
      const int64_t* ix = indices.data_ptr<int64_t>();
      for (int64_t r = 0; r < size_; ++r) {
        if (ip[r] > ip[r + 1] || ip[r + 1] > nnz) throw std::invalid_argument("reservoir: " + weights_path_ + ": W.indptr is not monotone");
        for (int64_t k = ip[r]; k < ip[r + 1]; ++k) {
          if (ix[k] < 0 || ix[k] >= size_) throw std::invalid_argument("reservoir: " + weights_path_ + ": W.indices out of range");
          triplets.emplace_back(r, ix[k], values.data_ptr<float>()[k]);
        }
      }
      w_ = SparseMatrix(size_, size_);
      w_.setFromTriplets(triplets.begin(), triplets.end());
    }
    w_.makeCompressed();
    unscaled_rho_ = attnbench::reservoir::spectral_radius(w_);
  }

  void save(const std::string& path) const {
    const int64_t nnz = w_.nonZeros();
    std::map<std::string, at::Tensor> tensors{
        {"Win", win_}, {"query_proj", query_proj_}, {"Ek", ek_}, {"Ev", ev_},
        {"W.indptr", at::from_blob(const_cast<int64_t*>(w_.outerIndexPtr()), {size_ + 1}, at::kLong).clone()},
        {"W.indices", at::from_blob(const_cast<int64_t*>(w_.innerIndexPtr()), {nnz}, at::kLong).clone()},
        {"W.values", at::from_blob(const_cast<float*>(w_.valuePtr()), {nnz}, at::kFloat).clone()}};
    if (input_proj_.defined()) tensors["input_proj"] = input_proj_;
    attnbench::save_safetensors(path, tensors,
                                {{"format", "attnbench.reservoir.v1"}, {"topology", graph_.topology},
                                 {"leak", std::to_string(leak_)}, {"spectral_radius", std::to_string(achieved_rho_)}});
  }

  void to_device() {
    auto opts = at::TensorOptions().device(device_).dtype(dtype_);
    win_bias_ = win_.select(1, 0).to(opts).contiguous();
    win_input_ = win_.narrow(1, 1, in_size_).to(opts).contiguous();
    if (input_proj_.defined()) input_proj_dev_ = input_proj_.to(opts);
    query_proj_dev_ = query_proj_.to(opts);
    ek_dev_ = ek_.to(opts);
    ev_dev_ = ev_.to(opts);
    // Head-major copies for the batched readout: (H, Dh, N) keys and (H, N, Dh) values.
    ek_heads_ = ek_dev_.view({size_, heads_, head_dim_}).permute({1, 2, 0}).contiguous();
    ev_heads_ = ev_dev_.view({size_, heads_, head_dim_}).permute({1, 0, 2}).contiguous();
    if (!device_.is_cpu()) {
      auto index = at::TensorOptions().device(device_).dtype(at::kLong);
      const int64_t nnz = w_.nonZeros();
      csr_indptr_ = at::from_blob(const_cast<int64_t*>(w_.outerIndexPtr()), {size_ + 1}, at::kLong).to(index);
      csr_indices_ = at::from_blob(const_cast<int64_t*>(w_.innerIndexPtr()), {nnz}, at::kLong).to(index);
      csr_values_ = at::from_blob(const_cast<float*>(w_.valuePtr()), {nnz}, at::kFloat).to(device_);
#ifdef ATTNBENCH_WITH_CUDA
      cuda_weights_ = {input_proj_dev_, win_bias_, win_input_, query_proj_dev_, ek_dev_, ev_dev_, at::Tensor(),
                       csr_indptr_, csr_indices_, csr_values_, heads_, leak_};
      // Made with the other weights, so no measured mode counts it: H times Ek's size, in float32.
      if (!input_proj_dev_.defined() && attnbench::reservoir::fused_step_fits(size_, embed_dim_, heads_)) {
        cuda_weights_.folded_keys = attnbench::reservoir::fold_query_into_keys(query_proj_dev_, ek_dev_, heads_);
      }
#endif
    }
  }

  at::Tensor reservoir_input(const at::Tensor& flat) const {
    return input_proj_dev_.defined() ? at::mm(flat, input_proj_dev_.t()) : flat;
  }

  // One recurrence step for one sequence: x <- (1 - a) x + a tanh(pre + W x). The CPU forward and the
  // CPU step both come here, so they differ only in how `pre` was computed.
  void advance_cpu(const float* pre, float* x) {
    Eigen::Map<Eigen::VectorXf> state(x, size_);
    recurrent_.noalias() = w_ * state;
    const float a = static_cast<float>(leak_);
    state = (1.0f - a) * state.array() + a * (Eigen::Map<const Eigen::VectorXf>(pre, size_) + recurrent_).array().tanh();
  }

  // pre: (L, B, N) float32; x: (B, N) float32, advanced in place. Returns every state, (L, B, N).
  at::Tensor recur(const at::Tensor& pre, at::Tensor& x) {
    const int64_t length = pre.size(0), batch = pre.size(1);
    at::Tensor states = at::empty({length, batch, size_}, pre.options());
    if (x.is_cpu()) {
      at::Tensor pre_c = pre.contiguous();
      recurrent_.resize(size_);
      for (int64_t b = 0; b < batch; ++b) {
        float* xb = x.data_ptr<float>() + b * size_;
        for (int64_t t = 0; t < length; ++t) {
          advance_cpu(pre_c.data_ptr<float>() + (t * batch + b) * size_, xb);
          std::copy(xb, xb + size_, states.data_ptr<float>() + (t * batch + b) * size_);
        }
      }
      return states;
    }
#ifdef ATTNBENCH_WITH_CUDA
    attnbench::reservoir::cuda_recurrence(pre.contiguous(), x, states, csr_indptr_, csr_indices_, csr_values_, leak_);
    return states;
#else
    throw std::logic_error("reservoir: no recurrence for device " + x.device().str());  // info() lists cpu and cuda only
#endif
  }

  // flat: (M, E) tokens; states: (M, N) float32 reservoir states after each token. Returns (M, E).
  at::Tensor readout(const at::Tensor& flat, const at::Tensor& states) const {
    const int64_t rows = flat.size(0);
    at::Tensor q = at::mm(flat, query_proj_dev_.t()).view({rows, heads_, head_dim_}).transpose(0, 1);  // (H, M, Dh)
    at::Tensor scores = at::bmm(q, ek_heads_).mul_(1.0 / std::sqrt(static_cast<double>(head_dim_)));  // (H, M, N)
    at::Tensor p = at::softmax(scores, -1, at::kFloat).mul_(states.unsqueeze(0)).to(dtype_);          // p[h, m, r] x[m, r]
    return at::bmm(p, ev_heads_).transpose(0, 1).reshape({rows, embed_dim_});
  }

  // One token of one sequence on the CPU in fp32, in Eigen (support/cpu_kernels.h), with no allocation
  // but the output: the streamed token reads ~4.7 MB of weights at E=768, N=256, and torch's
  // per-operator overhead (and whichever BLAS a build links) would double its cost.
  at::Tensor step_one_cpu(const at::Tensor& u_t, attnbench::State& state) {
    using RowMajor = attnbench::cpu::RowMajorMatrix;
    using Strided = Eigen::Stride<Eigen::Dynamic, 1>;
    auto& s = attnbench::state_cast<ReservoirState>(state);
    if (!pre_.defined()) {
      pre_ = at::empty({size_});
      query_ = at::empty({embed_dim_});
      projected_ = at::empty({in_size_});
      recurrent_.resize(size_);
    }
    const at::Tensor u = u_t[0].contiguous();
    const float* input = u.data_ptr<float>();
    if (input_proj_dev_.defined()) {
      attnbench::cpu::gemv(projected_.data_ptr<float>(), input_proj_dev_, input, at::Tensor(), threads_);
      input = projected_.data_ptr<float>();
    }
    attnbench::cpu::gemv(pre_.data_ptr<float>(), win_input_, input, win_bias_, threads_);
    float* x = s.x.data_ptr<float>();
    advance_cpu(pre_.data_ptr<float>(), x);
    attnbench::cpu::gemv(query_.data_ptr<float>(), query_proj_dev_, u.data_ptr<float>(), at::Tensor(), threads_);
    at::Tensor out = at::empty({1, embed_dim_});
    Eigen::Map<const Eigen::VectorXf> xv(x, size_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
    scores_.resize(std::max(threads_, 1));
    attnbench::cpu::parallel_parts(heads_, threads_, [&](int part, int64_t first, int64_t last) {
      Eigen::VectorXf& scores = scores_[part];
      for (int64_t h = first; h < last; ++h) {
        Eigen::Map<const RowMajor, 0, Strided> k(ek_dev_.data_ptr<float>() + h * head_dim_, size_, head_dim_, Strided(embed_dim_, 1));
        Eigen::Map<const RowMajor, 0, Strided> v(ev_dev_.data_ptr<float>() + h * head_dim_, size_, head_dim_, Strided(embed_dim_, 1));
        scores.noalias() = k * Eigen::Map<const Eigen::VectorXf>(query_.data_ptr<float>() + h * head_dim_, head_dim_);
        scores *= scale;
        scores = (scores.array() - scores.maxCoeff()).exp();
        scores = scores.cwiseProduct(xv) / scores.sum();
        Eigen::Map<Eigen::VectorXf>(out.data_ptr<float>() + h * head_dim_, head_dim_).noalias() = v.transpose() * scores;
      }
    });
    return out;
  }

  c10::Device device_;
  c10::ScalarType dtype_;
  int64_t embed_dim_, heads_, head_dim_ = 0, size_ = 0, in_size_ = 0;
  double leak_;
  bool cuda_graphs_;
  int threads_;  // run.threads: the CPU step splits its rows and heads over them
  std::string weights_path_;
  attnbench::reservoir::GraphSpec graph_;
  attnbench::reservoir::DegreeStats stats_;
  double achieved_rho_ = 0, unscaled_rho_ = 0;

  SparseMatrix w_;                                // scaled W, CPU
  at::Tensor win_, input_proj_, query_proj_, ek_, ev_;  // fp32 CPU masters, as saved
  at::Tensor win_bias_, win_input_, input_proj_dev_, query_proj_dev_, ek_dev_, ev_dev_, ek_heads_, ev_heads_;
  at::Tensor csr_indptr_, csr_indices_, csr_values_;  // W on a non-CPU device
  at::Tensor pre_, query_, projected_;                  // step_one_cpu's buffers
#ifdef ATTNBENCH_WITH_CUDA
  attnbench::reservoir::CudaStepWeights cuda_weights_;
#endif
  Eigen::VectorXf recurrent_;
  std::vector<Eigen::VectorXf> scores_;  // one per thread of the CPU step
};

}  // namespace

ATTNBENCH_ATTENTION_PLUGIN(ReservoirAttention, "reservoir", "1.0.0", kParams)
