// Asserts the conformance checker (runner check-plugin) on fixture plugins with planted bugs
// (tests/fixtures/fixture_window.cpp, a sliding-window attention with a ring buffer):
//  - child processes (measure/isolate.h): a payload comes back; a signal, an exit without a report, an
//    exception and a timeout are each told apart, naming the signal and the last activity;
//  - the checker's sequence lengths: 1, one past each power of two, the longest, one seeded;
//  - a correct windowed layer passes every check at W = 1, 4, 64 and 1000; the built-in plugins and the
//    running-max fixture conform, isolated or in process;
//  - each planted bug, at the default settings, fails the check that names it (with the first differing
//    position), the checker exits non-zero, and checks that cannot run after a failure are skipped naming
//    it, never a knock-on FAIL: a ring buffer that wraps one slot off (position 64 at W = 64), batch and
//    head axes swapped, no validation (window 0: NaN in forward, SIGFPE in step, then the rest of the
//    report; window -1: init_state's message without torch's backtrace), a step returning (1, B, E);
//  - a bad --set value fails `parameters` and skips the rest.
#include "measure/check.h"
#include "measure/isolate.h"
#include "plugins/loader.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace {

std::string fixture(const std::string& name) {
  return std::string(ATTNBENCH_FIXTURE_DIR) + "/attnbench_" + name + ".so";
}

struct Report {
  int failures;
  std::string text;
  bool has(const std::string& fragment) const { return text.find(fragment) != std::string::npos; }
};

Report check(const std::string& spec, std::vector<std::string> params = {}, attnbench::CheckOptions options = {}) {
  options.params = std::move(params);
  std::ostringstream out;
  const int failures = attnbench::check_plugin(spec, options, out);
  return {failures, out.str()};
}

}  // namespace

TEST(Isolate, AChildsPayloadSignalExitExceptionAndTimeoutAreToldApart) {
  attnbench::ChildOutcome ok = attnbench::run_in_child([] { return std::string("payload"); });
  EXPECT_TRUE(ok.finished);
  EXPECT_EQ(ok.payload, "payload");

  attnbench::ChildOutcome fpe = attnbench::run_in_child([]() -> std::string {
    attnbench::set_activity("dividing");
    std::raise(SIGFPE);
    return "never";
  });
  EXPECT_FALSE(fpe.finished);
  EXPECT_EQ(fpe.signal, SIGFPE);
  EXPECT_EQ(fpe.failure(), "crashed with SIGFPE (arithmetic exception, e.g. an integer division by zero) in dividing");

  attnbench::ChildOutcome exited = attnbench::run_in_child([]() -> std::string { std::_Exit(3); });
  EXPECT_EQ(exited.exit_status, 3);
  EXPECT_EQ(exited.failure(),
            "exited with status 3 before reporting (a sanitizer's report or an exit() in the plugin?)");

  attnbench::ChildOutcome threw = attnbench::run_in_child([]() -> std::string { throw std::runtime_error("no luck"); });
  EXPECT_FALSE(threw.finished);
  EXPECT_EQ(threw.failure(), "no luck");

  attnbench::ChildOutcome slow = attnbench::run_in_child(
      []() -> std::string {
        attnbench::set_activity("sleeping");
        std::this_thread::sleep_for(std::chrono::seconds(30));
        return "late";
      },
      0.2);
  EXPECT_TRUE(slow.timed_out);
  EXPECT_EQ(slow.failure(), "did not finish in 0.2 s in sleeping");
}

TEST(Checker, LengthsAreOnePastEachPowerOfTwoTheLongestAndOneSeeded) {
  attnbench::CheckOptions options;
  std::vector<int64_t> lengths = attnbench::check_lengths(options);
  // The seeded one is drawn from [2, 2049]; the rest are fixed.
  std::vector<int64_t> fixed{1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 2049};
  ASSERT_GE(lengths.size(), fixed.size());
  for (int64_t l : fixed) EXPECT_NE(std::find(lengths.begin(), lengths.end(), l), lengths.end()) << l;
  EXPECT_EQ(lengths, attnbench::check_lengths(options)) << "the same seed draws the same length";
  EXPECT_GE(lengths.back(), 1100);
  options.max_length = 40;
  lengths = attnbench::check_lengths(options);
  EXPECT_EQ(lengths.front(), 1);
  EXPECT_EQ(lengths.back(), 40);
  for (int64_t l : {2, 3, 5, 9, 17, 33}) EXPECT_NE(std::find(lengths.begin(), lengths.end(), l), lengths.end()) << l;
  options.max_length = 1;
  EXPECT_EQ(attnbench::check_lengths(options), std::vector<int64_t>{1});
}

TEST(Checker, ACorrectWindowedLayerPassesAtEveryWindow) {
  for (const char* window : {"1", "4", "64", "1000"}) {
    Report r = check(fixture("fixture_window"), {std::string("window=") + window});
    EXPECT_EQ(r.failures, 0) << "W = " << window << "\n" << r.text;
    EXPECT_TRUE(r.has("15 passed, 0 failed, 0 skipped")) << r.text;
  }
}

