// The `next_embedding` task, on the study's own text: the embedder's tokens of `documents` documents
// stream through the layer (one document per stream), and a readout of the layer's output at t predicts
// the embedding of token t+1. The readout is fitted on some documents, its regulariser chosen on others,
// and it is scored on the rest: R² (1 - SSE / SST over every coordinate, SST about the test rows' mean)
// and the mean cosine of predicted and true embeddings. The baseline reads the current token's own
// embedding, so the score says what the layer's memory adds.
#include "streams.h"

#include <attnbench/support/checks.h>

namespace {

using namespace attnbench;

const attnbench_param_spec_v1 kParams[] = {
    {"documents", ATTNBENCH_PARAM_INT, "16", "documents of the study's corpus (at least 3: train, validation, test)"},
    {"tokens", ATTNBENCH_PARAM_INT, "0", "tokens per document; 0: the study's data.seq_len"},
    {"washout", ATTNBENCH_PARAM_INT, "0", "first tokens of each document not fitted or scored"},
};

class NextEmbedding final : public Task {
 public:
  static void validate(const Params& p, int64_t /*embed_dim*/) {
    checks::in_range("next_embedding", "documents", static_cast<double>(p.get_int("documents")), 3, 100000);
    checks::in_range("next_embedding", "tokens", static_cast<double>(p.get_int("tokens")), 0, 1e6);
    checks::in_range("next_embedding", "washout", static_cast<double>(p.get_int("washout")), 0, 1e6);
  }

  explicit NextEmbedding(const CreateArgs& args) : params_(args.params) { validate(params_, args.embed_dim); }

  TaskInfo info() const override {
    TaskInfo i;
    i.description = "the next token's embedding, on " + std::to_string(params_.get_int("documents")) +
                    " documents of the study's corpus";
    i.score_name = "R²";
    i.higher_is_better = true;
    i.baseline_name = "the current token's embedding";
    i.corpus_documents = params_.get_int("documents");
    i.corpus_tokens = params_.get_int("tokens");
    return i;
  }

  TaskEpisode make(int64_t /*embed_dim*/, const at::Tensor& corpus) override {
    const int64_t documents = corpus.size(0), tokens = corpus.size(1), washout = params_.get_int("washout");
    if (tokens < washout + 2) {
      throw InvalidParameter("washout", "next_embedding: documents of " + std::to_string(tokens) +
                                            " tokens leave nothing after a washout of " + std::to_string(washout));
    }
    TaskEpisode e;
    e.inputs = corpus.to(at::kFloat).transpose(0, 1).contiguous();  // (tokens, documents, E)
    e.targets = at::zeros_like(e.inputs, at::kDouble);
    e.targets.narrow(0, 0, tokens - 1).copy_(e.inputs.narrow(0, 1, tokens - 1));
    // Documents, not tokens, are split: a quarter tested, a quarter for the regulariser, the rest fitted.
    const int64_t test = std::max<int64_t>(1, documents / 4), validation = std::max<int64_t>(1, documents / 4);
    e.split = at::full({tokens, documents}, static_cast<int8_t>(Split::kTrain), at::kChar);
    e.split.narrow(1, documents - test, test).fill_(static_cast<int8_t>(Split::kTest));
    e.split.narrow(1, documents - test - validation, validation).fill_(static_cast<int8_t>(Split::kValidation));
    e.split.narrow(0, 0, washout).fill_(static_cast<int8_t>(Split::kIgnore));
    e.split[tokens - 1].fill_(static_cast<int8_t>(Split::kIgnore));  // the last token has no next one
    return e;
  }

  TaskScores score(const TaskEpisode& e, const TaskPredictions& p) override {
    const at::Tensor truth = tasks::rows_of(e.targets, e.split, Split::kTest);
    auto fill = [&](Params& out, const at::Tensor& predicted) {
      const at::Tensor guess = tasks::rows_of(predicted, e.split, Split::kTest);
      const double sse = (guess - truth).pow(2).sum().item<double>();
      const double sst = (truth - truth.mean(0)).pow(2).sum().item<double>();
      out.set("r2", sst > 0 ? 1 - sse / sst : 0.0);
      out.set("cosine", at::cosine_similarity(guess, truth, 1).mean().item<double>());
    };
    TaskScores s;
    fill(s.scores, p.outputs);
    fill(s.baseline_scores, p.inputs);
    s.score = s.scores.get_float("r2");
    s.baseline = s.baseline_scores.get_float("r2");
    return s;
  }

 private:
  Params params_;
};

}  // namespace

ATTNBENCH_TASK_PLUGIN(NextEmbedding, "next_embedding", "1.0.0", kParams)
