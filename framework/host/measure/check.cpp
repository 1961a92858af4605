#include "measure/check.h"

#include "measure/device.h"
#include "measure/isolate.h"
#include "measure/protocols.h"
#include "plugins/loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>

namespace attnbench {
namespace {

// Outputs fed back in the closed-loop check, at most; the loop of each length L ends at L tokens.
constexpr int64_t kLoopHorizon = 8;
// Positions prefix recompute is checked at beyond the last of each length, drawn with the seed.
constexpr int64_t kExtraPrefixPositions = 8;

// A failed expectation inside a check; anything else thrown (PluginError, c10::Error) fails it too.
struct CheckFailed {
  std::string why;
};
// A check that does not apply to this plugin or these options.
struct CheckSkipped {
  std::string why;
};

void expect(bool ok, const std::string& why) {
  if (!ok) throw CheckFailed{why};
}

using PositionName = std::function<std::string(int64_t)>;

std::string position_text(int64_t t) { return fmt::format("position {}", t); }

// Where `a` first differs from `reference`, both (N, B, ...): the first index along dim 0 at which a batch
// row's relative error exceeds `tolerance` (any difference when 0), and that row.
std::string first_difference(const at::Tensor& a, const at::Tensor& reference, double tolerance,
                             const PositionName& name) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kDouble), y = reference.detach().to(at::kCPU, at::kDouble);
  const int64_t n = x.size(0), batch = x.dim() > 1 ? x.size(1) : 1;
  const at::Tensor diff = (x - y).reshape({n, batch, -1}).norm(2, -1), size = y.reshape({n, batch, -1}).norm(2, -1);
  const at::Tensor rel = at::where(size > 0, diff / size, diff);
  const at::Tensor bad = (rel > tolerance) | at::isnan(rel);
  const at::Tensor rows = bad.any(1).nonzero();
  if (rows.numel() == 0) return "no single position differs by more than that";
  const int64_t t = rows[0][0].item<int64_t>();
  const int64_t b = bad[t].nonzero()[0][0].item<int64_t>();
  return fmt::format("first differs at {}, batch row {} (relative {:.2e})", name(t), b, rel[t][b].item<double>());
}

void expect_close(const at::Tensor& a, const at::Tensor& reference, double tolerance, const std::string& what,
                  const PositionName& name = position_text) {
  const ErrorStats e = compare(a, reference);
  if (e.rel_rms <= tolerance) return;
  throw CheckFailed{fmt::format("{}: relative RMS {:.3e} (max abs {:.3e}) exceeds {:.1e}; {}", what, e.rel_rms,
                                e.max_abs, tolerance, first_difference(a, reference, tolerance, name))};
}

void expect_equal(const at::Tensor& a, const at::Tensor& reference, const std::string& what) {
  if (at::equal(a, reference)) return;
  throw CheckFailed{fmt::format("{}; {}", what, first_difference(a, reference, 0, position_text))};
}

void expect_finite(const at::Tensor& y, const std::string& what) {
  const at::Tensor bad = at::logical_not(at::isfinite(y.detach())).reshape({y.size(0), -1}).any(1).nonzero();
  if (bad.numel() == 0) return;
  throw CheckFailed{fmt::format("{} returned NaN or Inf, first at position {}", what, bad[0][0].item<int64_t>())};
}

// What the checks work with, built on first use in the process that runs them: with isolation, each
// check's child builds its own, so a plugin that crashes while loading or creating fails that check.
class Subject {
 public:
  Subject(std::string spec, const CheckOptions& options, std::vector<int64_t> lengths)
      : options(options), lengths(std::move(lengths)), spec_(std::move(spec)) {}

  const CheckOptions& options;
  const std::vector<int64_t> lengths;

