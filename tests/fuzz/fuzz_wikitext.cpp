// Fuzzes the wikitext stripper with MediaWiki's link syntax (wikitext.dict: [[, ]], |, File:, nested
// templates, references): any input must come back no longer than it went in (the stripper only drops
// and copies, in one pass), and stripping the result again must hold as well.
#include "corpus.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string plain = attnbench::text::strip_wikitext(text);
  if (plain.size() > text.size()) __builtin_trap();
  if (attnbench::text::strip_wikitext(plain).size() > plain.size()) __builtin_trap();
  return 0;
}
