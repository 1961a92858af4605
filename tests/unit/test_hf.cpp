// Asserts, for each Hugging Face family attnbench reads (bert, distilbert, roberta, xlm-roberta, gpt2),
// against the fixtures under tests/fixtures/hf/ that transformers made (scripts/make_hf_fixtures.py):
//  - the token ids of every hard text of texts.json (accents, combining marks, CJK, emoji sequences,
//    zero-width and control characters, long words, whitespace runs, empty text, special tokens
//    written in the text, wikitext) equal AutoTokenizer's exactly;
//  - the last hidden state of each text (truncated as truncation=True does) is within 1e-4 of
//    AutoModel's in fp32;
//  - a checkpoint without tokenizer.json, read from its older files (vocab.txt, vocab.json and
//    merges.txt), gives the same ids;
//  - added tokens' single_word, lstrip, rstrip and normalized options give the library's ids;
//  - the pipeline a tokenizer.json states is the one run: the XLM-R fixture with the normalizer and
//    pre-tokenizer transformers 5 builds for XLMRobertaTokenizer (and writes when it saves) gives
//    transformers 5's ids, which differ from the file's own for exactly three hard texts;
//  - the `hf` embedder runs a study with each family and reports its model_type and tokenizer;
//  - an unsupported model_type, tokenizer part or missing tokenizer is an error naming it and the choices.
#include "model.h"
#include "test_util.h"
#include "tokenizer.h"
#include <attnbench/support/safetensors.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/run_study.h"
#include "plugins/loader.h"

namespace fs = std::filesystem;
using namespace attnbench::text;
using attnbench::testing::read_jsonl;
using attnbench::testing::temp_path;

namespace {

const fs::path kFixtures = ATTNBENCH_HF_FIXTURES;
constexpr int64_t kMaxLength = 64;  // scripts/make_hf_fixtures.py's MAX_LENGTH

std::vector<std::string> texts() {
  std::ifstream in(kFixtures / "texts.json");
  return nlohmann::json::parse(in).get<std::vector<std::string>>();
}

std::vector<int64_t> expected_ids(const attnbench::TensorFile& f, size_t i) {
  at::Tensor t = f.tensors.at("ids_" + std::to_string(i)).to(at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

std::string printable(const std::vector<int64_t>& ids) {
  std::ostringstream out;
  for (int64_t id : ids) out << id << " ";
  return out.str();
}

class Family : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return kFixtures / GetParam(); }
  attnbench::TensorFile expected() const { return attnbench::load_safetensors((dir() / "expected.safetensors").string()); }
  Tokenizer tokenizer() const { return Tokenizer::from_directory(dir().string(), read_model_config(dir().string()).model_type); }
};

TEST_P(Family, TokenIdsEqualTransformers) {
  const Tokenizer t = tokenizer();
  EXPECT_EQ(t.source().rfind("tokenizer.json", 0), 0u) << t.source();
  const attnbench::TensorFile f = expected();
  const auto all = texts();
  for (size_t i = 0; i < all.size(); ++i) {
    const std::vector<int64_t> want = expected_ids(f, i);
    EXPECT_EQ(t.encode(all[i]), want) << GetParam() << " text " << i << ": " << all[i] << "\n  ours " << printable(t.encode(all[i]))
                                      << "\n  hf   " << printable(want);
  }
}

TEST_P(Family, LastHiddenStateWithin1e4OfTransformers) {
  const Tokenizer t = tokenizer();
  const auto model = load_model(dir().string(), c10::kCPU, at::kFloat);
  const attnbench::TensorFile f = expected();
  const auto all = texts();
  double worst = 0;
  size_t checked = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::vector<int64_t> ids = t.encode(all[i], kMaxLength);
    const auto it = f.tensors.find("hidden_" + std::to_string(i));
    if (ids.empty()) {  // GPT-2 adds no special tokens: the empty text has no state
      EXPECT_EQ(it, f.tensors.end());
      continue;
    }
    ASSERT_NE(it, f.tensors.end()) << "text " << i;
    at::Tensor ours = model->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0];
    ASSERT_EQ(ours.sizes(), it->second.sizes()) << GetParam() << " text " << i;
    const double diff = (ours - it->second).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4) << GetParam() << " text " << i;
    worst = std::max(worst, diff);
    ++checked;
  }
  EXPECT_GE(checked, all.size() - 1);
  // The random weights are large enough that a wrong mask or position moves the state by far more.
  std::cout << GetParam() << ": " << checked << " texts, max abs diff " << worst << "\n";
}

