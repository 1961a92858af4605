// Streaming corpus readers: plain text, JSON Lines and MediaWiki XML dumps (optionally .bz2), with
// wikitext markup stripped. Memory stays bounded by one document.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench::text {

class CorpusError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CorpusOptions {
  std::string path;
  // auto (from the file name), lines (a document per line), paragraphs (blank-line separated),
  // jsonl, mediawiki (pages-articles XML, .xml or .xml.bz2)
  std::string format = "auto";
  std::string text_field = "text";  // jsonl: the field holding the document
  int64_t skip = 0;                 // documents to pass over first
  int64_t min_chars = 0;            // documents shorter than this are not counted
};

// Calls `take(document)` for each document in order until it returns false or the corpus ends.
// Throws CorpusError naming the file (and line) for a missing file, bad JSON, a missing field, invalid
// UTF-8 or a broken bz2 stream.
void read_corpus(const CorpusOptions& options, const std::function<bool(const std::string&)>& take);

// Every value CorpusOptions::format accepts.
const std::vector<std::string>& corpus_formats();

// The format `auto` resolves to for `path`.
std::string detect_format(const std::string& path);

// Wikitext to plain text: drops comments, <ref>s, templates, tables, files and categories; keeps link
// labels, external-link labels and heading text; removes bold/italic quotes, HTML tags and list markers.
std::string strip_wikitext(const std::string& wikitext);

// Replaces &lt; &gt; &amp; &quot; &apos; and numeric character references.
std::string decode_xml_entities(const std::string& text);

}  // namespace attnbench::text
