#include "tokenizer.h"

#include "tokenizer_parts.h"
#include "unicode.h"

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace attnbench::text {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(path + ": cannot open");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw TokenizerError(path + ": not a JSON object");
  return j;
}

bool flag(const nlohmann::json& j, const char* key, bool fallback) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

std::unordered_map<std::string, int64_t> vocab_map(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw TokenizerError(where + ": 'vocab' must be an object of token: id");
  std::unordered_map<std::string, int64_t> vocab;
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) throw TokenizerError(where + ": the id of '" + token + "' is not an integer");
    vocab.emplace(token, id.get<int64_t>());
  }
  return vocab;
}

// Merges as "a b" strings (tokenizers before 0.20, merges.txt) or [a, b] pairs.
std::pair<std::string, std::string> parse_merge(const nlohmann::json& m, size_t index, const std::string& where) {
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space != std::string::npos && s.find(' ', space + 1) == std::string::npos) return {s.substr(0, space), s.substr(space + 1)};
  }
  throw TokenizerError(where + ": merge " + std::to_string(index + 1) + " is not a pair of tokens");
}

std::unique_ptr<TokenModel> model_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw TokenizerError(where + ": no model object");
  std::string type = j.value("type", "");
  if (type.empty()) {  // files written before the field existed
    type = j.contains("merges") ? "BPE" : j.contains("vocab") && j["vocab"].is_array() ? "Unigram" : "WordPiece";
  }
  if (type == "WordPiece") {
    return make_wordpiece(vocab_map(j.value("vocab", nlohmann::json()), where), j.value("unk_token", "[UNK]"),
                          j.value("continuing_subword_prefix", "##"), j.value("max_input_chars_per_word", int64_t{100}), where);
  }
  if (type == "BPE") {
    if (!j.value("dropout", nlohmann::json()).is_null()) throw TokenizerError(where + ": BPE dropout is random; attnbench needs it null");
    BpeOptions options;
    auto optional_text = [&](const char* key) {
      return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    if (j.contains("unk_token") && j["unk_token"].is_string()) options.unk_token = j["unk_token"].get<std::string>();
    options.continuing_subword_prefix = optional_text("continuing_subword_prefix");
    options.end_of_word_suffix = optional_text("end_of_word_suffix");
    options.fuse_unk = flag(j, "fuse_unk", false);
    options.byte_fallback = flag(j, "byte_fallback", false);
    options.ignore_merges = flag(j, "ignore_merges", false);
    std::vector<std::pair<std::string, std::string>> merges;
    const nlohmann::json& list = j.value("merges", nlohmann::json::array());
    if (!list.is_array()) throw TokenizerError(where + ": 'merges' must be a list");
    for (size_t i = 0; i < list.size(); ++i) merges.push_back(parse_merge(list[i], i, where));
    return make_bpe(vocab_map(j.value("vocab", nlohmann::json()), where), merges, options, where);
  }
  if (type == "Unigram") {
    const nlohmann::json& list = j.value("vocab", nlohmann::json());
    if (!list.is_array()) throw TokenizerError(where + ": Unigram 'vocab' must be a list of [piece, score]");
    std::vector<std::pair<std::string, double>> pieces;
    for (const auto& entry : list) {
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
        throw TokenizerError(where + ": Unigram vocab entry " + std::to_string(pieces.size()) + " is not [piece, score]");
      }
      pieces.emplace_back(entry[0].get<std::string>(), entry[1].get<double>());
    }
    std::optional<int64_t> unk;
    if (j.contains("unk_id") && j["unk_id"].is_number_integer()) unk = j["unk_id"].get<int64_t>();
    return make_unigram(std::move(pieces), unk, flag(j, "byte_fallback", false), where);
  }
  throw TokenizerError(where + ": model '" + type + "' is not supported (supported: WordPiece, BPE, Unigram)");
}

std::string special_content(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) return value["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::add_token(AddedToken token) {
  if (token.content.empty()) return;
  for (const AddedToken& t : added_) {
    if (t.content == token.content) return;
  }
  added_.push_back(std::move(token));
}