TEST_P(Family, TruncationKeepsTheSpecialTokens) {
  const Tokenizer t = tokenizer();
  const std::string text = texts()[1];
  const std::vector<int64_t> whole = t.encode(text), cut = t.encode(text, 10);
  ASSERT_GT(whole.size(), 10u);
  ASSERT_EQ(cut.size(), 10u);
  // The text's tokens are cut, the closing special token (none for GPT-2) stays.
  std::vector<int64_t> want(whole.begin(), whole.begin() + 10);
  if (GetParam() != "gpt2") want.back() = whole.back();
  EXPECT_EQ(cut, want);
}

INSTANTIATE_TEST_SUITE_P(Hf, Family, ::testing::Values("bert", "distilbert", "roberta", "xlm-roberta", "gpt2"),
                         [](const auto& info) { return info.param == "xlm-roberta" ? std::string("xlm_roberta") : info.param; });

// A copy of a fixture without tokenizer.json, read from the files transformers' slow tokenizers use.
std::string without_tokenizer_json(const std::string& family) {
  const fs::path copy = temp_path("legacy_" + family);
  fs::remove_all(copy);
  fs::create_directories(copy);
  for (const auto& entry : fs::directory_iterator(kFixtures / family)) {
    if (entry.path().filename() != "tokenizer.json") fs::copy_file(entry.path(), copy / entry.path().filename());
  }
  return copy.string();
}

TEST(HfLegacyFiles, GiveTheIdsOfTokenizerJson) {
  for (const std::string family : {"bert", "distilbert", "roberta", "gpt2"}) {
    const std::string legacy = without_tokenizer_json(family);
    const Tokenizer t = Tokenizer::from_directory(legacy, read_model_config(legacy).model_type);
    EXPECT_EQ(t.source(), family == "bert" || family == "distilbert" ? "vocab.txt (WordPiece)" : "vocab.json + merges.txt (BPE)");
    const attnbench::TensorFile f = attnbench::load_safetensors((kFixtures / family / "expected.safetensors").string());
    const auto all = texts();
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(t.encode(all[i]), expected_ids(f, i)) << family << " text " << i << ": " << all[i];
  }
}

// Added tokens' options, with the ids the tokenizers library (0.19.1 and 0.23.3 alike) gives for this
// tokenizer.json.
TEST(HfAddedTokens, SingleWordStripAndNormalizedAsTheLibrary) {
  const std::string path = temp_path("added_tokens.json");
  std::ofstream(path) << R"({"added_tokens": [
    {"id": 12, "content": "<x>", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 13, "content": "[R]", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": true},
    {"id": 14, "content": "[L]", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true},
    {"id": 15, "content": "HeLLo", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}],
  "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
    {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "b": 4, "##b": 5, "x": 6, "<": 7, ">": 8, "[": 9, "]": 10, "hello": 11}}})";
  const Tokenizer t = Tokenizer::from_json_file(path);
  EXPECT_EQ(t.encode("a<x>b"), (std::vector<int64_t>{1, 3, 7, 6, 8, 4, 2}));  // single_word: inside a word it is text
  EXPECT_EQ(t.encode("a <x> b"), (std::vector<int64_t>{1, 3, 12, 4, 2}));
  EXPECT_EQ(t.encode("a<x>"), (std::vector<int64_t>{1, 3, 7, 6, 8, 2}));
  EXPECT_EQ(t.encode("<x><x> <x>"), (std::vector<int64_t>{1, 12, 12, 12, 2}));
  EXPECT_EQ(t.encode("ab  [R]  b"), (std::vector<int64_t>{1, 3, 5, 13, 4, 2}));
  EXPECT_EQ(t.encode("a  [L]  b"), (std::vector<int64_t>{1, 3, 14, 4, 2}));
  EXPECT_EQ(t.encode("[R][L]"), (std::vector<int64_t>{1, 13, 14, 2}));
  EXPECT_EQ(t.encode("HELLO hello"), (std::vector<int64_t>{1, 15, 15, 2}));  // matched after lower-casing
}

