// Fuzzes the corpus readers (JSONL, MediaWiki XML, paragraphs) and the wikitext stripper: any input must
// yield documents or raise CorpusError.
#include "corpus.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnbench::text;
  strip_wikitext(std::string(reinterpret_cast<const char*>(data), size));
  for (const char* format : {"jsonl", "mediawiki", "paragraphs"}) {
    CorpusOptions options;
    options.path = fuzz_input_file(data, size, ".corpus");
    options.format = format;
    try {
      read_corpus(options, [](const std::string&) { return true; });
    } catch (const CorpusError&) {
    }
  }
  return 0;
}
