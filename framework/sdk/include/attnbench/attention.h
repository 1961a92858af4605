// The streaming attention interface. A plugin subclasses attnbench::Attention and registers it with
//
//   static const attnbench_param_spec_v1 kParams[] = {{"heads", ATTNBENCH_PARAM_INT, "4", "..."}};
//   ATTNBENCH_ATTENTION_PLUGIN(MyAttention, "my_attention", "1.0.0", kParams)
//
// MyAttention needs a constructor taking `const attnbench::CreateArgs&`. Its methods may throw; the
// adapter below turns exceptions into messages before they reach the host. Throw
// attnbench::InvalidParameter for a bad parameter and attnbench::Unsupported for a cell the layer cannot
// run (the cell is then skipped, not failed).
//
// Optionally, MyAttention declares
//
//   static void validate(const attnbench::Params& params, int64_t embed_dim);
//
// which checks the parameters without building anything (embed_dim is 0 when the study cannot know it
// yet) and throws attnbench::InvalidParameter naming the bad one. The runner calls it when a study loads,
// so `runner study.yaml --dry-run` reports the mistake with its file, line and column. Call it from the
// constructor too, so the checks live in one place.
//
// Shapes: L tokens, B independent sequences (batch), E model width. Tensors come in and must go out on
// CreateArgs::device in CreateArgs::dtype.
#pragma once

#include <attnbench/common.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace attnbench {

// A plugin's per-batch memory (a KV cache, a reservoir state). The plugin derives from it; the host only
// holds it and gives it back. Deleted through the virtual destructor, i.e. by the plugin's own code.
class State {
 public:
  virtual ~State() = default;
};

// Downcasts a State to the plugin's own type with a clear error if the host mixed up states.
template <typename T>
T& state_cast(State& state) {
  T* typed = dynamic_cast<T*>(&state);
  if (typed == nullptr) throw std::invalid_argument("state was created by another attention layer");
  return *typed;
}
template <typename T>
const T& state_cast(const State& state) {
  return state_cast<T>(const_cast<State&>(state));
}

struct StepTraffic {
  int64_t read_bytes = -1;
  int64_t write_bytes = -1;
};

struct AttentionInfo {
  std::string description;                 // one line for humans
  int64_t embed_dim = 0;                   // E this instance expects
  bool causal = true;                      // false: forward is unmasked, so step == forward does not hold
  std::vector<std::string> devices{"cpu"};  // device types it runs on ("cpu", "cuda")
  Params details;                          // facts worth recording (e.g. achieved spectral radius)
};

class Attention {
 public:
  virtual ~Attention() = default;

  // Called once after construction and again after each cell; cheap.
  virtual AttentionInfo info() const = 0;

  // An empty state for `batch` sequences: an empty KV cache, a zero reservoir state.
  virtual std::unique_ptr<State> init_state(int64_t batch) = 0;

  // x: (L, B, E). Causal attention over the tokens already in `state` followed by x; advances `state`
  // by L tokens. Returns (L, B, E); row t must equal what step() returns for the same token.
  virtual at::Tensor forward(const at::Tensor& x, State& state) = 0;

  // x_t: (B, E), one token per sequence; advances `state` by one token. Returns (B, E). The runner calls
  // this in its timed streaming loop, so it should avoid allocating or copying the whole state.
  virtual at::Tensor step(const at::Tensor& x_t, State& state) = 0;

  // Bytes the state holds now (a KV cache grows with tokens, a reservoir does not).
  virtual int64_t state_bytes(const State& state) const = 0;

  // Optional. A hint that `state` will take about `tokens` tokens in all, like std::vector::reserve: a
  // layer whose state grows may allocate it once. Called after init_state and outside timed regions.
  virtual void reserve(State& state, int64_t tokens) {
    (void)state;
    (void)tokens;
  }

  // Optional. The bytes the next step() on `state` reads and writes in device memory (weights, state,
  // cache up to the current position); the runner reports the bandwidth a step achieves from it.
  // {-1, -1}: not declared.
  virtual StepTraffic step_traffic(const State& state) const {
    (void)state;
    return {};
  }
};

// The object that crosses the boundary: every call is noexcept and reports failure as false plus
// last_error(). The host never sees Attention itself.
class AttentionHandle {
 public:
  virtual bool info(AttentionInfo* out) noexcept = 0;
  virtual bool init_state(int64_t batch, std::unique_ptr<State>* out) noexcept = 0;
  virtual bool forward(const at::Tensor& x, State& state, at::Tensor* out) noexcept = 0;
  virtual bool step(const at::Tensor& x_t, State& state, at::Tensor* out) noexcept = 0;
  virtual bool state_bytes(const State& state, int64_t* out) noexcept = 0;
  virtual const char* last_error() const noexcept = 0;
  virtual void destroy() noexcept = 0;  // deletes this handle with the plugin's own code
  // --- SDK ABI minor 1: called only when the plugin's handshake says sdk_abi_minor >= 1
  virtual const Failure& last_failure() const noexcept = 0;
  virtual bool reserve(State& state, int64_t tokens) noexcept = 0;
  virtual bool step_traffic(const State& state, StepTraffic* out) noexcept = 0;

 protected:
  ~AttentionHandle() = default;
};

namespace detail {

template <typename Impl>
class AttentionAdapter final : public AttentionHandle {
 public:
  explicit AttentionAdapter(const CreateArgs& args) : impl_(args) {}
  static void validate(const ValidateArgs& args, ValidateResult& result) {
    if constexpr (has_validate<Impl>::value) Impl::validate(args.params, args.embed_dim);
    result.embed_dim = args.embed_dim;
  }
  bool info(AttentionInfo* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.info(); });
  }
  bool init_state(int64_t batch, std::unique_ptr<State>* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.init_state(batch); });
  }
  bool forward(const at::Tensor& x, State& state, at::Tensor* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.forward(x, state); });
  }
  bool step(const at::Tensor& x_t, State& state, at::Tensor* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.step(x_t, state); });
  }
  bool state_bytes(const State& state, int64_t* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.state_bytes(state); });
  }
  const char* last_error() const noexcept override { return error_.message.c_str(); }
  void destroy() noexcept override { delete this; }
#if ATTNBENCH_HANDSHAKE_ABI_MINOR >= 1
  const Failure& last_failure() const noexcept override { return error_; }
  bool reserve(State& state, int64_t tokens) noexcept override {
    return guarded(error_, [&] { impl_.reserve(state, tokens); });
  }
  bool step_traffic(const State& state, StepTraffic* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.step_traffic(state); });
  }
#else
  // A test build that poses as a minor-0 plugin: the host must never call what minor 0 does not have.
  const Failure& last_failure() const noexcept override { std::abort(); }
  bool reserve(State&, int64_t) noexcept override { std::abort(); }
  bool step_traffic(const State&, StepTraffic*) noexcept override { std::abort(); }
#endif

 private:
  Impl impl_;
  Failure error_;
};

}  // namespace detail
}  // namespace attnbench

#define ATTNBENCH_ATTENTION_PLUGIN(Impl, name, version, params) \
  ATTNBENCH_DEFINE_PLUGIN_(ATTNBENCH_PLUGIN_ATTENTION, ::attnbench::detail::AttentionAdapter<Impl>, name, version, params)