namespace {

struct Piece {
  std::string text;
  int64_t id = -1;  // an added token's id, or -1 for text
  bool at_start = false;
};

// Splits `text` at the added tokens (leftmost, then longest match; lstrip/rstrip take the whitespace
// beside a token with it; single_word tokens only between non-word characters), as tokenizers'
// AddedVocabulary::find_matches does. `contents` holds each token as matched (normalized or not).
std::vector<Piece> split_added(const std::string& text, bool at_start, const std::vector<const AddedToken*>& tokens,
                               const std::vector<std::string>& contents) {
  std::vector<Piece> out;
  auto is_word = [](char32_t cp) { return cp == '_' || unicode::is_letter(cp) || unicode::is_number(cp); };
  size_t last = 0, at = 0;
  while (at < text.size()) {
    size_t best = tokens.size();
    for (size_t t = 0; t < tokens.size(); ++t) {
      const std::string& c = contents[t];
      if (c.empty() || text.compare(at, c.size(), c) != 0) continue;
      if (best == tokens.size() || c.size() > contents[best].size()) best = t;
    }
    if (best == tokens.size()) {
      ++at;
      continue;
    }
    size_t begin = at, end = at + contents[best].size();
    const AddedToken& token = *tokens[best];
    if (token.single_word) {
      const std::vector<char32_t> before = unicode::decode(text.substr(0, begin)), after = unicode::decode(text.substr(end));
      if ((!before.empty() && is_word(before.back())) || (!after.empty() && is_word(after.front()))) {
        at = end;  // the library's matches do not overlap: the next one starts after this one
        continue;
      }
    }
    if (token.lstrip) {
      const std::vector<char32_t> before = unicode::decode(text.substr(last, begin - last));
      size_t strip = 0;
      for (auto it = before.rbegin(); it != before.rend() && unicode::is_whitespace(*it); ++it) strip += unicode::encode(*it).size();
      begin -= strip;
    }
    if (token.rstrip) {
      for (char32_t cp : unicode::decode(text.substr(end))) {
        if (!unicode::is_whitespace(cp)) break;
        end += unicode::encode(cp).size();
      }
    }
    if (begin > last) out.push_back({text.substr(last, begin - last), -1, at_start && last == 0});
    out.push_back({"", token.id, false});
    last = at = end;
  }
  if (last < text.size()) out.push_back({text.substr(last), -1, at_start && last == 0});
  return out;
}

}  // namespace

