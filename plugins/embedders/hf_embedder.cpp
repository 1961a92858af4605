// The `hf` embedder (also built as `bert`, its first name, so that existing studies, their cell hashes
// and caches stay valid): documents from a corpus, tokenized as the checkpoint's fast tokenizer does,
// through the Hugging Face model config.json names (BERT, DistilBERT, RoBERTa, XLM-R, GPT-2); the last
// hidden state of each document's first seq_len tokens (the special tokens the tokenizer adds
// included: [CLS] ... [SEP], <s> ... </s>, none for GPT-2), as the reference did with AutoModel.
// Results are cached as .safetensors keyed by everything that determines them.
#include <attnbench/embedder.h>

#include "corpus.h"
#include "model.h"
#include "tokenizer.h"
#include <attnbench/support/checks.h>
#include <attnbench/support/hash.h>
#include <attnbench/support/safetensors.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

#ifndef ATTNBENCH_EMBEDDER_NAME
#define ATTNBENCH_EMBEDDER_NAME "hf"
#endif

namespace {

constexpr const char* kName = ATTNBENCH_EMBEDDER_NAME;

// The parameters and their defaults are those the `bert` embedder had, so its cells keep their hashes.
const attnbench_param_spec_v1 kParams[] = {
    {"model", ATTNBENCH_PARAM_STRING, "models/all-MiniLM-L6-v2",
     "Hugging Face checkpoint directory: config.json (model_type bert, distilbert, roberta, xlm-roberta or gpt2), "
     "tokenizer.json (or vocab.txt, or vocab.json and merges.txt), model.safetensors"},
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

// Adds to a cache key the tokenizer files Tokenizer::from_directory reads, under "vocab" the one it
// tokenizes with; a checkpoint with vocab.txt alone keys its cache as the bert embedder always did.
void add_tokenizer_identity(const fs::path& dir, nlohmann::json& key) {
  const char* primary = fs::exists(dir / "tokenizer.json") ? "tokenizer.json" : fs::exists(dir / "vocab.txt") ? "vocab.txt" : "vocab.json";
  key["vocab"] = file_identity((dir / primary).string());
  nlohmann::json others = nlohmann::json::array();
  if (std::string(primary) != "tokenizer.json") {
    for (const char* name : {"merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
      if (fs::exists(dir / name)) others.push_back(file_identity((dir / name).string()));
    }
  }
  if (!others.empty()) key["tokenizer_files"] = others;
}

class HfEmbedder final : public attnbench::Embedder {
 public:
  // The model directory is only looked at, not loaded: when its config.json reads, the width is known
  // before anything runs; a missing or broken checkpoint is the cell's error, with the reader's message.
  static int64_t validate(const attnbench::Params& p) {
    using attnbench::checks::in_range;
    in_range(kName, "skip", static_cast<double>(p.get_int("skip")), 0, INFINITY);
    in_range(kName, "min_chars", static_cast<double>(p.get_int("min_chars")), 0, INFINITY);
    in_range(kName, "batch_size", static_cast<double>(p.get_int("batch_size")), 1, 1 << 16);
    attnbench::checks::one_of(kName, "format", p.get_string("format"), attnbench::text::corpus_formats());
    try {
      return attnbench::text::read_model_config(p.get_string("model")).hidden_size;
    } catch (const std::exception&) {
      return 0;
    }
  }

  explicit HfEmbedder(const attnbench::CreateArgs& args)
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
      throw std::invalid_argument(std::string(kName) + ": model directory '" + model_dir_ +
                                  "' does not exist; scripts/fetch_model.sh puts all-MiniLM-L6-v2 in models/ "
                                  "(see the README for bert-base-uncased)");
    }
    config_ = attnbench::text::read_model_config(model_dir_);
  }

  attnbench::EmbedderInfo info() const override {
    attnbench::EmbedderInfo info;
    if (!warning_.empty()) info.details.set("cache_warning", warning_);
    info.description = description_.empty() ? fs::path(model_dir_).filename().string() + " on " + corpus_.path : description_;
    info.embed_dim = config_.hidden_size;
    info.details.set("model", model_dir_);
    info.details.set("corpus", corpus_.path);
    info.details.set("model_type", config_.model_type);
    info.details.set("layers", config_.layers);
    if (!tokenizer_source_.empty()) info.details.set("tokenizer", tokenizer_source_);  // empty: came from the cache
    info.details.set("cached", cached_);
    info.details.set("documents_skipped_short", skipped_short_);
    if (tokens_per_s_ > 0) info.details.set("model_tokens_per_s", tokens_per_s_);  // 0: came from the cache
    return info;
  }

  at::Tensor embed(int64_t samples, int64_t seq_len) override {
    nlohmann::json key = {{"model", file_identity((fs::path(model_dir_) / "model.safetensors").string())},
                          {"corpus", file_identity(corpus_.path)}, {"format", corpus_.format},
                          {"text_field", corpus_.text_field}, {"skip", corpus_.skip}, {"min_chars", corpus_.min_chars},
                          {"samples", samples}, {"seq_len", seq_len}, {"dtype", c10::toString(args_.dtype)}};
    add_tokenizer_identity(model_dir_, key);
    const std::string cache_file = cache_dir_.empty() ? ""
        : (fs::path(cache_dir_) / (std::string(kName) + "_" + attnbench::hash_json(key) + ".safetensors")).string();
    const std::string model_name = fs::path(model_dir_).filename().string();
    std::error_code exists_ec;
    if (!cache_file.empty() && fs::exists(cache_file, exists_ec)) {
      // A cache is only a copy: one that does not load (cut short, another format, edited) is made again
      // rather than failing every run until someone deletes it.
      try {
        attnbench::TensorFile file = attnbench::load_safetensors(cache_file);
        at::Tensor embeddings =
            attnbench::require_tensor(file, cache_file, "embeddings", {samples, seq_len, config_.hidden_size});
        cached_ = true;
        description_ = file.metadata.count("description") ? file.metadata.at("description") : model_name;
        return embeddings.to(args_.device, args_.dtype);
      } catch (const attnbench::SafetensorsError& e) {
        warn(std::string("the embedding cache does not load (") + e.what() + "); computing the embeddings again");
      }
    }

    const attnbench::text::Tokenizer tokenizer = attnbench::text::Tokenizer::from_directory(model_dir_, config_.model_type);
    tokenizer_source_ = tokenizer.source();
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
      throw std::invalid_argument(std::string(kName) + ": corpus '" + corpus_.path + "' has " + std::to_string(docs.size()) +
                                  " documents of at least " + std::to_string(seq_len) + " tokens (of " +
                                  std::to_string(scanned) + " read); " + std::to_string(samples) +
                                  " are needed: lower data.samples or data.seq_len, or use a larger corpus");
    }
    const std::unique_ptr<attnbench::text::TextModel> model = attnbench::text::load_model(model_dir_, args_.device, args_.dtype);
    std::vector<at::Tensor> out;
    // Warm-up with a full batch, outside the timing: the first calls pick and load kernels.
    std::vector<at::Tensor> first(docs.begin(), docs.begin() + std::min(samples, batch_size_));
    model->forward(at::stack(first)).flatten()[0].item<float>();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < samples; b += batch_size_) {
      std::vector<at::Tensor> batch(docs.begin() + b, docs.begin() + std::min(samples, b + batch_size_));
      out.push_back(model->forward(at::stack(batch)));
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
      // The embeddings are computed: a cache that cannot be written (a full disk) costs the next run time,
      // not this cell its result. save_safetensors writes it whole or not at all.
      try {
        attnbench::save_safetensors(cache_file, {{"embeddings", embeddings.to(at::kFloat)}}, {{"description", description_}});
      } catch (const attnbench::SafetensorsError& e) {
        warn(std::string("the embedding cache was not written (") + e.what() + "); the next run computes them again");
      }
    }
    return embeddings;
  }

 private:
  void warn(const std::string& what) {
    warning_ = std::string(kName) + ": " + what;
    std::cerr << "warning: " << warning_ << "\n";
  }

  attnbench::CreateArgs args_;
  std::string model_dir_;
  int64_t batch_size_;
  std::string cache_dir_;
  attnbench::text::CorpusOptions corpus_;
  attnbench::text::ModelConfig config_;
  std::string description_, tokenizer_source_;
  bool cached_ = false;
  std::string warning_;  // what went wrong with the cache, in the results' embedder details
  int64_t skipped_short_ = 0;
  double tokens_per_s_ = 0;  // one timed pass of the model (tokenizing and reading excluded)
};

}  // namespace

ATTNBENCH_EMBEDDER_PLUGIN(HfEmbedder, ATTNBENCH_EMBEDDER_NAME, "1.1.0", kParams)