TEST(Checker, TheHeaderGivesTheSizes) {
  Report r = check(fixture("fixture"));
  EXPECT_TRUE(r.has("embed_dim 32, batch 3, device cpu, float32, seed 0, tolerance 1.0e-05")) << r.text;
  EXPECT_TRUE(
      r.has("\nsequence lengths: 1 2 3 5 9 17 33 65 129 257 513 1025 1088 2049 (1, one past each power of two, the "
            "longest, one drawn with the seed; --seq-len N sets the longest)\n"))
      << r.text;
  EXPECT_TRUE(r.has("PASS handshake: fixture 0.0.1, " + fixture("fixture"))) << r.text;
}

TEST(Checker, BuiltInPluginsAndTheFixtureConformIsolatedOrInProcess) {
  for (const std::string& spec : {std::string("mha"), std::string("reservoir"), fixture("fixture")}) {
    Report r = check(spec);
    EXPECT_EQ(r.failures, 0) << r.text;
  }
  attnbench::CheckOptions in_process;
  in_process.isolate = false;
  Report r = check(fixture("fixture_window"), {}, in_process);
  EXPECT_EQ(r.failures, 0) << r.text;
  EXPECT_TRUE(r.has("every check runs in this process (--in-process)")) << r.text;
}

TEST(Checker, ARingBufferThatWrapsOneSlotOffFailsAtPositionW) {
  Report r = check(fixture("fixture_window_wrap"));
  EXPECT_EQ(r.failures, 3) << r.text;
  EXPECT_TRUE(r.has("FAIL step == forward: step against forward, L = 65: relative RMS ")) << r.text;
  EXPECT_TRUE(r.has("; first differs at position 64, batch row 0 (relative ")) << r.text;
  EXPECT_TRUE(r.has("FAIL prefix == step: prefix recompute against step: relative RMS ")) << r.text;
  EXPECT_TRUE(
      r.has("FAIL closed loop: step == prefix: closed loop, 8 outputs fed back after 57 tokens, step against "
            "prefix recompute: relative RMS "))
      << r.text;
  EXPECT_TRUE(r.has("first differs at output 7 of the loop (position 64), batch row 0")) << r.text;
  EXPECT_TRUE(r.has("PASS batch rows are independent")) << r.text;
  EXPECT_TRUE(r.has("PASS state_bytes")) << r.text;
  EXPECT_TRUE(r.has("12 passed, 3 failed, 0 skipped")) << r.text;
}

TEST(Checker, SwappedBatchAndHeadAxesFailBatchIsolationClearly) {
  Report r = check(fixture("fixture_window_swap"));
  EXPECT_EQ(r.failures, 1) << r.text;
  EXPECT_TRUE(
      r.has("FAIL batch rows are independent: batch row 0 run alone, against the same row in a batch of 3, "
            "L = 1: relative RMS "))
      << r.text;
  EXPECT_TRUE(r.has("first differs at position 0, batch row 0")) << r.text;
  attnbench::CheckOptions one_row;
  one_row.batch = 1;
  Report alone = check(fixture("fixture_window_swap"), {}, one_row);
  EXPECT_EQ(alone.failures, 0) << "invisible at batch 1\n" << alone.text;
  EXPECT_TRUE(alone.has("SKIP batch rows are independent: it needs a batch of at least 2 (--batch 1 was given)"))
      << alone.text;
}

TEST(Checker, ADivisionByZeroInStepIsAFailNamingSigfpeAndTheReportGoesOn) {
  Report r = check(fixture("fixture_window_no_check"), {"window=0"});
  EXPECT_EQ(r.failures, 2) << r.text;
  EXPECT_TRUE(r.has(
      "FAIL forward: shape, dtype, device, finite: forward over 2 tokens returned NaN or Inf, first at position 0"))
      << r.text;
  EXPECT_TRUE(
      r.has("FAIL step: shape, dtype, device, finite: crashed with SIGFPE (arithmetic exception, e.g. an integer "
            "division by zero) in step() on the first token\n"))
      << r.text;
  EXPECT_TRUE(r.has("SKIP step == forward: not run: forward() failed above")) << r.text;
  EXPECT_TRUE(r.has("SKIP state_bytes: not run: forward() failed above")) << r.text;
  EXPECT_TRUE(r.has("PASS bad input is an error, not a crash")) << r.text;
  EXPECT_TRUE(r.has("attnbench_fixture_window_no_check.so: 6 passed, 2 failed, 7 skipped\n")) << r.text;
}

