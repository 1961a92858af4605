// The `bert` embedder: documents from a corpus, WordPiece-tokenized, through a BERT checkpoint; the last
// hidden state of each document's first seq_len tokens ([CLS] ... [SEP] included), as the reference did
// with bert-base-uncased. Results are cached as .safetensors keyed by everything that determines them.
#include <attnbench/embedder.h>

#include "bert.h"
#include "corpus.h"
#include <attnbench/support/checks.h>
#include <attnbench/support/hash.h>
#include <attnbench/support/safetensors.h>
#include "wordpiece.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const attnbench_param_spec_v1 kParams[] = {
    {"model", ATTNBENCH_PARAM_STRING, "models/all-MiniLM-L6-v2",
     "Hugging Face checkpoint directory: config.json, vocab.txt, model.safetensors"},
    {"corpus", ATTNBENCH_PARAM_STRING, "data/wiki_sample.xml", "corpus file (.txt, .jsonl, .xml, .xml.bz2)"},
    {"format", ATTNBENCH_PARAM_STRING, "auto", "auto, lines, paragraphs, jsonl or mediawiki"},
    {"text_field", ATTNBENCH_PARAM_STRING, "text", "jsonl: the field holding each document"},
    {"skip", ATTNBENCH_PARAM_INT, "0", "documents to skip first"},
    {"min_chars", ATTNBENCH_PARAM_INT, "0", "ignore documents shorter than this"},
    {"batch_size", ATTNBENCH_PARAM_INT, "8", "documents per model call"},
    {"cache_dir", ATTNBENCH_PARAM_STRING, "results/embedding_cache", "where embeddings are cached; empty: no cache"},
};

// What identifies a file's content cheaply: path, size and modification time.
nlohmann::json file_identity(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  auto time = fs::last_write_time(path, ec);
  return {{"path", fs::weakly_canonical(path, ec).string()}, {"size", ec ? 0 : size},
          {"mtime", static_cast<int64_t>(time.time_since_epoch().count())}};
}

class BertEmbedder final : public attnbench::Embedder {
 public:
  // The model directory is only looked at, not loaded: when its config.json reads, the width is known
  // before anything runs; a missing or broken checkpoint is the cell's error, with the reader's message.
  static int64_t validate(const attnbench::Params& p) {
    using attnbench::checks::in_range;
    in_range("bert", "skip", static_cast<double>(p.get_int("skip")), 0, INFINITY);
    in_range("bert", "min_chars", static_cast<double>(p.get_int("min_chars")), 0, INFINITY);
    in_range("bert", "batch_size", static_cast<double>(p.get_int("batch_size")), 1, 1 << 16);
    attnbench::checks::one_of("bert", "format", p.get_string("format"), attnbench::text::corpus_formats());
    try {
      return attnbench::text::read_bert_config(p.get_string("model")).hidden_size;
    } catch (const std::exception&) {
      return 0;
    }
  }

  explicit BertEmbedder(const attnbench::CreateArgs& args)
      : args_(args),
        model_dir_(args.params.get_string("model")),
        batch_size_(args.params.get_int("batch_size")),
        cache_dir_(args.params.get_string("cache_dir")) {
    corpus_.path = args.params.get_string("corpus");
    corpus_.format = args.params.get_string("format");
    corpus_.text_field = args.params.get_string("text_field");
    corpus_.skip = args.params.get_int("skip");
    corpus_.min_chars = args.params.get_int("min_chars");
    validate(args.params);
    if (!fs::is_directory(model_dir_)) {
      throw std::invalid_argument("bert: model directory '" + model_dir_ +
                                  "' does not exist; scripts/fetch_model.sh puts all-MiniLM-L6-v2 in models/ "
                                  "(see the README for bert-base-uncased)");
    }
    config_ = attnbench::text::read_bert_config(model_dir_);
  }

  attnbench::EmbedderInfo info() const override {
    attnbench::EmbedderInfo info;
    info.description = description_.empty() ? fs::path(model_dir_).filename().string() + " on " + corpus_.path : description_;
    info.embed_dim = config_.hidden_size;
    info.details.set("model", model_dir_);
    info.details.set("corpus", corpus_.path);
    info.details.set("layers", config_.layers);
    info.details.set("cached", cached_);
    info.details.set("documents_skipped_short", skipped_short_);
    if (tokens_per_s_ > 0) info.details.set("model_tokens_per_s", tokens_per_s_);  // 0: came from the cache
    return info;
  }

