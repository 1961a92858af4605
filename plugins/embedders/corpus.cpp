#include "corpus.h"

#include <algorithm>

#include <attnbench/support/utf8.h>

#include <bzlib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

namespace attnbench::text {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Lines of a plain or bzip2-compressed file, read in chunks.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path), bz2_(ends_with(path, ".bz2")) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
      throw CorpusError(path + ": the corpus is not a regular file");
    }
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) throw CorpusError(path + ": cannot open the corpus (does it exist?)");
    if (bz2_) {
      int status = BZ_OK;
      bz_ = BZ2_bzReadOpen(&status, file_, 0, 0, nullptr, 0);
      if (status != BZ_OK) throw CorpusError(path + ": not a bzip2 stream");
    }
  }
  ~LineReader() {
    int status = BZ_OK;
    if (bz_) BZ2_bzReadClose(&status, bz_);
    if (file_) std::fclose(file_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool next(std::string& line) {
    line.clear();
    while (true) {
      size_t nl = buffer_.find('\n', pos_);
      if (nl != std::string::npos) {
        line.assign(buffer_, pos_, nl - pos_);
        pos_ = nl + 1;
        ++number_;
        return true;
      }
      if (eof_) {
        if (pos_ >= buffer_.size()) return false;
        line.assign(buffer_, pos_, std::string::npos);
        pos_ = buffer_.size();
        ++number_;
        return true;
      }
      buffer_.erase(0, pos_);
      pos_ = 0;
      fill();
    }
  }
  int64_t line_number() const { return number_; }

 private:
  void fill() {
    char chunk[1 << 16];
    int got = 0;
    if (bz2_) {
      int status = BZ_OK;
      got = BZ2_bzRead(&status, bz_, chunk, sizeof(chunk));
      if (status == BZ_STREAM_END) eof_ = true;
      else if (status != BZ_OK) throw CorpusError(path_ + ": corrupt bzip2 data (error " + std::to_string(status) + ")");
    } else {
      got = static_cast<int>(std::fread(chunk, 1, sizeof(chunk), file_));
      if (got == 0 && std::ferror(file_)) throw CorpusError(path_ + ": read error");
      if (got == 0) eof_ = true;
    }
    if (got > 0) buffer_.append(chunk, static_cast<size_t>(got));
  }

  std::string path_;
  bool bz2_;
  std::FILE* file_ = nullptr;
  BZFILE* bz_ = nullptr;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t number_ = 0;
};

// Removes every balanced `open ... close` span (nested ones included).
std::string drop_nested(const std::string& s, const std::string& open, const std::string& close) {
  std::string out;
  size_t i = 0;
  int depth = 0;
  while (i < s.size()) {
    if (s.compare(i, open.size(), open) == 0) {
      ++depth;
      i += open.size();
    } else if (depth > 0 && s.compare(i, close.size(), close) == 0) {
      --depth;
      i += close.size();
    } else {
      if (depth == 0) out += s[i];
      ++i;
    }
  }
  return out;
}

// [[target|label]] -> label, [[target]] -> target, [[File:...]] and [[Category:...]] -> nothing (links
// in a file's caption included). Links nest, and an article is the user's input: one pass with a stack
// of the open links, so time and memory stay linear in its length whatever the depth (recursing per
// link crashed on 40 000 nested [[).
std::string resolve_links(const std::string& s) {
  struct OpenLink {
    size_t start;  // where its text begins in `out`
    bool drop;
  };
  std::string out;
  std::vector<OpenLink> open;
  size_t dropping = 0;  // open links whose text goes: nothing inside them is written
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "[[") == 0) {
      std::string lower = s.substr(i + 2, 9);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const bool drop = lower.rfind("file:", 0) == 0 || lower.rfind("image:", 0) == 0 || lower.rfind("category:", 0) == 0;
      open.push_back({out.size(), drop});
      dropping += drop;
      i += 2;
    } else if (!open.empty() && s.compare(i, 2, "]]") == 0) {
      if (open.back().drop) {
        out.resize(open.back().start);
        --dropping;
      }
      open.pop_back();
      i += 2;
    } else if (!open.empty() && s[i] == '|') {
      out.resize(open.back().start);  // the label is what follows the last bar
      ++i;
    } else {
      if (dropping == 0) out += s[i];
      ++i;
    }
  }
  // Links the article never closes run to its end, as if closed there.
  for (auto link = open.rbegin(); link != open.rend(); ++link) {
    if (link->drop) out.resize(link->start);
  }
  return out;
}

// <ref ...>...</ref> and <ref .../> go. Scanned by hand: std::regex recurses per character and can
// exhaust the stack on long articles.
std::string drop_references(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t open = s.find("<ref", i);
    if (open == std::string::npos) break;
    out.append(s, i, open - i);
    size_t gt = s.find('>', open);
    if (gt == std::string::npos) {
      i = open;
      break;
    }
    if (s[gt - 1] == '/') {
      i = gt + 1;
      continue;
    }
    size_t close = s.find("</ref>", gt);
    i = close == std::string::npos ? s.size() : close + 6;
  }
  if (i < s.size()) out.append(s, i, std::string::npos);
  return out;
}

// [http://x label] -> label, [http://x] -> nothing.
std::string resolve_external_links(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    bool link = s[i] == '[' && (s.compare(i + 1, 7, "http://") == 0 || s.compare(i + 1, 8, "https://") == 0 ||
                                s.compare(i + 1, 6, "ftp://") == 0);
    size_t close = link ? s.find(']', i) : std::string::npos;
    if (close == std::string::npos) {
      out += s[i++];
      continue;
    }
    size_t space = s.find(' ', i);
    if (space != std::string::npos && space < close) out.append(s, space + 1, close - space - 1);
    i = close + 1;
  }
  return out;
}

