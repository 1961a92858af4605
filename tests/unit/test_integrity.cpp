// Asserts that no input, file or second writer destroys, corrupts or crashes results (issue 22):
//  - the results file refuses non-regular files and what is not attnbench JSON Lines, leaving their
//    bytes as they were; lists its results lines in file order; moves a torn last line to a sidecar
//    byte for byte; keeps a complete last line
//    that lacks its newline; lets two writers share it (claims, lines the other appended count as done,
//    a line whole after another writer's unfinished one, a file replaced by a rename is followed); and
//    takes back a write that fails;
//  - a file written atomically (AtomicFile, save_safetensors) is either the old one or the new one;
//  - --set paths and matrix axes must name a setting, with the command-line flag named in the message;
//    duplicate YAML keys, non-finite plugin parameters and matrices of millions of cells are refused
//    with the value, the number and the limit;
//  - --filter matches in linear time, whatever the pattern; wikilinks of any depth resolve in one pass;
//    a symlink loop in the plugin path is one listed problem, not an exception.
#include "corpus.h"
#include "plugins/loader.h"
#include "results/results_file.h"
#include "study/select.h"
#include "study/study.h"
#include "test_util.h"

#include <attnbench/support/files.h>
#include <attnbench/support/safetensors.h>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using attnbench::ConfigError;
using attnbench::ResultsFile;
using attnbench::testing::temp_path;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string fresh(const std::string& name, const std::string& bytes) {
  const std::string path = temp_path(name);
  fs::remove_all(path);
  for (const std::string& sidecar : {path + ".torn", path + ".torn.2"}) fs::remove(sidecar);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string open_error(const std::string& path) {
  try {
    ResultsFile file(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kLineA = "{\"hash\":\"aaaaaaaaaaaaaaaa\",\"status\":\"ok\"}\n";
const std::string kLineB = "{\"hash\":\"bbbbbbbbbbbbbbbb\",\"status\":\"error\"}\n";

std::map<std::string, std::string> done_ab() {
  return {{"aaaaaaaaaaaaaaaa", "ok"}, {"bbbbbbbbbbbbbbbb", "error"}};
}

// While alive, files this process writes may grow only `room` bytes past `path`'s size: a full disk.
class FileSizeLimit {
 public:
  FileSizeLimit(const std::string& path, rlim_t room) {
    std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG instead of killing us
    getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limit = saved_;
    limit.rlim_cur = static_cast<rlim_t>(fs::exists(path) ? fs::file_size(path) : 0) + room;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_{};
};

}  // namespace

TEST(ResultsFileIntegrity, AppendsAndListsTheCellsDone) {
  const std::string path = fresh("plain.jsonl", "");
  fs::remove(path);
  {
    ResultsFile file(path);
    EXPECT_TRUE(file.done().empty());
    EXPECT_TRUE(file.notes().empty());
    file.append({{"hash", "aaaaaaaaaaaaaaaa"}, {"status", "ok"}});
    file.append({{"hash", "bbbbbbbbbbbbbbbb"}, {"status", "error"}});
  }
  EXPECT_EQ(read_bytes(path), kLineA + kLineB);
  EXPECT_EQ(ResultsFile(path).done(), done_ab());
}

TEST(ResultsFileIntegrity, LinesAreTheResultsInFileOrderWithoutBlanksOrATornTail) {
  const std::string path = fresh("lines.jsonl", kLineB + "\n" + kLineA + R"({"hash": "ccc", "sta)");
  ResultsFile file(path);
  file.append({{"hash", "dddddddddddddddd"}, {"status", "inconsistent"}, {"n", 3}});
  const std::vector<nlohmann::json> lines = file.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], nlohmann::json::parse(kLineB));
  EXPECT_EQ(lines[1], nlohmann::json::parse(kLineA));
  EXPECT_EQ(lines[2]["hash"], "dddddddddddddddd");
  EXPECT_EQ(lines[2]["n"], 3);
}

TEST(ResultsFileIntegrity, ATornLastLineMovesToASidecarByteForByte) {
  const std::string torn = R"({"hash": "ccc", "sta)";
  const std::string path = fresh("torn.jsonl", kLineA + kLineB + torn);
  ResultsFile file(path);
  EXPECT_EQ(file.done(), done_ab());
  EXPECT_EQ(read_bytes(path), kLineA + kLineB);
  EXPECT_EQ(read_bytes(path + ".torn"), torn);
  ASSERT_EQ(file.notes().size(), 1u);
  EXPECT_EQ(file.notes()[0], path + ": moved a half-written last line (20 bytes, from a runner stopped while writing) to " +
                                 path + ".torn");
  // A second torn line never overwrites the first one's sidecar.
  std::ofstream(path, std::ios::app | std::ios::binary) << "{\"x";
  ResultsFile again(path);
  EXPECT_EQ(read_bytes(path + ".torn"), torn);
  EXPECT_EQ(read_bytes(path + ".torn.2"), "{\"x");
  EXPECT_EQ(read_bytes(path), kLineA + kLineB);
}

TEST(ResultsFileIntegrity, ACompleteLastLineWithoutItsNewlineIsKept) {
  const std::string path = fresh("no_newline.jsonl", kLineA + kLineB.substr(0, kLineB.size() - 1));
  ResultsFile file(path);
  EXPECT_EQ(file.done(), done_ab());
  EXPECT_EQ(read_bytes(path), kLineA + kLineB);
  EXPECT_FALSE(fs::exists(path + ".torn"));
  ASSERT_EQ(file.notes().size(), 1u);
  EXPECT_EQ(file.notes()[0], path + ": its last line was complete but had no newline; added one");
}

TEST(ResultsFileIntegrity, WhatIsNotAttnbenchJsonLinesIsRefusedUntouched) {
  std::string binary(4096, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>((i * 7919 + 13) % 251 + 1);
  for (char& c : binary) c = c == '\n' ? 'x' : c;  // no newline anywhere: all of it is a "last line"
  std::string utf16 = "\xff\xfe";
  for (char c : kLineA) utf16 += std::string{c, '\0'};
  const std::vector<std::tuple<std::string, std::string, std::string>> cases{
      {"binary", binary, ":1: not an attnbench results line (the last 4096 bytes, with no newline)"},
      {"array", "[\n" + kLineA.substr(0, kLineA.size() - 1) + ",\n" + kLineB + "]\n", ":1: not an attnbench results line (not JSON)"},
      {"utf16", utf16, ":1: not an attnbench results line (not JSON)"},
      {"text", "hello\nworld\n", ":1: not an attnbench results line (not JSON)"},
      {"other_json", kLineA + "{\"name\": \"someone else's\"}\n", ":2: not an attnbench results line (no string \"hash\")"},
      {"spliced", kLineA + "{\"hash\":\"aa{\"hash\":\"bb\"}\n" + kLineB, ":2: not an attnbench results line (not JSON)"},
  };
  for (const auto& [name, bytes, message] : cases) {
    const std::string path = fresh(name + ".jsonl", bytes);
    EXPECT_EQ(open_error(path), path + message + ", so this is not attnbench JSON Lines; nothing was written to it " +
                                    (message.find("the last") != std::string::npos ? "(give another --results or output.results)"
                                                                                   : "(repair that line, or give another --results or output.results)"))
        << name;
    EXPECT_EQ(read_bytes(path), bytes) << name;
    EXPECT_FALSE(fs::exists(path + ".torn")) << name;
  }
}

TEST(ResultsFileIntegrity, NonRegularFilesAreRefusedWithoutReadingThem) {
  const std::string dir = temp_path("a_directory");
  fs::create_directories(dir);
  const std::string fifo = temp_path("a_fifo");
  fs::remove(fifo);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string tail = ", not a regular file; nothing was read or written (give a file path with --results or output.results)";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(open_error(dir), dir + ": the results file is a directory" + tail);
  EXPECT_EQ(open_error(fifo), fifo + ": the results file is a FIFO" + tail);  // without waiting for a writer
  EXPECT_EQ(open_error("/dev/zero"), "/dev/zero: the results file is a character device" + tail);  // without reading forever
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ResultsFileIntegrity, TwoWritersShareOneFile) {
  const std::string path = fresh("shared.jsonl", kLineA);
  ResultsFile first(path), second(path);
  const std::string cell = "cccccccccccccccc";
  ASSERT_TRUE(first.claim(cell));
  EXPECT_FALSE(second.claim(cell));  // the first one is running it
  EXPECT_TRUE(second.claim("dddddddddddddddd"));
  first.append({{"hash", cell}, {"status", "ok"}});
  // Claimed again once it is written, and now the second writer sees it done.
  ASSERT_TRUE(second.claim(cell));
  EXPECT_EQ(second.done().at(cell), "ok");
  second.release(cell);
  second.append({{"hash", "dddddddddddddddd"}, {"status", "ok"}});
  EXPECT_EQ(read_bytes(path), kLineA + "{\"hash\":\"cccccccccccccccc\",\"status\":\"ok\"}\n" +
                                  "{\"hash\":\"dddddddddddddddd\",\"status\":\"ok\"}\n");
  EXPECT_EQ(ResultsFile(path).done().size(), 3u);
}

TEST(ResultsFileIntegrity, ALineStaysWholeAfterAnotherWritersUnfinishedOne) {
  const std::string path = fresh("unlocked.jsonl", kLineA);
  ResultsFile file(path);
  std::ofstream(path, std::ios::app | std::ios::binary) << "{\"hash\":\"x";  // a writer that takes no lock
  file.append({{"hash", "bbbbbbbbbbbbbbbb"}, {"status", "error"}});
  EXPECT_EQ(read_bytes(path), kLineA + "{\"hash\":\"x\n" + kLineB);
}

TEST(ResultsFileIntegrity, AFileReplacedByARenameIsFollowed) {
  const std::string path = fresh("replaced.jsonl", kLineA);
  ResultsFile file(path);
  const std::string merged = fresh("merged.jsonl", kLineA + kLineB);
  fs::rename(merged, path);  // as scripts/merge_results.py writes its output
  file.append({{"hash", "cccccccccccccccc"}, {"status", "ok"}});
  EXPECT_EQ(read_bytes(path), kLineA + kLineB + "{\"hash\":\"cccccccccccccccc\",\"status\":\"ok\"}\n");
  EXPECT_EQ(file.done().count("bbbbbbbbbbbbbbbb"), 1u);
}

TEST(ResultsFileIntegrity, AFailedAppendTakesBackWhatItWrote) {
  const std::string path = fresh("full_disk.jsonl", kLineA);
  ResultsFile file(path);
  try {
    FileSizeLimit full(path, 10);  // room for 10 bytes of a much longer line
    file.append({{"hash", "bbbbbbbbbbbbbbbb"}, {"status", "ok"}, {"message", std::string(1000, 'm')}});
    FAIL() << "the write should have failed";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": write failed (File too large); the file is as it was before this line");
  }
  EXPECT_EQ(read_bytes(path), kLineA);
  EXPECT_EQ(file.done().count("bbbbbbbbbbbbbbbb"), 0u);
}

TEST(AtomicFiles, AFailedWriteLeavesTheOldFileAndNoTemporaryFile) {
  const std::string dir = temp_path("atomic");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = dir + "/weights.safetensors";
  at::Tensor small = at::arange(4, at::kFloat);
  attnbench::save_safetensors(path, {{"w", small}});
  const std::string before = read_bytes(path);
  try {
    FileSizeLimit full(path, 64);
    attnbench::save_safetensors(path, {{"w", at::arange(100000, at::kFloat)}});
    FAIL() << "the write should have failed";
  } catch (const attnbench::SafetensorsError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": write failed: File too large; the file was left as it was");
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  {
    attnbench::AtomicFile abandoned(path);
    abandoned.write("not committed");
  }  // e.g. an exception before commit()
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  attnbench::AtomicFile replaced(path);
  replaced.write("new");
  replaced.commit();
  EXPECT_EQ(read_bytes(path), "new");
}

TEST(AtomicFiles, ADirectoryIsNotASafetensorsFile) {
  const std::string dir = temp_path("weights_dir");
  fs::create_directories(dir);
  try {
    attnbench::load_safetensors(dir);
    FAIL();
  } catch (const attnbench::SafetensorsError& e) {
    EXPECT_EQ(std::string(e.what()), dir + ": is a directory, not a safetensors file");
  }
}

namespace {

const char* const kStudy = attnbench::testing::kTwoLayerStudy;

attnbench::LoadOptions fake_plugins(std::vector<std::string> overrides = {}) {
  attnbench::LoadOptions options;
  options.overrides = std::move(overrides);
  options.has_param = [](const std::string& plugin, const std::string& key) {
    return key == "heads" || (plugin == "reservoir" && (key == "res_size" || key == "rho"));
  };
  options.param_names = [](const std::string& plugin) {
    return std::string(plugin == "reservoir" ? "heads, res_size, rho" : "heads");
  };
  return options;
}

std::string load_error(const std::string& text, const attnbench::LoadOptions& options) {
  try {
    attnbench::load_study_text(text, "s.yaml", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string set_error(const std::string& item) { return load_error(kStudy, fake_plugins({item})); }

}  // namespace

TEST(StudyPaths, EverySetPathMustNameASetting) {
  EXPECT_EQ(set_error("run.=5"), "--set run.=5: 'run.' has an empty part; write a path such as run.threads");
  EXPECT_EQ(set_error("run=5"), "--set run: 'run' is a section, not a value; set one of its keys, e.g. run.device");
  EXPECT_EQ(set_error("run.threads.x=5"),
            "--set run.threads.x: 'run.threads.x' names no setting: run has device, amp, amp_dtype, batch, threads, seed, "
            "seed_len, horizon, max_memory, isolate, modes");
  EXPECT_EQ(set_error("attention.params.hedas=2"),
            "--set attention.params.hedas: no attention entry's plugin has a parameter 'hedas' (mha: heads; reservoir: "
            "heads, res_size, rho)");
  EXPECT_EQ(set_error("attention.plugin=mha"),
            "--set attention.plugin: 'attention.plugin' cannot be set here: attention entries are edited in the study "
            "file; set attention.params.<key>");
  EXPECT_EQ(set_error("runn.threads=2"),
            "--set runn.threads: 'runn' is not a section of a study; sections: name, description, data, attention, run, "
            "measure, output, consistency, quality");
  EXPECT_EQ(set_error("name.x=1"), "--set name.x: 'name' is a value; it has no keys such as 'name.x'");
  EXPECT_EQ(set_error("quality.params.memory_capacity=1"),
            "--set quality.params.memory_capacity: 'quality.params.memory_capacity' is a plugin's parameters: set them "
            "one by one, as quality.params.memory_capacity.<key>");
  EXPECT_EQ(set_error("matrix=[1]"), "--set matrix=[1]: set one axis, as matrix.<path>=[values]");
  // What does name a setting loads, and applies where the parameter exists.
  attnbench::Study s = attnbench::load_study_text(kStudy, "s.yaml", fake_plugins({"attention.params.res_size=32", "name=x"}));
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(std::get<int64_t>(s.cells[1].attention_params.items().at("res_size")), 32);
}

TEST(StudyPaths, EveryMatrixAxisMustNameASettingAndTheFlagIsBlamed) {
  EXPECT_EQ(load_error(std::string(kStudy) + "matrix:\n  attention.params.res_sise: [1, 2]\n", fake_plugins()),
            "s.yaml:8:30: matrix.attention.params.res_sise: no attention entry's plugin has a parameter 'res_sise' (mha: "
            "heads; reservoir: heads, res_size, rho)");
  EXPECT_EQ(load_error(std::string(kStudy) + "matrix:\n  \"run.\": [1]\n", fake_plugins()),
            "s.yaml:8:11: matrix.run.: 'run.' has an empty part; write a path such as run.threads");
  EXPECT_EQ(load_error(std::string(kStudy) + "matrix:\n  include: [{run.seeed: 1}]\n", fake_plugins()),
            "s.yaml:8:14: matrix.include: 'run.seeed' names no setting: run has device, amp, amp_dtype, batch, threads, "
            "seed, seed_len, horizon, max_memory, isolate, modes");
  EXPECT_EQ(set_error("matrix.output.results=[a, b]"),
            "--set matrix.output.results: axis 'output.results' must be a dotted path under data, attention, run, "
            "measure, consistency or quality (e.g. run.device)");
  EXPECT_EQ(set_error("matrix.run.seed=[]"), "--set matrix.run.seed: axis 'run.seed' has no values; give at least one");
  EXPECT_EQ(set_error("matrix.attention=[zz]"), "--set matrix.attention: 'zz' names no attention entry; entries: a, b");
}

TEST(StudyValues, NonFiniteNumbersAndDuplicateKeysAreErrors) {
  // .inf, .nan and -.inf would all be null in the hash: three cells with one hash.
  for (const std::string& value : {".inf", ".nan", "-.inf", ".NaN", "+.Inf"}) {
    EXPECT_EQ(load_error(std::string(kStudy) + "matrix: {attention.params.rho: [" + value + "]}\n", fake_plugins()),
              "s.yaml:7:33: attention.params.rho: '" + value + "' is not a finite number");
  }
  EXPECT_EQ(set_error("attention.params.rho=.nan"), "--set attention.params.rho: attention.params.rho: '.nan' is not a finite number");
  EXPECT_EQ(set_error("measure.min_time_ms=.inf"), "--set measure.min_time_ms: measure.min_time_ms: '.inf' is not a finite number");
  EXPECT_EQ(load_error(std::string(kStudy) + "run: {seed: 1, seed: 2}\n", fake_plugins()),
            "s.yaml:7:16: run.seed: duplicate key 'seed' (first at line 7); keep one");
  EXPECT_EQ(load_error("name: a\nname: b\n" + std::string(kStudy).substr(9), fake_plugins()),
            "s.yaml:2:1: name: duplicate key 'name' (first at line 1); keep one");
}

TEST(StudyValues, SizesBeyondAnyMachineAreRefusedWithTheNumberAndTheLimit) {
  std::string axes;
  for (const char* axis : {"run.seed", "run.seed_len", "measure.warmup", "measure.min_runs", "run.batch", "data.samples"}) {
    axes += std::string("  ") + axis + ": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n";
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(load_error(std::string(kStudy) + "matrix:\n" + axes, fake_plugins()),
            "s.yaml:8:3: matrix: expands to 2000000 cells (2 attention x 10 run.seed x 10 run.seed_len x 10 "
            "measure.warmup x 10 measure.min_runs x 10 run.batch x 10 data.samples); the limit is 100000 cells per "
            "study: use fewer values, or split it into several studies");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));  // counted, not built
  EXPECT_EQ(set_error("run.horizon=100000000"), "--set run.horizon: run.horizon: 100000000 is out of range; must be in [0, 4096]");
  EXPECT_EQ(set_error("data.seq_len=1e9"), "--set data.seq_len: data.seq_len: '1e9' is not an integer");
  EXPECT_EQ(set_error("data.seq_len=1000000000"),
            "--set data.seq_len: data.seq_len: 1000000000 is out of range; must be in [1, 4194304]");
  attnbench::LoadOptions wide = fake_plugins({"data.seq_len=4000000", "data.samples=1000"});
  wide.validate = [](attnbench_plugin_kind kind, const std::string&, const attnbench::Params&, int64_t, attnbench::Failure&) {
    return kind == ATTNBENCH_PLUGIN_EMBEDDER ? int64_t{768} : int64_t{0};
  };
  EXPECT_EQ(load_error(kStudy, wide),
            "--set data.seq_len: data.seq_len: data.samples x data.seq_len x the embedder's width = 1000 x 4000000 x 768 "
            "floats, 12288 GB of tokens; the limit is 1000 GB");
}

TEST(Filter, AnyPatternEndsQuicklyWithoutRecursion) {
  attnbench::Study study = attnbench::load_study_text(std::string(kStudy) + "matrix: {run.seed: [1, 2, 3]}\n", "s.yaml");
  const auto start = std::chrono::steady_clock::now();
  std::string nested = std::string(20000, '(') + "a" + std::string(20000, ')');
  try {
    attnbench::Study copy = study;
    attnbench::filter_cells(copy, nested);
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not a valid regular expression"), std::string::npos) << e.what();
  }
  std::string blowup;
  for (int i = 0; i < 2000; ++i) blowup += "(.*)*";
  attnbench::Study copy = study;
  attnbench::filter_cells(copy, blowup + "seed=2");
  ASSERT_EQ(copy.cells.size(), 2u);  // a and b at seed 2
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  try {
    copy = study;
    attnbench::filter_cells(copy, "(");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "--filter '(': not a valid regular expression: missing ): ( (RE2 syntax, as "
                                     "https://github.com/google/re2/wiki/Syntax describes)");
  }
}

TEST(Wikitext, LinksOfAnyDepthResolveInOnePass) {
  using attnbench::text::strip_wikitext;
  EXPECT_EQ(strip_wikitext("a [[Target|label]] and [[Plain]] b"), "a label and Plain b");
  EXPECT_EQ(strip_wikitext("x [[File:P.png|thumb|A [[caption]] here]] y [[Category:C]]"), "x  y");
  EXPECT_EQ(strip_wikitext("[[a [[b]] c|d]] [[a|[[b|c]] d]]"), "d c d");  // the label follows the link's own last bar
  EXPECT_EQ(strip_wikitext("open [[never closed|label"), "open label");
  EXPECT_EQ(strip_wikitext("open [[Image:never closed"), "open");
  EXPECT_EQ(strip_wikitext("]] | stray"), "]] | stray");
  const auto start = std::chrono::steady_clock::now();
  const int depth = 40000;
  std::string deep;
  for (int i = 0; i < depth; ++i) deep += "[[x|";
  deep += "core";
  for (int i = 0; i < depth; ++i) deep += "]]";
  EXPECT_EQ(strip_wikitext(deep), "core");
  EXPECT_EQ(strip_wikitext(std::string(depth, '[')), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(PluginPath, ASymlinkLoopIsAListedProblem) {
  const std::string dir = temp_path("loop_plugins");
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(dir + "/attnbench_loop.so", dir + "/attnbench_loop.so");
  fs::create_directory_symlink(dir, dir + "/attnbench_self.so");
  const char* saved = std::getenv("ATTNBENCH_PLUGIN_PATH");
  const std::string saved_value = saved ? saved : "";
  setenv("ATTNBENCH_PLUGIN_PATH", dir.c_str(), 1);
  std::vector<attnbench::PluginListing> listed;
  EXPECT_NO_THROW(listed = attnbench::list_plugins());
  std::string loop_error;
  for (const auto& p : listed) {
    if (p.path == dir + "/attnbench_loop.so") loop_error = p.error;
  }
  EXPECT_EQ(loop_error, "cannot resolve the path: Too many levels of symbolic links");
  try {
    attnbench::load_plugin("loop", ATTNBENCH_PLUGIN_ATTENTION);
    FAIL();
  } catch (const attnbench::PluginError& e) {
    EXPECT_EQ(std::string(e.what()), "plugin file '" + dir + "/attnbench_loop.so': Too many levels of symbolic links");
  }
  if (saved) setenv("ATTNBENCH_PLUGIN_PATH", saved_value.c_str(), 1);
  else unsetenv("ATTNBENCH_PLUGIN_PATH");
}