void Tokenizer::content_ids(const std::string& input, std::vector<int64_t>& ids) const {
  std::vector<const AddedToken*> raw, normalized;
  std::vector<std::string> raw_contents, normalized_contents;
  for (const AddedToken& t : added_) {
    if (t.normalized && normalizer_) {
      normalized.push_back(&t);
      normalized_contents.push_back(normalizer_->normalize(t.content));
    } else {
      raw.push_back(&t);
      raw_contents.push_back(t.content);
    }
  }
  for (const Piece& piece : split_added(unicode::valid(input), true, raw, raw_contents)) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    const std::string text = normalizer_ ? normalizer_->normalize(piece.text) : piece.text;
    for (const Piece& part : split_added(text, piece.at_start, normalized, normalized_contents)) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      std::vector<std::string> words;
      if (pre_tokenizer_) {
        pre_tokenizer_->split(part.text, part.at_start, words);
      } else if (!part.text.empty()) {
        words.push_back(part.text);
      }
      for (const std::string& word : words) model_->encode(word, ids);
    }
  }
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_length) const {
  std::vector<int64_t> content;
  content_ids(text, content);
  const auto specials = static_cast<int64_t>(prefix_.size() + suffix_.size());
  if (max_length > 0 && static_cast<int64_t>(content.size()) > max_length - specials) {
    content.resize(static_cast<size_t>(std::max<int64_t>(0, max_length - specials)));
  }
  std::vector<int64_t> ids(prefix_);
  ids.insert(ids.end(), content.begin(), content.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

namespace {

// The ids a post-processor puts before and after a single text.
void post_processor_ids(const nlohmann::json& j, const std::string& where, std::vector<int64_t>& prefix, std::vector<int64_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = j.is_object() ? j.value("type", "") : "";
  auto token_id = [&](const char* key) -> int64_t {
    const nlohmann::json& pair = j.value(key, nlohmann::json());
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer()) {
      throw TokenizerError(where + ": " + type + " needs '" + key + "' as [token, id]");
    }
    return pair[1].get<int64_t>();
  };
  if (type == "ByteLevel") return;  // offsets only
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    prefix.insert(prefix.begin(), token_id("cls"));
    suffix.push_back(token_id("sep"));
    return;
  }
  if (type == "TemplateProcessing") {
    const nlohmann::json& single = j.value("single", nlohmann::json());
    const nlohmann::json& specials = j.value("special_tokens", nlohmann::json::object());
    if (!single.is_array()) throw TokenizerError(where + ": TemplateProcessing has no list 'single'");
    std::vector<int64_t> before, after;
    bool seen_sequence = false;
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        if (seen_sequence) throw TokenizerError(where + ": TemplateProcessing's single template names the text twice");
        seen_sequence = true;
        continue;
      }
      const std::string name = item.contains("SpecialToken") ? item["SpecialToken"].value("id", "") : "";
      if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
        throw TokenizerError(where + ": TemplateProcessing's special token '" + name + "' has no ids");
      }
      for (const auto& id : specials[name]["ids"]) (seen_sequence ? after : before).push_back(id.get<int64_t>());
    }
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
    return;
  }
  if (type == "Sequence") {
    for (const auto& p : j.value("processors", nlohmann::json::array())) post_processor_ids(p, where, prefix, suffix);
    return;
  }
  throw TokenizerError(where + ": post-processor '" + type + "' is not supported (supported: TemplateProcessing, " +
                       "BertProcessing, RobertaProcessing, ByteLevel, Sequence)");
}

}  // namespace

Tokenizer Tokenizer::from_json_file(const std::string& path) {
  try {
    return from_json(read_json(path), path);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type
    throw TokenizerError(path + ": " + e.what());
  }
}

Tokenizer Tokenizer::from_json(const nlohmann::json& j, const std::string& path) {
  Tokenizer t;
  t.model_ = model_from_json(j.value("model", nlohmann::json()), path + ": model");
  t.normalizer_ = make_normalizer(j.value("normalizer", nlohmann::json()), path + ": normalizer");
  t.pre_tokenizer_ = make_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), path + ": pre_tokenizer");
  post_processor_ids(j.value("post_processor", nlohmann::json()), path + ": post_processor", t.prefix_, t.suffix_);
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id") || !a["id"].is_number_integer()) {
      throw TokenizerError(path + ": added_tokens entries need a string 'content' and an integer 'id'");
    }
    AddedToken token;
    token.content = a["content"].get<std::string>();
    token.id = a["id"].get<int64_t>();
    token.single_word = flag(a, "single_word", false);
    token.lstrip = flag(a, "lstrip", false);
    token.rstrip = flag(a, "rstrip", false);
    token.special = flag(a, "special", false);
    token.normalized = flag(a, "normalized", !token.special);
    t.add_token(std::move(token));
  }
  t.source_ = std::string("tokenizer.json (") + t.model_->kind() + ")";
  return t;
}

Tokenizer Tokenizer::from_vocab_txt(const std::string& path, bool lower_case) {
  Tokenizer t;
  std::unordered_map<std::string, int64_t> vocab = read_vocab_txt(path);
  for (const char* special : {"[UNK]", "[CLS]", "[SEP]"}) {
    if (!vocab.count(special)) throw TokenizerError(path + ": the vocabulary has no " + special + " token");
  }
  // transformers' converter makes the special tokens it knows added tokens, matched before normalizing.
  for (const char* special : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    auto it = vocab.find(special);
    if (it != vocab.end()) t.add_token({special, it->second});
  }
  t.prefix_ = {vocab.at("[CLS]")};
  t.suffix_ = {vocab.at("[SEP]")};
  t.model_ = make_wordpiece(std::move(vocab), "[UNK]", "##", 100, path);
  t.normalizer_ = bert_normalizer(true, true, lower_case, lower_case);
  t.pre_tokenizer_ = bert_pre_tokenizer();
  t.source_ = "vocab.txt (WordPiece)";
  return t;
}

