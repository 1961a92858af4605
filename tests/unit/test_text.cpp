// Asserts the text side of the embedders with fixtures the test writes itself:
//  - each corpus reader (lines, paragraphs, JSONL, MediaWiki XML plain and .bz2) yields the documents,
//    honours skip and min_chars, strips wikitext, and names the file and line of bad input;
//  - a vocab.txt WordPiece tokenizer gives the expected ids on hard strings (case, accents, punctuation,
//    CJK, long and unknown words, empty text, special tokens in the text, truncation), as Hugging Face's
//    BertTokenizerFast does (test_hf.cpp checks every family against transformers' own output);
//  - a tiny BERT checkpoint loads and equals an independent computation with libtorch's
//    TransformerEncoderLayer (BERT's layer is a post-norm GELU encoder layer), and broken checkpoints are
//    clear errors.
#include "corpus.h"
#include "model.h"
#include <attnbench/support/safetensors.h>
#include "test_util.h"
#include "tokenizer.h"

#include <bzlib.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace attnbench::text;
using attnbench::testing::read_jsonl;
using attnbench::testing::temp_path;

namespace {

std::string write(const std::string& name, const std::string& content) {
  std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::vector<std::string> read_all(const CorpusOptions& options) {
  std::vector<std::string> docs;
  read_corpus(options, [&](const std::string& d) {
    docs.push_back(d);
    return true;
  });
  return docs;
}

std::string corpus_error(const CorpusOptions& options) {
  try {
    read_all(options);
  } catch (const CorpusError& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kDump = R"(<mediawiki>
  <page>
    <title>One</title>
    <ns>0</ns>
    <revision><text xml:space="preserve">{{Infobox|a={{nested}}}}'''Bold''' and ''italic'' text with a [[Target page|label]] and [[Plain]].&lt;ref name="x"&gt;cite&lt;/ref&gt;
== Heading ==
* item with [http://example.com an external link] and [http://bare.example]
{| class="wikitable"
| cell
|}
[[File:Picture.png|thumb|A [[caption]]]]<!-- comment -->Tail &amp; end.[[Category:Things]]</text></revision>
  </page>
  <page><title>Redirect</title><ns>0</ns><redirect title="One" /><revision><text>#REDIRECT [[One]]</text></revision></page>
  <page><title>Talk:One</title><ns>1</ns><revision><text>talk</text></revision></page>
  <page><title>Two</title><ns>0</ns><revision><text xml:space="preserve">Second article.</text></revision></page>
</mediawiki>
)";

const std::vector<std::string> kDumpDocs{
    "Bold and italic text with a label and Plain.\nHeading\nitem with an external link and\nTail & end.",
    "Second article."};

}  // namespace

TEST(Corpus, LinesParagraphsSkipAndMinChars) {
  std::string path = write("lines.txt", "first doc\n\nsecond doc\nstill second\n\n\nthird\n");
  CorpusOptions lines{path, "lines"};
  EXPECT_EQ(read_all(lines), (std::vector<std::string>{"first doc", "second doc", "still second", "third"}));
  CorpusOptions paragraphs{path, "auto"};
  EXPECT_EQ(read_all(paragraphs), (std::vector<std::string>{"first doc", "second doc\nstill second", "third"}));
  paragraphs.skip = 1;
  paragraphs.min_chars = 6;  // "third" is too short to count
  EXPECT_EQ(read_all(paragraphs), (std::vector<std::string>{"second doc\nstill second"}));
}

TEST(Corpus, JsonLinesWithAConfigurableField) {
  std::string path = write("docs.jsonl", "{\"text\": \"alpha\", \"id\": 1}\n{\"text\": \"beta\"}\n");
  EXPECT_EQ(read_all({path}), (std::vector<std::string>{"alpha", "beta"}));
  std::string other = write("other.jsonl", "{\"body\": \"gamma\"}\n");
  CorpusOptions field{other};
  field.text_field = "body";
  EXPECT_EQ(read_all(field), (std::vector<std::string>{"gamma"}));
  EXPECT_NE(corpus_error({other}).find("other.jsonl:1: no string field 'text' (set the embedder's text_field)"), std::string::npos);
  EXPECT_NE(corpus_error({write("bad.jsonl", "{\"text\": \"ok\"}\n{nope\n")}).find("bad.jsonl:2: not valid JSON"), std::string::npos);
}

TEST(Corpus, MediaWikiDumpPlainAndBzip2) {
  std::string xml = write("dump.xml", kDump);
  EXPECT_EQ(read_all({xml}), kDumpDocs);
  // The same dump compressed, as Wikipedia publishes pages-articles*.xml.bz2.
  std::string text(kDump);
  std::vector<char> packed(text.size() * 2 + 600);
  unsigned int packed_size = static_cast<unsigned int>(packed.size());
  ASSERT_EQ(BZ2_bzBuffToBuffCompress(packed.data(), &packed_size, text.data(), static_cast<unsigned int>(text.size()), 9, 0, 0), BZ_OK);
  std::string bz2 = write("dump.xml.bz2", std::string(packed.data(), packed_size));
  EXPECT_EQ(read_all({bz2}), kDumpDocs);
  EXPECT_NE(corpus_error({write("broken.xml.bz2", "BZh91AY&SY garbage")}).find("broken.xml.bz2: corrupt bzip2 data"), std::string::npos);
}

TEST(Corpus, MissingFileInvalidUtf8AndUnknownFormat) {
  EXPECT_NE(corpus_error({temp_path("none.txt")}).find("none.txt: cannot open the corpus"), std::string::npos);
  EXPECT_NE(corpus_error({write("latin1.txt", "caf\xe9\n")}).find("latin1.txt:1: invalid UTF-8"), std::string::npos);
  CorpusOptions odd{write("x.txt", "a"), "csv"};
  EXPECT_NE(corpus_error(odd).find("corpus format 'csv' is not one of"), std::string::npos);
}

TEST(WordPiece, HardStringsGiveTheExpectedIds) {
  // ids are line numbers
  std::string vocab = write("vocab.txt",
                            "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nquick\nbrown\nfox\n##es\nun\n##aff\n##able\n"
                            "cafe\n,\n.\n!\n\xe4\xb8\xad\n\xe5\x9b\xbd\nnaive\n$\n5\n##0\n");
  const Tokenizer wp = Tokenizer::from_vocab_txt(vocab);
  EXPECT_EQ(wp.encode("The Quick, brown FOXES!"), (std::vector<int64_t>{2, 5, 6, 14, 7, 8, 9, 16, 3}));
  EXPECT_EQ(wp.encode("Caf\xc3\xa9 na\xc3\xafve"), (std::vector<int64_t>{2, 13, 19, 3}));       // accents stripped
  EXPECT_EQ(wp.encode("\xe4\xb8\xad\xe5\x9b\xbd"), (std::vector<int64_t>{2, 17, 18, 3}));       // CJK split
  EXPECT_EQ(wp.encode("unaffable"), (std::vector<int64_t>{2, 10, 11, 12, 3}));                  // ## pieces
  EXPECT_EQ(wp.encode("$50."), (std::vector<int64_t>{2, 20, 21, 22, 15, 3}));                   // symbols split
  EXPECT_EQ(wp.encode("the xyz"), (std::vector<int64_t>{2, 5, 1, 3}));                          // unknown word
  EXPECT_EQ(wp.encode(std::string(101, 'a')), (std::vector<int64_t>{2, 1, 3}));                 // over 100 chars
  EXPECT_EQ(wp.encode(""), (std::vector<int64_t>{2, 3}));                                       // empty
  EXPECT_EQ(wp.encode("  \t\n\x01 the\xc2\xa0quick "), (std::vector<int64_t>{2, 5, 6, 3}));    // control, NBSP
  EXPECT_EQ(wp.encode("the quick brown fox", 4), (std::vector<int64_t>{2, 5, 6, 3}));           // truncated
  EXPECT_EQ(wp.encode("the [MASK] [CLS]x"), (std::vector<int64_t>{2, 5, 4, 2, 1, 3}));           // special tokens
  EXPECT_EQ(wp.encode("the [mask]"), (std::vector<int64_t>{2, 5, 1, 1, 1, 3}));                  // only as written
  EXPECT_THROW(Tokenizer::from_vocab_txt(write("novocab.txt", "a\nb\n")), TokenizerError);
  EXPECT_THROW(Tokenizer::from_vocab_txt(temp_path("missing_vocab.txt")), TokenizerError);
  const Tokenizer cased = Tokenizer::from_vocab_txt(vocab, /*lower_case=*/false);
  EXPECT_EQ(cased.encode("the Quick caf\xc3\xa9"), (std::vector<int64_t>{2, 5, 1, 1, 3}));     // no folding
}

namespace {

constexpr int64_t kHidden = 16, kHeads = 2, kInter = 24, kVocab = 30, kLayers = 2;

// A tiny random BERT checkpoint; eps 1e-5 so libtorch's TransformerEncoderLayer (fixed eps) can check it.
std::string tiny_checkpoint(const std::string& name, const std::string& config_override = "") {
  fs::path dir = temp_path(name);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << (config_override.empty()
      ? R"({"model_type": "bert", "vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 2,
           "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 40,
           "type_vocab_size": 2, "layer_norm_eps": 1e-5, "hidden_act": "gelu"})"
      : config_override);
  torch::manual_seed(7);
  std::map<std::string, at::Tensor> t{
      {"embeddings.word_embeddings.weight", torch::randn({kVocab, kHidden})},
      {"embeddings.position_embeddings.weight", torch::randn({40, kHidden})},
      {"embeddings.token_type_embeddings.weight", torch::randn({2, kHidden})},
      {"embeddings.LayerNorm.weight", torch::rand({kHidden}) + 0.5},
      {"embeddings.LayerNorm.bias", torch::randn({kHidden})}};
  for (int64_t i = 0; i < kLayers; ++i) {
    std::string p = "encoder.layer." + std::to_string(i) + ".";
    for (const char* m : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      t[p + m + ".weight"] = torch::randn({kHidden, kHidden}) * 0.3;
      t[p + m + ".bias"] = torch::randn({kHidden}) * 0.1;
    }
    t[p + "attention.output.LayerNorm.weight"] = torch::rand({kHidden}) + 0.5;
    t[p + "attention.output.LayerNorm.bias"] = torch::randn({kHidden}) * 0.1;
    t[p + "intermediate.dense.weight"] = torch::randn({kInter, kHidden}) * 0.3;
    t[p + "intermediate.dense.bias"] = torch::randn({kInter}) * 0.1;
    t[p + "output.dense.weight"] = torch::randn({kHidden, kInter}) * 0.3;
    t[p + "output.dense.bias"] = torch::randn({kHidden}) * 0.1;
    t[p + "output.LayerNorm.weight"] = torch::rand({kHidden}) + 0.5;
    t[p + "output.LayerNorm.bias"] = torch::randn({kHidden}) * 0.1;
  }
  attnbench::save_safetensors((dir / "model.safetensors").string(), t);
  return dir.string();
}

std::string model_error(const std::string& dir) {
  try {
    BertModel(dir, c10::kCPU, at::kFloat);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Bert, TinyCheckpointEqualsAnIndependentEncoder) {
  std::string dir = tiny_checkpoint("tiny_bert");
  BertModel model(dir, c10::kCPU, at::kFloat);
  at::Tensor ids = torch::randint(0, kVocab, {3, 9}, torch::kLong);
  at::Tensor ours = model.forward(ids);
  ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{3, 9, kHidden}));

  attnbench::TensorFile f = attnbench::load_safetensors(dir + "/model.safetensors");
  auto w = [&](const std::string& name) { return f.tensors.at(name); };
  torch::NoGradGuard no_grad;
  at::Tensor x = w("embeddings.word_embeddings.weight").index_select(0, ids.flatten()).view({3, 9, kHidden}) +
                 w("embeddings.position_embeddings.weight").narrow(0, 0, 9) + w("embeddings.token_type_embeddings.weight")[0];
  x = torch::layer_norm(x, {kHidden}, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), 1e-5);
  x = x.transpose(0, 1);  // (L, S, H) for libtorch's encoder layer
  for (int64_t i = 0; i < kLayers; ++i) {
    std::string p = "encoder.layer." + std::to_string(i) + ".";
    torch::nn::TransformerEncoderLayer layer(
        torch::nn::TransformerEncoderLayerOptions(kHidden, kHeads).dim_feedforward(kInter).dropout(0.0).activation(torch::kGELU));
    layer->eval();
    layer->self_attn->in_proj_weight.copy_(torch::cat({w(p + "attention.self.query.weight"), w(p + "attention.self.key.weight"),
                                                       w(p + "attention.self.value.weight")}));
    layer->self_attn->in_proj_bias.copy_(torch::cat({w(p + "attention.self.query.bias"), w(p + "attention.self.key.bias"),
                                                     w(p + "attention.self.value.bias")}));
    layer->self_attn->out_proj->weight.copy_(w(p + "attention.output.dense.weight"));
    layer->self_attn->out_proj->bias.copy_(w(p + "attention.output.dense.bias"));
    layer->norm1->weight.copy_(w(p + "attention.output.LayerNorm.weight"));
    layer->norm1->bias.copy_(w(p + "attention.output.LayerNorm.bias"));
    layer->linear1->weight.copy_(w(p + "intermediate.dense.weight"));
    layer->linear1->bias.copy_(w(p + "intermediate.dense.bias"));
    layer->linear2->weight.copy_(w(p + "output.dense.weight"));
    layer->linear2->bias.copy_(w(p + "output.dense.bias"));
    layer->norm2->weight.copy_(w(p + "output.LayerNorm.weight"));
    layer->norm2->bias.copy_(w(p + "output.LayerNorm.bias"));
    x = layer->forward(x);
  }
  EXPECT_LT((ours - x.transpose(0, 1)).abs().max().item<double>(), 1e-5);
}