  c10::Device device() const { return options.device == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU); }
  int64_t longest() const { return lengths.back(); }

  const Plugin& plugin() {
    if (plugin_ == nullptr) {
      set_activity("loading the plugin");
      plugin_ = &load_plugin(spec_, ATTNBENCH_PLUGIN_ATTENTION);
    }
    return *plugin_;
  }

  const CreateArgs& args() {
    if (!args_ready_) {
      Params given;
      for (const std::string& item : options.params) {
        const size_t eq = item.find('=');
        expect(eq != std::string::npos, "'" + item + "' is not key=value");
        const attnbench_param_spec_v1* param = plugin().find_param(item.substr(0, eq));
        expect(param != nullptr,
               fmt::format("no parameter '{}'; valid: {}", item.substr(0, eq), plugin().param_names()));
        try {
          given.set(param->name, parse_param_text(*param, item.substr(eq + 1)));
        } catch (const std::exception& e) {
          throw CheckFailed{fmt::format("--set {}: {}", item, e.what())};
        }
      }
      args_.params = complete_params(plugin(), given);
      args_.device = device();
      args_.embed_dim = options.embed_dim;
      args_.seed = options.seed;
      set_activity("the plugin's validate()");
      Failure failure;
      validate_params(plugin(), args_.params, options.embed_dim, failure);
      expect(failure.status == ATTNBENCH_OK, failure.message);
      args_ready_ = true;
    }
    return args_;
  }

  std::unique_ptr<AttentionLayer> create() {
    const CreateArgs& a = args();
    if (device().is_cuda() && !cuda_available()) throw CheckFailed{cuda_unavailable_reason()};
    set_activity("creating the layer");
    return std::make_unique<AttentionLayer>(plugin(), a);
  }

  AttentionLayer& layer() {
    if (!layer_) layer_ = create();
    return *layer_;
  }

  // (longest, B, E), seeded: the same plugin gets the same verdict and numbers on every run.
  const at::Tensor& input() {
    if (!input_.defined()) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
      input_ = at::empty({longest(), options.batch, options.embed_dim}).normal_(0.0, 1.0, gen).to(device());
    }
    return input_;
  }
  at::Tensor input(int64_t length) { return input().slice(0, 0, length); }

  at::Tensor forward(int64_t length) {
    AttentionLayer& l = layer();
    const at::Tensor x = input(length);
    set_activity(fmt::format("forward() over {} tokens", length));
    return run_full(l, x);
  }
  at::Tensor steps(int64_t length) {
    AttentionLayer& l = layer();
    const at::Tensor x = input(length);
    set_activity(fmt::format("step(), streaming {} tokens", length));
    return run_steps(l, x);
  }

 private:
  std::string spec_;
  const Plugin* plugin_ = nullptr;
  CreateArgs args_;
  bool args_ready_ = false;
  std::unique_ptr<AttentionLayer> layer_;
  at::Tensor input_;
};

struct Check {
  std::string name;
  std::string what;                // how a later check that needs it names it: "step()"
  std::vector<std::string> needs;  // earlier checks (by `what`) it cannot run without
  bool causal_only = false;
  // Throws CheckFailed or CheckSkipped, or anything the plugin's calls throw; returns what later checks
  // need to know, or a note for the PASS line under "note".
  std::function<nlohmann::json(Subject&)> body;
};