// transformers 5's XLMRobertaTokenizer keeps a tokenizer.json's vocabulary and character map but runs its
// own normalizer (Precompiled alone: no Strip, no Replace of space runs) and pre-tokenizer (WhitespaceSplit,
// then Metaspace), and save_pretrained writes that pipeline. attnbench runs whichever pipeline the file
// states; the ids below are transformers 5.17.0's AutoTokenizer's for the fixture and tokenizers 0.23.3's
// for the rewritten file, which agree.
TEST(HfXlmRoberta, TheFileStatesThePipelineTransformers5WritesItsOwn) {
  std::ifstream in(kFixtures / "xlm-roberta" / "tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["normalizer"]["normalizers"][0]["type"], "Precompiled");
  j["normalizer"] = j["normalizer"]["normalizers"][0];
  j["pre_tokenizer"] = nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
    {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true}]})");
  const std::string path = temp_path("xlm_roberta_transformers5.json");
  std::ofstream(path) << j.dump();
  const Tokenizer t = Tokenizer::from_json_file(path);
  const std::map<size_t, std::vector<int64_t>> changed = {
      // "\r" is a word character to Metaspace, whitespace to WhitespaceSplit
      {9, {0, 43, 164, 10, 5, 27, 4, 11, 208, 40, 114, 22, 13, 361, 139, 5, 4, 11, 20, 143, 5, 98, 28, 20, 10, 115, 4, 133, 84, 4, 29, 4,
           217, 284, 389, 391, 2}},
      // U+2003, U+2028, U+2029 and U+0085 (no rule in the fixture's character map) split words instead of being unknown
      {17, {0, 4, 224, 88, 88, 361, 139, 5, 146, 160, 176, 143, 22, 20, 115, 4, 13, 47, 4, 102, 88, 13, 40, 399, 18, 20, 154, 253, 257, 4,
            133, 13, 348, 18, 20, 399, 18, 20, 154, 253, 4, 10, 210, 11, 7, 2}},
      // <mask>'s lstrip takes the spaces before it, which no Replace has turned into a metaspace
      {24, {0, 4, 394, 20, 5, 115, 361, 204, 82, 146, 401, 4, 29, 401, 4, 29, 4, 398, 394, 378, 185, 3, 397, 365, 7, 2}}};
  const attnbench::TensorFile f = attnbench::load_safetensors((kFixtures / "xlm-roberta" / "expected.safetensors").string());
  const auto all = texts();
  for (size_t i = 0; i < all.size(); ++i) {
    const auto it = changed.find(i);
    if (it == changed.end()) {
      EXPECT_EQ(t.encode(all[i]), expected_ids(f, i)) << "text " << i << ": " << all[i];
    } else {
      EXPECT_EQ(t.encode(all[i]), it->second) << "text " << i << ": " << all[i] << "\n  ours " << printable(t.encode(all[i]));
      EXPECT_NE(expected_ids(f, i), it->second) << "text " << i;  // the file's own pipeline gives other ids
    }
  }
}

