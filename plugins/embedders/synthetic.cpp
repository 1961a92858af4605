// The `synthetic` embedder: seeded Gaussian token embeddings, so studies and tests run with no data.
#include <attnbench/embedder.h>
#include <attnbench/support/checks.h>

#include <ATen/CPUGeneratorImpl.h>

namespace {

const attnbench_param_spec_v1 kParams[] = {
    {"embed_dim", ATTNBENCH_PARAM_INT, "768", "width E of each token embedding"},
    {"scale", ATTNBENCH_PARAM_FLOAT, "1.0", "standard deviation of the entries"},
    {"seed", ATTNBENCH_PARAM_INT, "-1", "random seed; -1 takes the cell's run.seed"},
};

class SyntheticEmbedder final : public attnbench::Embedder {
 public:
  static int64_t validate(const attnbench::Params& p) {
    attnbench::checks::in_range("synthetic", "embed_dim", static_cast<double>(p.get_int("embed_dim")), 1, 1 << 20);
    attnbench::checks::in_range("synthetic", "scale", p.get_float("scale"), 0, INFINITY);
    attnbench::checks::in_range("synthetic", "seed", static_cast<double>(p.get_int("seed")), -1, INFINITY);
    return p.get_int("embed_dim");
  }

  explicit SyntheticEmbedder(const attnbench::CreateArgs& args)
      : args_(args),
        embed_dim_(args.params.get_int("embed_dim")),
        scale_(args.params.get_float("scale")),
        seed_(args.params.get_int("seed") < 0 ? args.seed : static_cast<uint64_t>(args.params.get_int("seed"))) {
    validate(args.params);
  }

  attnbench::EmbedderInfo info() const override {
    attnbench::EmbedderInfo info;
    info.description = "synthetic Gaussian tokens (seed " + std::to_string(seed_) + ")";
    info.embed_dim = embed_dim_;
    return info;
  }

  at::Tensor embed(int64_t samples, int64_t seq_len) override {
    // Drawn on the CPU with a private generator: the same seed gives the same tokens on every device.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed_);
    at::Tensor x = at::empty({samples, seq_len, embed_dim_}, at::kFloat);
    x.normal_(0.0, scale_, gen);
    return x.to(args_.device, args_.dtype);
  }

 private:
  attnbench::CreateArgs args_;
  int64_t embed_dim_;
  double scale_;
  uint64_t seed_;
};

}  // namespace

ATTNBENCH_EMBEDDER_PLUGIN(SyntheticEmbedder, "synthetic", "1.0.0", kParams)