// The checks, in the order they run.
std::vector<Check> make_checks() {
  std::vector<Check> checks;
  auto add = [&](std::string name, std::string what, std::vector<std::string> needs, bool causal_only,
                 std::function<nlohmann::json(Subject&)> body) {
    checks.push_back({std::move(name), std::move(what), std::move(needs), causal_only, std::move(body)});
  };

  add("handshake", "loading the plugin", {}, false, [](Subject& s) {
    const Plugin& p = s.plugin();
    return nlohmann::json{{"note", fmt::format("{} {}, {}", p.name(), p.version(), p.path)}};
  });
  add("parameters", "reading the parameters", {"loading the plugin"}, false, [](Subject& s) {
    s.args();
    return nlohmann::json::object();
  });
  add("create", "creating the layer", {"reading the parameters"}, false, [](Subject& s) {
    s.layer();
    return nlohmann::json::object();
  });
  add("info", "info()", {"creating the layer"}, false, [](Subject& s) {
    set_activity("info()");
    const AttentionInfo info = s.layer().info();
    expect(info.embed_dim == s.options.embed_dim,
           fmt::format("info().embed_dim is {}, the layer was created for {}", info.embed_dim, s.options.embed_dim));
    const std::string type = s.device().is_cuda() ? "cuda" : "cpu";
    expect(std::find(info.devices.begin(), info.devices.end(), type) != info.devices.end(),
           "info().devices does not list " + type + ", where it was created");
    return nlohmann::json{{"causal", info.causal}};
  });
  add("init_state", "init_state()", {"creating the layer"}, false, [](Subject& s) {
    for (int64_t batch : std::set<int64_t>{1, s.options.batch}) {
      set_activity(fmt::format("init_state({})", batch));
      s.layer().init_state(batch);
    }
    return nlohmann::json::object();
  });
  add("forward: shape, dtype, device, finite", "forward()", {"init_state()"}, false, [](Subject& s) {
    for (int64_t length : s.lengths) {
      const at::Tensor y = s.forward(length);  // AttentionLayer checks the shape
      const at::Tensor& x = s.input();
      expect(y.scalar_type() == x.scalar_type(),
             fmt::format("forward returned {} for {} input", c10::toString(y.scalar_type()),
                         c10::toString(x.scalar_type())));
      expect(y.device() == x.device(), "forward returned a tensor on " + y.device().str());
      expect_finite(y, fmt::format("forward over {} tokens", length));
    }
    return nlohmann::json::object();
  });
  add("step: shape, dtype, device, finite", "step()", {"init_state()"}, false, [](Subject& s) {
    const at::Tensor& x = s.input();
    auto state = s.layer().init_state(s.options.batch);
    set_activity("step() on the first token");
    const at::Tensor y = s.layer().step(x[0], *state);  // AttentionLayer checks the shape
    expect(
        y.scalar_type() == x.scalar_type(),
        fmt::format("step returned {} for {} input", c10::toString(y.scalar_type()), c10::toString(x.scalar_type())));
    expect(y.device() == x.device(), "step returned a tensor on " + y.device().str());
    for (int64_t length : s.lengths) expect_finite(s.steps(length), fmt::format("step, streaming {} tokens,", length));
    return nlohmann::json::object();
  });
  add("step == forward", "", {"forward()", "step()", "info()"}, true, [](Subject& s) {
    for (int64_t length : s.lengths) {
      expect_close(s.steps(length), s.forward(length), s.options.tolerance,
                   fmt::format("step against forward, L = {}", length));
    }
    return nlohmann::json::object();
  });
  add("prefix == step", "", {"forward()", "step()", "info()"}, true, [](Subject& s) {
    // The last position of each length (a forward from a fresh state over exactly that many tokens), and
    // a few drawn with the seed.
    std::set<int64_t> chosen;
    for (int64_t length : s.lengths) chosen.insert(length - 1);
    std::mt19937_64 rng(s.options.seed);  // its output is the same everywhere; a distribution's is not
    for (int64_t i = 0; i < kExtraPrefixPositions; ++i) chosen.insert(static_cast<int64_t>(rng() % s.longest()));
    const std::vector<int64_t> positions(chosen.begin(), chosen.end());
    const at::Tensor steps = s.steps(s.longest());
    set_activity(fmt::format("forward() from a fresh state, prefix recompute at {} positions", positions.size()));
    const at::Tensor prefix = run_prefix(s.layer(), s.input(), positions);
    const at::Tensor rows = steps.index_select(0, at::tensor(positions, at::kLong).to(steps.device()));
    expect_close(prefix, rows, s.options.tolerance, "prefix recompute against step",
                 [&](int64_t i) { return position_text(positions[static_cast<size_t>(i)]); });
    return nlohmann::json::object();
  });
  add("closed loop: step == prefix", "", {"forward()", "step()", "info()"}, true, [](Subject& s) {
    // The loop ends at L tokens in all, so that a layer with a hard capacity can be checked up to it.
    for (int64_t length : s.lengths) {
      const int64_t horizon = std::min(kLoopHorizon, length - 1), seed_len = length - horizon;
      if (horizon == 0) continue;
      set_activity(fmt::format("the closed loop, {} outputs fed back after {} tokens", horizon, seed_len));
      const at::Tensor by_step = rollout_steps(s.layer(), s.input(), seed_len, horizon);
      const at::Tensor by_prefix = rollout_prefix(s.layer(), s.input(), seed_len, horizon);
      expect_close(by_step, by_prefix, 10 * s.options.tolerance,
                   fmt::format("closed loop, {} outputs fed back after {} tokens, step against prefix recompute",
                               horizon, seed_len),
                   [&](int64_t h) { return fmt::format("output {} of the loop (position {})", h, seed_len + h); });
    }
    return nlohmann::json::object();
  });
  add("forward continues from its state", "", {"forward()"}, false, [](Subject& s) {
    for (int64_t length : s.lengths) {
      if (length < 2) continue;
      const at::Tensor full = s.forward(length);
      for (int64_t cut : std::set<int64_t>{1, std::max<int64_t>(1, length / 3), length - 1}) {
        set_activity(fmt::format("forward() over {} tokens, then {} more from its state", cut, length - cut));
        auto state = s.layer().init_state(s.options.batch);
        const at::Tensor first = s.layer().forward(s.input(length).slice(0, 0, cut), *state);
        const at::Tensor rest = s.layer().forward(s.input(length).slice(0, cut), *state);
        expect_close(
            at::cat({first, rest}), full, s.options.tolerance,
            fmt::format("forward over {} tokens then {} more, against one forward over {}", cut, length - cut, length));
      }
    }
    return nlohmann::json::object();
  });
  add("batch rows are independent", "", {"forward()"}, false, [](Subject& s) {
    const int64_t batch = s.options.batch;
    if (batch < 2) throw CheckSkipped{"it needs a batch of at least 2 (--batch 1 was given)"};
    for (int64_t length : s.lengths) {
      const at::Tensor full = s.forward(length);
      for (int64_t b = 0; b < batch; ++b) {
        set_activity(fmt::format("forward() over {} tokens of batch row {} alone", length, b));
        expect_close(
            run_full(s.layer(), s.input(length).slice(1, b, b + 1)), full.slice(1, b, b + 1), s.options.tolerance,
            fmt::format("batch row {} run alone, against the same row in a batch of {}, L = {}", b, batch, length));
      }
    }
    return nlohmann::json::object();
  });
  add("deterministic", "", {"forward()"}, false, [](Subject& s) {
    for (int64_t length : s.lengths) {
      expect_equal(s.forward(length), s.forward(length),
                   fmt::format("a second forward over {} tokens from a fresh state differs from the first", length));
    }
    const at::Tensor full = s.forward(s.longest());
    auto second = s.create();
    set_activity(fmt::format("forward() of a second instance over {} tokens", s.longest()));
    expect_equal(run_full(*second, s.input()), full,
                 fmt::format("a second instance with the same seed gives other outputs over {} tokens", s.longest()));
    return nlohmann::json::object();
  });
  add("state_bytes", "", {"forward()", "step()"}, false, [](Subject& s) {
    AttentionLayer& layer = s.layer();
    set_activity("state_bytes() of an empty state");
    const int64_t empty = layer.state_bytes(*layer.init_state(s.options.batch));
    expect(empty >= 0, fmt::format("state_bytes of an empty state is {}", empty));
    for (int64_t length : s.lengths) {
      set_activity(fmt::format("state_bytes() after {} tokens", length));
      auto state = layer.init_state(s.options.batch);
      layer.forward(s.input(length), *state);
      const int64_t after = layer.state_bytes(*state);
      expect(after >= empty,
             fmt::format("state_bytes shrank from {} to {} after a forward over {} tokens", empty, after, length));
      auto stepped = layer.init_state(s.options.batch);
      layer.reserve(*stepped, length);
      for (int64_t t = 0; t < length; ++t) layer.step(s.input()[t], *stepped);
      const int64_t streamed = layer.state_bytes(*stepped);
      expect(streamed == after,
             fmt::format("state_bytes after {} steps ({}) differs from after a forward over as many ({})", length,
                         streamed, after));
    }
    return nlohmann::json::object();
  });
  add("bad input is an error, not a crash", "", {"init_state()"}, false, [](Subject& s) {
    auto state = s.layer().init_state(s.options.batch);
    set_activity(fmt::format("forward() of an input {} wide", s.options.embed_dim + 1));
    bool threw = false;
    try {
      s.layer().forward(at::randn({2, s.options.batch, s.options.embed_dim + 1}).to(s.device()), *state);
    } catch (const PluginError&) {
      threw = true;  // the plugin's exception arrived as a message, through the boundary
    }
    expect(threw, "forward accepted an input of the wrong width");
    return nlohmann::json::object();
  });
  return checks;
}

