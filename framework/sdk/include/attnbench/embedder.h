// The embedder interface: turns a corpus (or a seed) into token embeddings the attention layers consume.
// Register with ATTNBENCH_EMBEDDER_PLUGIN(MyEmbedder, "name", "1.0.0", kParams); the class needs a
// constructor taking `const attnbench::CreateArgs&` and may throw.
//
// Optionally, MyEmbedder declares
//
//   static int64_t validate(const attnbench::Params& params);
//
// which checks the parameters without loading anything (throwing attnbench::InvalidParameter) and
// returns the width E of the tokens it will produce, or 0 when that needs its model loaded. The runner
// calls it when a study loads, and hands E to the attention plugins' validate().
#pragma once

#include <attnbench/common.h>

#include <string>

namespace attnbench {

struct EmbedderInfo {
  std::string description;  // what it embeds with what, e.g. "all-MiniLM-L6-v2 on wiki.xml (12 docs)"
  int64_t embed_dim = 0;
  Params details;
};

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual EmbedderInfo info() const = 0;

  // Returns (samples, seq_len, E) on CreateArgs::device in CreateArgs::dtype: `samples` sequences of
  // exactly seq_len tokens each. Throws when the source cannot provide that many.
  virtual at::Tensor embed(int64_t samples, int64_t seq_len) = 0;
};

class EmbedderHandle {
 public:
  virtual bool info(EmbedderInfo* out) noexcept = 0;
  virtual bool embed(int64_t samples, int64_t seq_len, at::Tensor* out) noexcept = 0;
  virtual const char* last_error() const noexcept = 0;
  virtual void destroy() noexcept = 0;
  // --- SDK ABI minor 1
  virtual const Failure& last_failure() const noexcept = 0;

 protected:
  ~EmbedderHandle() = default;
};

namespace detail {

template <typename Impl, typename = void>
struct has_embedder_validate : std::false_type {};
template <typename Impl>
struct has_embedder_validate<Impl, std::void_t<decltype(Impl::validate(std::declval<const Params&>()))>>
    : std::true_type {};

template <typename Impl>
class EmbedderAdapter final : public EmbedderHandle {
 public:
  explicit EmbedderAdapter(const CreateArgs& args) : impl_(args) {}
  static void validate(const ValidateArgs& args, ValidateResult& result) {
    if constexpr (has_embedder_validate<Impl>::value) result.embed_dim = Impl::validate(args.params);
  }
  bool info(EmbedderInfo* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.info(); });
  }
  bool embed(int64_t samples, int64_t seq_len, at::Tensor* out) noexcept override {
    return guarded(error_, [&] { *out = impl_.embed(samples, seq_len); });
  }
  const char* last_error() const noexcept override { return error_.message.c_str(); }
  void destroy() noexcept override { delete this; }
  const Failure& last_failure() const noexcept override { return error_; }

 private:
  Impl impl_;
  Failure error_;
};

}  // namespace detail
}  // namespace attnbench

#define ATTNBENCH_EMBEDDER_PLUGIN(Impl, name, version, params) \
  ATTNBENCH_DEFINE_PLUGIN_(ATTNBENCH_PLUGIN_EMBEDDER, ::attnbench::detail::EmbedderAdapter<Impl>, name, version, params)