Tokenizer Tokenizer::from_directory(const std::string& dir, const std::string& model_type) {
  try {
    return from_files(dir, model_type);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(dir + ": " + e.what());
  }
}

Tokenizer Tokenizer::from_files(const std::string& dir, const std::string& model_type) {
  const fs::path d(dir);
  if (fs::exists(d / "tokenizer.json")) return from_json_file((d / "tokenizer.json").string());
  nlohmann::json config = fs::exists(d / "tokenizer_config.json") ? read_json((d / "tokenizer_config.json").string()) : nlohmann::json::object();
  if (fs::exists(d / "vocab.txt")) {
    const bool lower = flag(config, "do_lower_case", true);
    Tokenizer t = from_vocab_txt((d / "vocab.txt").string(), lower);
    if (!flag(config, "tokenize_chinese_chars", true) || (config.contains("strip_accents") && config["strip_accents"].is_boolean())) {
      t.normalizer_ = bert_normalizer(true, flag(config, "tokenize_chinese_chars", true), flag(config, "strip_accents", lower), lower);
    }
    return t;
  }
  if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) {
    const std::string vocab_path = (d / "vocab.json").string(), merges_path = (d / "merges.txt").string();
    std::ifstream in(merges_path);
    std::vector<std::pair<std::string, std::string>> merges;
    std::string line;
    for (size_t n = 0; std::getline(in, line); ++n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if ((n == 0 && line.rfind("#version", 0) == 0) || line.empty()) continue;
      merges.push_back(parse_merge(line, merges.size(), merges_path));
    }
    Tokenizer t;
    t.model_ = make_bpe(vocab_map(read_json(vocab_path), vocab_path), merges, BpeOptions{}, vocab_path);
    t.pre_tokenizer_ = byte_level_pre_tokenizer(flag(config, "add_prefix_space", false));
    // The special tokens, as special_tokens_map.json (or the family's defaults) names them.
    nlohmann::json specials = fs::exists(d / "special_tokens_map.json") ? read_json((d / "special_tokens_map.json").string())
                                                                        : nlohmann::json::object();
    const bool roberta = model_type != "gpt2";
    auto special = [&](const char* key, const char* fallback) {
      std::string s = specials.contains(key) ? special_content(specials[key]) : "";
      return s.empty() ? std::string(fallback) : s;
    };
    std::vector<std::pair<std::string, bool>> names;  // content, lstrip
    if (roberta) {
      for (const char* key : {"bos_token", "pad_token", "eos_token", "unk_token"}) names.emplace_back(special(key, ""), false);
      names.emplace_back(special("cls_token", "<s>"), false);
      names.emplace_back(special("sep_token", "</s>"), false);
      const nlohmann::json mask = specials.value("mask_token", nlohmann::json());
      names.emplace_back(special("mask_token", "<mask>"), mask.is_object() ? flag(mask, "lstrip", true) : true);
    } else {
      for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) names.emplace_back(special(key, "<|endoftext|>"), false);
    }
    for (const auto& [content, lstrip] : names) {
      if (auto id = t.model_->id(content)) {
        AddedToken token{content, *id};
        token.lstrip = lstrip;
        t.add_token(token);
      }
    }
    if (roberta) {
      auto cls = t.model_->id(special("cls_token", "<s>")), sep = t.model_->id(special("sep_token", "</s>"));
      if (!cls || !sep) throw TokenizerError(vocab_path + ": the vocabulary has no " + special("cls_token", "<s>") + " or " + special("sep_token", "</s>"));
      t.prefix_ = {*cls};
      t.suffix_ = {*sep};
    }
    t.source_ = "vocab.json + merges.txt (BPE)";
    return t;
  }
  throw TokenizerError(dir + ": no tokenizer: tokenizer.json, vocab.txt (WordPiece) or vocab.json with merges.txt (BPE) " +
                       "is needed; AutoTokenizer.from_pretrained(...).save_pretrained('" + dir + "') writes tokenizer.json");
}

}  // namespace attnbench::text
