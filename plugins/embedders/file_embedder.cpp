// The `file` embedder: precomputed embeddings from a .safetensors file holding "embeddings" (S, L, E),
// e.g. written by another tool or by `runner --save-outputs`.
#include <attnbench/embedder.h>

#include <attnbench/support/checks.h>
#include <attnbench/support/safetensors.h>

namespace {

const attnbench_param_spec_v1 kParams[] = {
    {"path", ATTNBENCH_PARAM_STRING, "", ".safetensors with a float tensor 'embeddings' of shape (S, L, E)"},
    {"tensor", ATTNBENCH_PARAM_STRING, "embeddings", "name of the tensor to read"},
};

class FileEmbedder final : public attnbench::Embedder {
 public:
  static int64_t validate(const attnbench::Params& p) {
    if (p.get_string("path").empty()) throw attnbench::InvalidParameter("path", "file: set data.params.path to a .safetensors file");
    attnbench::checks::file_or_empty("file", "path", p.get_string("path"));
    return 0;  // the width is in the file, read when the cell runs
  }

  explicit FileEmbedder(const attnbench::CreateArgs& args) : args_(args), path_(args.params.get_string("path")) {
    validate(args.params);
    attnbench::TensorFile file = attnbench::load_safetensors(path_);
    const std::string name = args.params.get_string("tensor");
    auto it = file.tensors.find(name);
    if (it == file.tensors.end() || it->second.dim() != 3 || !it->second.is_floating_point()) {
      throw std::invalid_argument("file: " + path_ + " has no float tensor '" + name + "' of shape (S, L, E)");
    }
    embeddings_ = it->second;
  }

  attnbench::EmbedderInfo info() const override {
    attnbench::EmbedderInfo info;
    info.description = "precomputed embeddings from " + path_;
    info.embed_dim = embeddings_.size(2);
    return info;
  }

  at::Tensor embed(int64_t samples, int64_t seq_len) override {
    if (samples > embeddings_.size(0) || seq_len > embeddings_.size(1)) {
      throw std::invalid_argument("file: " + path_ + " holds " + std::to_string(embeddings_.size(0)) + " sequences of " +
                                  std::to_string(embeddings_.size(1)) + " tokens; " + std::to_string(samples) + " x " +
                                  std::to_string(seq_len) + " requested");
    }
    return embeddings_.narrow(0, 0, samples).narrow(1, 0, seq_len).to(args_.device, args_.dtype);
  }

 private:
  attnbench::CreateArgs args_;
  std::string path_;
  at::Tensor embeddings_;
};

}  // namespace

ATTNBENCH_EMBEDDER_PLUGIN(FileEmbedder, "file", "1.0.0", kParams)