TEST(Bert, BrokenCheckpointsAreClearErrors) {
  EXPECT_NE(model_error(temp_path("no_such_model")).find("config.json: cannot open"), std::string::npos);
  std::string t5 = tiny_checkpoint("t5", R"({"model_type": "t5", "vocab_size": 30})");
  EXPECT_NE(model_error(t5).find("model_type 't5' is not supported; supported: bert, distilbert, roberta, xlm-roberta, gpt2"),
            std::string::npos);
  std::string gpt = tiny_checkpoint("gpt", R"({"model_type": "gpt2", "vocab_size": 30})");
  EXPECT_NE(model_error(gpt).find("config has no integer 'n_embd'"), std::string::npos);
  std::string swish = tiny_checkpoint("swish", R"({"model_type": "bert", "vocab_size": 30, "hidden_size": 16,
      "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "hidden_act": "swish"})");
  EXPECT_NE(model_error(swish).find("hidden_act 'swish' is not supported"), std::string::npos);

  std::string dir = tiny_checkpoint("truncated");
  std::ofstream(dir + "/model.safetensors", std::ios::binary | std::ios::trunc) << std::string("\x40\x00\x00\x00\x00\x00\x00\x00{", 9);
  EXPECT_NE(model_error(dir).find("bad header: its length 64 runs past the end"), std::string::npos) << model_error(dir);

  std::string missing = tiny_checkpoint("missing");
  attnbench::TensorFile f = attnbench::load_safetensors(missing + "/model.safetensors");
  f.tensors.erase("encoder.layer.1.output.dense.bias");
  attnbench::save_safetensors(missing + "/model.safetensors", f.tensors);
  EXPECT_NE(model_error(missing).find("missing tensor 'encoder.layer.1.output.dense.bias'"), std::string::npos);
}