// '' and ''' (italic, bold) go; a single apostrophe stays.
std::string drop_emphasis(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t run = 0;
    while (i + run < s.size() && s[i + run] == '\'') ++run;
    if (run == 0) {
      out += s[i++];
    } else {
      if (run == 1) out += '\'';
      i += run;
    }
  }
  return out;
}

// HTML tags go, their content stays.
std::string drop_tags(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t close = s[i] == '<' ? s.find('>', i) : std::string::npos;
    if (close == std::string::npos) {
      out += s[i++];
    } else {
      i = close + 1;
    }
  }
  return out;
}

}  // namespace

std::string decode_xml_entities(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    std::string name = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    if (name == "lt") cp = '<';
    else if (name == "gt") cp = '>';
    else if (name == "amp") cp = '&';
    else if (name == "quot") cp = '"';
    else if (name == "apos") cp = '\'';
    else if (name.size() > 1 && name[0] == '#') {
      try {
        cp = static_cast<uint32_t>(name[1] == 'x' ? std::stoul(name.substr(2), nullptr, 16) : std::stoul(name.substr(1)));
      } catch (const std::exception&) {
        cp = 0;
      }
    }
    if (cp == 0 || cp > 0x10FFFF) {
      out += s[i];
      continue;
    }
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
    else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    i = semi;
  }
  return out;
}

std::string strip_wikitext(const std::string& wikitext) {
  std::string s = drop_nested(wikitext, "<!--", "-->");
  s = drop_references(s);
  s = drop_nested(s, "{{", "}}");
  s = drop_nested(s, "{|", "|}");
  s = resolve_links(s);
  s = resolve_external_links(s);
  s = drop_tags(s);
  s = drop_emphasis(s);
  // Line by line: headings keep their text, list markers go, blank lines collapse.
  std::string out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    std::string line = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t a = line.find_first_not_of("=*#:; \t");
    size_t b = line.find_last_not_of("= \t\r");
    line = (a == std::string::npos || b == std::string::npos || b < a) ? "" : line.substr(a, b - a + 1);
    if (!line.empty()) out += (out.empty() ? "" : "\n") + line;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string detect_format(const std::string& path) {
  if (ends_with(path, ".jsonl") || ends_with(path, ".json") || ends_with(path, ".jsonl.bz2")) return "jsonl";
  if (ends_with(path, ".xml") || ends_with(path, ".xml.bz2")) return "mediawiki";
  return "paragraphs";
}

const std::vector<std::string>& corpus_formats() {
  static const std::vector<std::string> formats{"auto", "lines", "paragraphs", "jsonl", "mediawiki"};
  return formats;
}

void read_corpus(const CorpusOptions& options, const std::function<bool(const std::string&)>& take) {
  const std::string format = options.format == "auto" ? detect_format(options.path) : options.format;
  if (format == "auto" || std::find(corpus_formats().begin(), corpus_formats().end(), format) == corpus_formats().end()) {
    throw CorpusError("corpus format '" + format + "' is not one of auto, lines, paragraphs, jsonl, mediawiki");
  }
  LineReader reader(options.path);
  int64_t seen = 0;
  // Returns false once `take` wants no more.
  auto emit = [&](const std::string& doc) {
    if (!attnbench::valid_utf8(doc)) {
      throw CorpusError(options.path + ":" + std::to_string(reader.line_number()) + ": invalid UTF-8 in the corpus");
    }
    if (static_cast<int64_t>(doc.size()) < std::max<int64_t>(1, options.min_chars)) return true;
    if (seen++ < options.skip) return true;
    return take(doc);
  };
  std::string line;
  if (format == "lines") {
    while (reader.next(line)) {
      if (!emit(line)) return;
    }
  } else if (format == "paragraphs") {
    std::string doc;
    while (reader.next(line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        if (!doc.empty() && !emit(doc)) return;
        doc.clear();
      } else {
        doc += (doc.empty() ? "" : "\n") + line;
      }
    }
    if (!doc.empty()) emit(doc);
  } else if (format == "jsonl") {
    while (reader.next(line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      const std::string where = options.path + ":" + std::to_string(reader.line_number()) + ": ";
      if (j.is_discarded()) throw CorpusError(where + "not valid JSON");
      if (!j.is_object() || !j.contains(options.text_field) || !j[options.text_field].is_string()) {
        throw CorpusError(where + "no string field '" + options.text_field + "' (set the embedder's text_field)");
      }
      if (!emit(j[options.text_field].get<std::string>())) return;
    }
  } else {
    // MediaWiki export: <page> ... <ns>0</ns> ... [<redirect .../>] ... <text ...>wikitext</text> ... </page>
    bool in_text = false, article = true, redirect = false;
    std::string text;
    while (reader.next(line)) {
      if (!in_text) {
        if (line.find("<page>") != std::string::npos) article = true, redirect = false, text.clear();
        size_t ns = line.find("<ns>");
        if (ns != std::string::npos) article = line.compare(ns + 4, 5, "0</ns") == 0;
        if (line.find("<redirect") != std::string::npos) redirect = true;
        size_t open = line.find("<text");
        if (open == std::string::npos) continue;
        size_t gt = line.find('>', open);
        if (gt == std::string::npos || line[gt - 1] == '/') continue;  // <text ... /> is empty
        in_text = true;
        line = line.substr(gt + 1);
      }
      size_t close = line.find("</text>");
      text += line.substr(0, close) + (close == std::string::npos ? "\n" : "");
      if (close == std::string::npos) continue;
      in_text = false;
      if (article && !redirect) {
        std::string plain = strip_wikitext(decode_xml_entities(text));
        if (!plain.empty() && !emit(plain)) return;
      }
      text.clear();
    }
  }
}

}  // namespace attnbench::text
