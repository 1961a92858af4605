// Asserts the core's building blocks: the statistics (against hand-computed values), the error metric,
// and the safetensors reader/writer (round trip and each way a file can be broken). The results file
// is test_integrity.cpp's.
#include "measure/protocols.h"
#include <attnbench/support/safetensors.h>
#include "measure/stats.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

using attnbench::testing::temp_path;

namespace {
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}
}  // namespace

TEST(Stats, MatchesHandComputedValues) {
  attnbench::Stats s = attnbench::summarize({4, 1, 3, 2, 5}, 0.1);
  EXPECT_EQ(s.n, 5);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.stdev, std::sqrt(2.5));  // sample standard deviation
  EXPECT_DOUBLE_EQ(s.p10, 1.4);               // linear interpolation, as numpy.percentile
  EXPECT_DOUBLE_EQ(s.p90, 4.6);
  EXPECT_NEAR(s.p99, 4.96, 1e-12);
  EXPECT_TRUE(s.unstable);  // cv = 0.527
  EXPECT_EQ(s.samples, (std::vector<double>{4, 1, 3, 2, 5}));  // raw samples kept in order
  EXPECT_FALSE(attnbench::summarize({2, 2, 2}, 0.1).unstable);
}

TEST(Compare, RelativeRmsAndMaxAbs) {
  at::Tensor ref = at::tensor({3.0f, 4.0f});
  at::Tensor a = at::tensor({3.0f, 4.5f});
  attnbench::ErrorStats e = attnbench::compare(a, ref);
  EXPECT_DOUBLE_EQ(e.rel_rms, 0.5 / 5.0);
  EXPECT_DOUBLE_EQ(e.max_abs, 0.5);
  EXPECT_EQ(attnbench::compare(ref, ref).rel_rms, 0.0);
}

TEST(Safetensors, RoundTripKeepsValuesDtypesAndMetadata) {
  std::string path = temp_path("round.safetensors");
  at::Tensor f = at::randn({3, 5});
  at::Tensor h = at::randn({7}).to(at::kHalf);
  at::Tensor i = at::arange(4, at::kLong);
  attnbench::save_safetensors(path, {{"f", f}, {"h", h}, {"i", i}}, {{"who", "test"}});
  attnbench::TensorFile file = attnbench::load_safetensors(path);
  EXPECT_TRUE(at::equal(file.tensors.at("f"), f));
  EXPECT_TRUE(at::equal(file.tensors.at("h"), h));
  EXPECT_TRUE(at::equal(file.tensors.at("i"), i));
  EXPECT_EQ(file.metadata.at("who"), "test");
  EXPECT_TRUE(at::equal(attnbench::require_tensor(file, path, "f", {3, 5}), f));
}

TEST(Safetensors, EachBrokenFileIsOneClearError) {
  auto error_of = [](const std::string& path) {
    try {
      attnbench::load_safetensors(path);
    } catch (const attnbench::SafetensorsError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  std::string p = temp_path("bad.safetensors");
  EXPECT_NE(error_of(temp_path("missing.safetensors")).find("cannot open"), std::string::npos);
  write_bytes(p, "abc");
  EXPECT_NE(error_of(p).find("truncated: shorter than the 8-byte header length"), std::string::npos);
  write_bytes(p, le64(1000) + "{}");
  EXPECT_NE(error_of(p).find("bad header: its length 1000 runs past the end"), std::string::npos);
  write_bytes(p, le64(5) + "{nope");
  EXPECT_NE(error_of(p).find("bad header: not JSON"), std::string::npos);
  std::string header = R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  write_bytes(p, le64(header.size()) + header + std::string(8, '\0'));
  EXPECT_NE(error_of(p).find("tensor 't' has data_offsets outside the 8-byte data section"), std::string::npos) << error_of(p);
  header = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  write_bytes(p, le64(header.size()) + header + std::string(8, '\0'));
  EXPECT_NE(error_of(p).find("shape needs 12 bytes but data_offsets span 8"), std::string::npos) << error_of(p);
  header = R"({"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})";
  write_bytes(p, le64(header.size()) + header + std::string(1, '\0'));
  EXPECT_NE(error_of(p).find("unsupported dtype 'Q4'"), std::string::npos);

  attnbench::save_safetensors(p, {{"a", at::zeros({2})}});
  attnbench::TensorFile file = attnbench::load_safetensors(p);
  try {
    attnbench::require_tensor(file, p, "b", {2});
    FAIL();
  } catch (const attnbench::SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'b'; the file has: a"), std::string::npos);
  }
  try {
    attnbench::require_tensor(file, p, "a", {3});
    FAIL();
  } catch (const attnbench::SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'a' has shape [2], expected [3]"), std::string::npos);
  }
}