// Runs one check's body where it is called and says how it went: {status: pass|fail|skip, why, facts}.
nlohmann::json run_body(const Check& check, Subject& subject) {
  c10::InferenceMode inference;
  try {
    nlohmann::json facts = check.body(subject);
    return {{"status", "pass"}, {"facts", facts}};
  } catch (const CheckFailed& f) {
    return {{"status", "fail"}, {"why", f.why}};
  } catch (const CheckSkipped& s) {
    return {{"status", "skip"}, {"why", s.why}};
  } catch (const c10::Error& e) {
    return {{"status", "fail"}, {"why", e.what_without_backtrace()}};
  } catch (const std::exception& e) {
    return {{"status", "fail"}, {"why", e.what()}};
  }
}

nlohmann::json run_isolated(const Check& check, Subject& subject, double timeout_s) {
  const ChildOutcome outcome = run_in_child(
      [&] {
        set_threads(1);  // conformance, not speed: one thread is the same on every machine and cheap on a shared one
        return run_body(check, subject).dump();
      },
      timeout_s);
  if (!outcome.finished) return {{"status", "fail"}, {"why", outcome.failure()}};
  return nlohmann::json::parse(outcome.payload);
}

}  // namespace

std::vector<int64_t> check_lengths(const CheckOptions& options) {
  const int64_t longest = std::max<int64_t>(1, options.max_length);
  std::set<int64_t> lengths{1, longest};
  for (int64_t power = 1; power + 1 < longest; power *= 2) lengths.insert(power + 1);
  if (longest > 2) {
    std::mt19937_64 rng(options.seed);
    lengths.insert(2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(longest - 1)));
  }
  return {lengths.begin(), lengths.end()};
}