#include "cli/run_study.h"
#include "plugins/loader.h"

#include <sstream>


TEST(BertEmbedder, RunsAStudyCachesAndExplainsShortCorpora) {
  std::string model = tiny_checkpoint("embedder_model");
  std::ofstream(model + "/vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\non\nmat\n.\n";
  std::string corpus = write("cats.txt", "the cat sat on the mat.\n\nthe cat.\n\nthe mat sat on the cat.\n");
  std::string cache = temp_path("embedding_cache");
  fs::remove_all(cache);
  std::string yaml = "name: bert_study\ndata:\n  embedder: bert\n  params: {model: " + model + ", corpus: " + corpus +
                     ", cache_dir: " + cache + "}\n  samples: 2\n  seq_len: 6\n"
                     "attention: [{name: mha, plugin: mha, params: {heads: 2}}]\n"
                     "run: {modes: [full, consistency], seed_len: 2, horizon: 2}\n"
                     "measure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n";
  std::string results = temp_path("bert_study.jsonl");
  fs::remove(results);
  for (int run = 0; run < 2; ++run) {
    attnbench::Study study = attnbench::load_study_text(yaml, "bert.yaml", attnbench::plugin_aware_options({}));
    study.results_path = results;
    attnbench::RunOptions options;
    options.force = true;
    std::ostringstream out;
    EXPECT_EQ(attnbench::run_study(study, options, out), 0) << out.str();
    EXPECT_NE(out.str().find("data: embedder_model on cats.txt (2 documents of 6+ tokens, 1 shorter skipped) via bert (E=16)"),
              std::string::npos) << out.str();
  }
  auto lines = read_jsonl(results);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["embedder"]["details"]["cached"], false);
  EXPECT_EQ(lines[1]["embedder"]["details"]["cached"], true);  // the second run read the cache
  EXPECT_EQ(lines[1]["embedder"]["embed_dim"], 16);

  std::string more = yaml;
  more.replace(more.find("samples: 2"), 10, "samples: 3");
  attnbench::Study study = attnbench::load_study_text(more, "bert.yaml", attnbench::plugin_aware_options({}));
  study.results_path = results;
  std::ostringstream out;
  EXPECT_EQ(attnbench::run_study(study, {}, out), 1);
  EXPECT_NE(read_jsonl(results).back()["message"].get<std::string>().find(
                "has 2 documents of at least 6 tokens (of 3 read); 3 are needed: lower data.samples or data.seq_len"),
            std::string::npos);
}