  at::Tensor embed(int64_t samples, int64_t seq_len) override {
    nlohmann::json key = {{"model", file_identity((fs::path(model_dir_) / "model.safetensors").string())},
                          {"vocab", file_identity((fs::path(model_dir_) / "vocab.txt").string())},
                          {"corpus", file_identity(corpus_.path)}, {"format", corpus_.format},
                          {"text_field", corpus_.text_field}, {"skip", corpus_.skip}, {"min_chars", corpus_.min_chars},
                          {"samples", samples}, {"seq_len", seq_len}, {"dtype", c10::toString(args_.dtype)}};
    const std::string cache_file =
        cache_dir_.empty() ? "" : (fs::path(cache_dir_) / ("bert_" + attnbench::hash_json(key) + ".safetensors")).string();
    const std::string model_name = fs::path(model_dir_).filename().string();
    if (!cache_file.empty() && fs::exists(cache_file)) {
      attnbench::TensorFile file = attnbench::load_safetensors(cache_file);
      cached_ = true;
      description_ = file.metadata.count("description") ? file.metadata.at("description") : model_name;
      return attnbench::require_tensor(file, cache_file, "embeddings", {samples, seq_len, config_.hidden_size})
          .to(args_.device, args_.dtype);
    }

    attnbench::text::WordPiece tokenizer((fs::path(model_dir_) / "vocab.txt").string());
    std::vector<at::Tensor> docs;
    int64_t scanned = 0;
    attnbench::text::read_corpus(corpus_, [&](const std::string& doc) {
      ++scanned;
      std::vector<int64_t> ids = tokenizer.encode(doc, seq_len);
      if (static_cast<int64_t>(ids.size()) < seq_len) {
        ++skipped_short_;
        return true;
      }
      docs.push_back(at::tensor(ids, at::kLong));
      return static_cast<int64_t>(docs.size()) < samples;
    });
    if (static_cast<int64_t>(docs.size()) < samples) {
      throw std::invalid_argument("bert: corpus '" + corpus_.path + "' has " + std::to_string(docs.size()) +
                                  " documents of at least " + std::to_string(seq_len) + " tokens (of " +
                                  std::to_string(scanned) + " read); " + std::to_string(samples) +
                                  " are needed: lower data.samples or data.seq_len, or use a larger corpus");
    }
    attnbench::text::BertModel model(model_dir_, args_.device, args_.dtype);
    std::vector<at::Tensor> out;
    // Warm-up with a full batch, outside the timing: the first calls pick and load kernels.
    std::vector<at::Tensor> first(docs.begin(), docs.begin() + std::min(samples, batch_size_));
    model.forward(at::stack(first)).flatten()[0].item<float>();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < samples; b += batch_size_) {
      std::vector<at::Tensor> batch(docs.begin() + b, docs.begin() + std::min(samples, b + batch_size_));
      out.push_back(model.forward(at::stack(batch)));
    }
    at::Tensor embeddings = at::cat(out);
    embeddings.flatten()[0].item<float>();  // waits for the device, so the time below is the model's
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    tokens_per_s_ = static_cast<double>(samples * seq_len) / seconds;
    std::ostringstream text;
    text << model_name << " on " << fs::path(corpus_.path).filename().string() << " (" << samples << " documents of "
         << seq_len << "+ tokens, " << skipped_short_ << " shorter skipped)";
    description_ = text.str();
    if (!cache_file.empty()) {
      attnbench::save_safetensors(cache_file, {{"embeddings", embeddings.to(at::kFloat)}}, {{"description", description_}});
    }
    return embeddings;
  }

 private:
  attnbench::CreateArgs args_;
  std::string model_dir_;
  int64_t batch_size_;
  std::string cache_dir_;
  attnbench::text::CorpusOptions corpus_;
  attnbench::text::BertConfig config_;
  std::string description_;
  bool cached_ = false;
  int64_t skipped_short_ = 0;
  double tokens_per_s_ = 0;  // one timed pass of the model (tokenizing and reading excluded)
};

}  // namespace

ATTNBENCH_EMBEDDER_PLUGIN(BertEmbedder, "bert", "1.0.0", kParams)