std::string tokenizer_error(const std::string& dir, const std::string& type = "bert") {
  try {
    Tokenizer::from_directory(dir, type);
  } catch (const TokenizerError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfErrors, UnsupportedPartsAndMissingFilesAreNamed) {
  const fs::path dir = temp_path("odd_tokenizer");
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_NE(tokenizer_error(dir.string()).find("no tokenizer: tokenizer.json, vocab.txt (WordPiece) or vocab.json with merges.txt (BPE) is needed"),
            std::string::npos);
  std::ifstream in(kFixtures / "roberta" / "tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j["normalizer"] = {{"type", "Fancy"}};
  std::ofstream(dir / "tokenizer.json") << j.dump();
  EXPECT_NE(tokenizer_error(dir.string()).find("tokenizer.json: normalizer: normalizer 'Fancy' is not supported (supported: BertNormalizer"),
            std::string::npos) << tokenizer_error(dir.string());
  j["normalizer"] = nullptr;
  j["model"]["type"] = "WordLevel";
  std::ofstream(dir / "tokenizer.json", std::ios::trunc) << j.dump();
  EXPECT_NE(tokenizer_error(dir.string()).find("model 'WordLevel' is not supported (supported: WordPiece, BPE, Unigram)"), std::string::npos);
  j["model"]["type"] = "BPE";
  j["model"]["merges"].push_back("nosuch token");
  std::ofstream(dir / "tokenizer.json", std::ios::trunc) << j.dump();
  EXPECT_NE(tokenizer_error(dir.string()).find("names a token that is not in the vocabulary"), std::string::npos);
  std::ofstream(dir / "tokenizer.json", std::ios::trunc) << "{not json";
  EXPECT_NE(tokenizer_error(dir.string()).find("tokenizer.json: not a JSON object"), std::string::npos);
}

std::string forward_error(const std::string& family, const at::Tensor& ids) {
  try {
    load_model((kFixtures / family).string(), c10::kCPU, at::kFloat)->forward(ids);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfErrors, IdsOutsideTheVocabularyAndTooManyPositionsAreNamed) {
  EXPECT_EQ(forward_error("gpt2", at::tensor(std::vector<int64_t>{5, 400}, at::kLong).view({1, 2})),
            "gpt2: token id 400 is outside the model's 400-token vocabulary: the tokenizer files do not belong to this checkpoint");
  EXPECT_EQ(forward_error("roberta", at::zeros({1, 65}, at::kLong)),  // 66 positions, the first two before the text
            "roberta: 65 tokens exceed the model's 64 positions; lower data.seq_len");
  EXPECT_EQ(forward_error("roberta", at::zeros({1, 64}, at::kLong)), "(no error)");
}

TEST(HfEmbedder, RunsAStudyWithEveryFamily) {
  const std::string cache = temp_path("hf_cache");
  fs::remove_all(cache);
  for (const std::string family : {"bert", "distilbert", "roberta", "xlm-roberta", "gpt2"}) {
    const std::string yaml = "name: hf_" + family + "\ndata:\n  embedder: hf\n  params: {model: " + (kFixtures / family).string() +
                             ", corpus: " + std::string(ATTNBENCH_SOURCE_DIR) + "/data/wiki_sample.xml, cache_dir: " + cache +
                             "}\n  samples: 2\n  seq_len: 32\nattention: [{name: mha, plugin: mha, params: {heads: 2}}]\n"
                             "run: {modes: [full]}\nmeasure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n";
    attnbench::Study study = attnbench::load_study_text(yaml, "hf.yaml", attnbench::plugin_aware_options({}));
    study.results_path = temp_path("hf_" + family + ".jsonl");
    fs::remove(study.results_path);
    std::ostringstream out;
    EXPECT_EQ(attnbench::run_study(study, {}, out), 0) << out.str();
    auto lines = read_jsonl(study.results_path);
    ASSERT_EQ(lines.size(), 1u) << family;
    EXPECT_EQ(lines[0]["status"], "ok") << lines[0].dump();
    EXPECT_EQ(lines[0]["embedder"]["plugin"], "hf");
    EXPECT_EQ(lines[0]["embedder"]["embed_dim"], 8);
    EXPECT_EQ(lines[0]["embedder"]["details"]["model_type"], family);
    EXPECT_EQ(lines[0]["embedder"]["details"]["tokenizer"].get<std::string>().rfind("tokenizer.json (", 0), 0u);
  }
}

}  // namespace