TEST(Checker, ANegativeWindowFailsInitStateWithoutABacktrace) {
  Report r = check(fixture("fixture_window_no_check"), {"window=-1"});
  // torch words it its own way per version (1.13: "Trying to create tensor with negative dimension -1",
  // 2.x: "Dimension size must be non-negative"): what is asserted is one line naming the plugin.
  const std::string head = "FAIL init_state: plugin 'fixture_window_no_check' init_state(): ";
  const auto at = r.text.find(head);
  ASSERT_NE(at, std::string::npos) << r.text;
  const auto reason = r.text.substr(at + head.size(), r.text.find('\n', at) - at - head.size());
  EXPECT_NE(reason.find("negative"), std::string::npos) << r.text;
  EXPECT_FALSE(r.has("Exception raised from")) << r.text;
  EXPECT_FALSE(r.has("frame #")) << r.text;
  EXPECT_TRUE(r.has("SKIP forward: shape, dtype, device, finite: not run: init_state() failed above")) << r.text;
  EXPECT_TRUE(r.has("4 passed, 1 failed, 10 skipped")) << r.text;
}

TEST(Checker, AStepOfTheWrongShapeIsNamedOnceAndWhatNeedsStepIsSkipped) {
  Report r = check(fixture("fixture_window_step_shape"));
  EXPECT_EQ(r.failures, 1) << r.text;
  EXPECT_TRUE(
      r.has("FAIL step: shape, dtype, device, finite: plugin 'fixture_window_step_shape' step() returned shape "
            "[1, 3, 32] for input [3, 32]; expected the input's shape"))
      << r.text;
  for (const char* skipped : {"step == forward", "prefix == step", "closed loop: step == prefix", "state_bytes"}) {
    EXPECT_TRUE(r.has(std::string("SKIP ") + skipped + ": not run: step() failed above")) << skipped << "\n" << r.text;
  }
  EXPECT_FALSE(r.has("causal = false")) << r.text;
  EXPECT_TRUE(r.has("10 passed, 1 failed, 4 skipped")) << r.text;
}

TEST(Checker, BadParametersFailOnceAndSkipTheRest) {
  Report typo = check(fixture("fixture_window"), {"windw=3"});
  EXPECT_EQ(typo.failures, 1) << typo.text;
  EXPECT_TRUE(typo.has("FAIL parameters: no parameter 'windw'; valid: window, heads\n")) << typo.text;
  EXPECT_TRUE(typo.has("SKIP create: not run: reading the parameters failed above")) << typo.text;
  EXPECT_FALSE(typo.has("was not provided")) << typo.text;

  Report text = check(fixture("fixture_window"), {"window=many"});
  EXPECT_TRUE(text.has("FAIL parameters: --set window=many: ")) << text.text;
  EXPECT_FALSE(text.has("was not provided")) << text.text;

  Report zero = check(fixture("fixture_window"), {"window=0"});
  EXPECT_TRUE(zero.has("FAIL parameters: fixture_window: window must be >= 1, got 0\n")) << zero.text;
  EXPECT_TRUE(zero.has("1 passed, 1 failed, 13 skipped")) << zero.text;
}

TEST(Checker, AStepThatDiffersFromForwardIsReportedByName) {
  Report r = check(fixture("fixture"), {"fault=step_differs"});
  EXPECT_EQ(r.failures, 3) << r.text;
  EXPECT_TRUE(r.has("FAIL step == forward: step against forward, L = 1: relative RMS ")) << r.text;
  EXPECT_TRUE(r.has("(max abs 1.000e-03) exceeds 1.0e-05; first differs at position 0, batch row 0")) << r.text;
  EXPECT_TRUE(r.has("FAIL prefix == step")) << r.text;
  EXPECT_TRUE(r.has("PASS batch rows are independent")) << r.text;
}

TEST(Checker, IncompatibleAndThrowingPluginsFailWithoutCrashing) {
  Report abi = check(fixture("fixture_bad_abi"));
  EXPECT_EQ(abi.failures, 1) << abi.text;
  EXPECT_TRUE(abi.has("FAIL handshake: ")) << abi.text;
  EXPECT_TRUE(abi.has("SDK ABI major: plugin 99, runner 1")) << abi.text;
  Report throwing = check(fixture("fixture"), {"fault=throw_forward"});
  EXPECT_GT(throwing.failures, 0);
  EXPECT_TRUE(throwing.has(
      "FAIL forward: shape, dtype, device, finite: plugin 'fixture' forward(): fixture: asked to fail in forward"))
      << throwing.text;
  Report crash = check(fixture("fixture"), {"fault=crash"});
  EXPECT_TRUE(
      crash.has("FAIL forward: shape, dtype, device, finite: crashed with SIGSEGV (segmentation fault: a bad memory "
                "access) in forward() over 1 tokens\n"))
      << crash.text;
  EXPECT_TRUE(
      crash.has("FAIL bad input is an error, not a crash: crashed with SIGSEGV (segmentation fault: a bad memory "
                "access) in forward() of an input 33 wide\n"))
      << crash.text;
  EXPECT_TRUE(crash.has("6 passed, 2 failed, 7 skipped")) << crash.text;
}