int check_plugin(const std::string& spec, const CheckOptions& options, std::ostream& out) {
  const std::vector<int64_t> lengths = check_lengths(options);
  std::string length_text;
  for (int64_t l : lengths) length_text += (length_text.empty() ? "" : " ") + std::to_string(l);
  fmt::print(out,
             "check-plugin {}: embed_dim {}, batch {}, device {}, float32, seed {}, tolerance {:.1e} (relative RMS; "
             "the closed loop {:.1e})\n",
             spec, options.embed_dim, options.batch, options.device, options.seed, options.tolerance,
             10 * options.tolerance);
  fmt::print(out,
             "sequence lengths: {} (1, one past each power of two, the longest, one drawn with the seed; "
             "--seq-len N sets the longest)\n",
             length_text);
  fmt::print(out, "{}\n",
             options.isolate ? "each check runs in its own process: a crash fails that check only"
                             : "every check runs in this process (--in-process): a crash ends the report");
  out.flush();

  Subject subject(spec, options, lengths);
  // A check's `what` -> "" when it passed, else the failure that stopped it: "init_state() failed", also
  // for the checks skipped because of it, so a skip names the cause and not the check in between.
  std::map<std::string, std::string> stopped_by;
  bool causal = true;
  int passes = 0, failures = 0, skips = 0;
  for (const Check& check : make_checks()) {
    std::string cause;
    for (const std::string& need : check.needs) {
      auto it = stopped_by.find(need);
      if (it != stopped_by.end() && !it->second.empty()) {
        cause = it->second;
        break;
      }
    }
    std::string skip_why = cause.empty() ? "" : "not run: " + cause + " above";
    if (skip_why.empty() && check.causal_only && !causal) {
      skip_why = "the layer reports causal = false (its forward is unmasked), so step cannot match forward";
    }
    nlohmann::json result = skip_why.empty() ? (options.isolate ? run_isolated(check, subject, options.timeout_s)
                                                                : run_body(check, subject))
                                             : nlohmann::json{{"status", "skip"}, {"why", skip_why}};
    const std::string status = result["status"];
    if (status == "pass") {
      ++passes;
      const nlohmann::json& facts = result["facts"];
      if (facts.contains("causal")) causal = facts["causal"].get<bool>();
      fmt::print(out, "PASS {}{}\n", check.name, facts.contains("note") ? ": " + facts["note"].get<std::string>() : "");
    } else if (status == "fail") {
      ++failures;
      fmt::print(out, "FAIL {}: {}\n", check.name, result["why"].get<std::string>());
    } else {
      ++skips;
      fmt::print(out, "SKIP {}: {}\n", check.name, result["why"].get<std::string>());
    }
    out.flush();
    if (!check.what.empty()) {
      stopped_by[check.what] = status == "pass" ? ""
                               : status == "fail" || cause.empty()
                                   ? check.what + (status == "fail" ? " failed" : " was skipped")
                                   : cause;
    }
  }
  fmt::print(out, "{}: {} passed, {} failed, {} skipped\n", spec, passes, failures, skips);
  out.flush();
  return failures;
}

}  // namespace attnbench
