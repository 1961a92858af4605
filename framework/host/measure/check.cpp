#include "measure/check.h"

#include "measure/device.h"
#include "measure/protocols.h"
#include "plugins/loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <functional>
#include <memory>

namespace attnbench {
namespace {

// A failed expectation inside a check; anything else thrown (PluginError, c10::Error) fails it too.
struct CheckFailed {
  std::string why;
};

void expect(bool ok, const std::string& why) {
  if (!ok) throw CheckFailed{why};
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tolerance, const std::string& what) {
  ErrorStats e = compare(a, b);
  expect(e.rel_rms <= tolerance, fmt::format("{}: relative RMS {:.3e} (max abs {:.3e}) exceeds {:.1e}", what, e.rel_rms,
                                             e.max_abs, tolerance));
}

}  // namespace

int check_plugin(const std::string& spec, const CheckOptions& options, std::ostream& out) {
  c10::InferenceMode inference;
  int failures = 0, passes = 0;
  auto run = [&](const std::string& name, const std::function<void()>& body) {
    try {
      body();
      fmt::print(out, "PASS {}\n", name);
      ++passes;
      return true;
    } catch (const CheckFailed& f) {
      fmt::print(out, "FAIL {}: {}\n", name, f.why);
    } catch (const c10::Error& e) {
      fmt::print(out, "FAIL {}: {}\n", name, e.what_without_backtrace());
    } catch (const std::exception& e) {
      fmt::print(out, "FAIL {}: {}\n", name, e.what());
    }
    ++failures;
    return false;
  };
  auto finish = [&]() {
    fmt::print(out, "{}: {} passed, {} failed\n", spec, passes, failures);
    return failures;
  };

  const Plugin* plugin = nullptr;
  if (!run("handshake", [&] { plugin = &load_plugin(spec, ATTNBENCH_PLUGIN_ATTENTION); })) return finish();
  const c10::Device device = options.device == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (device.is_cuda() && !cuda_available()) {
    fmt::print(out, "FAIL device: {}\n", cuda_unavailable_reason());
    ++failures;
    return finish();
  }
  CreateArgs args;
  args.device = device;
  args.embed_dim = options.embed_dim;
  run("parameters", [&] {
    Params given;
    for (const std::string& item : options.params) {
      size_t eq = item.find('=');
      expect(eq != std::string::npos, "'" + item + "' is not key=value");
      const attnbench_param_spec_v1* param = plugin->find_param(item.substr(0, eq));
      expect(param != nullptr, fmt::format("no parameter '{}'; valid: {}", item.substr(0, eq), plugin->param_names()));
      given.set(param->name, parse_param_text(*param, item.substr(eq + 1)));
    }
    args.params = complete_params(*plugin, given);
  });
  auto make = [&]() { return std::make_unique<AttentionLayer>(*plugin, args); };
  std::unique_ptr<AttentionLayer> layer;
  if (!run("create", [&] { layer = make(); })) return finish();

  AttentionInfo info;
  run("info", [&] {
    info = layer->info();
    expect(info.embed_dim == options.embed_dim,
           fmt::format("info().embed_dim is {}, the layer was created for {}", info.embed_dim, options.embed_dim));
    const std::string type = device.is_cuda() ? "cuda" : "cpu";
    expect(std::find(info.devices.begin(), info.devices.end(), type) != info.devices.end(),
           "info().devices does not list " + type + ", where it was created");
  });

  // A private, seeded generator: the same plugin gets the same verdict and numbers on every run.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(/*seed=*/0);
  at::Tensor x = at::empty({options.length, options.batch, options.embed_dim}).normal_(0.0, 1.0, gen).to(device);
  at::Tensor full;
  run("forward shape, dtype, device, finite", [&] {
    full = run_full(*layer, x);  // AttentionLayer checks the shape
    expect(full.scalar_type() == x.scalar_type(), fmt::format("forward returned {} for {} input", c10::toString(full.scalar_type()), c10::toString(x.scalar_type())));
    expect(full.device() == x.device(), "forward returned a tensor on " + full.device().str());
    expect(at::isfinite(full).all().item<bool>(), "forward returned NaN or Inf");
  });
  if (!full.defined()) return finish();
  at::Tensor steps;
  run("step shape and finite", [&] {
    steps = run_steps(*layer, x);
    expect(at::isfinite(steps).all().item<bool>(), "step returned NaN or Inf");
  });
  if (info.causal && steps.defined()) {
    run("step == forward", [&] { expect_close(steps, full, options.tolerance, "step against forward"); });
    run("prefix == step", [&] { expect_close(run_prefix(*layer, x), steps, options.tolerance, "prefix recompute against step"); });
    run("closed loop: step == prefix", [&] {
      const int64_t seed_len = std::max<int64_t>(1, options.length / 4);
      expect_close(rollout_steps(*layer, x, seed_len, 8), rollout_prefix(*layer, x, seed_len, 8), 10 * options.tolerance,
                   "closed-loop rollouts");
    });
  } else {
    fmt::print(out, "SKIP step == forward, prefix == step, closed loop: the layer reports causal = false\n");
  }
  run("forward continues from its state", [&] {
    auto state = layer->init_state(options.batch);
    const int64_t cut = options.length / 3;
    at::Tensor first = layer->forward(x.slice(0, 0, cut), *state);
    at::Tensor rest = layer->forward(x.slice(0, cut), *state);
    expect_close(at::cat({first, rest}), full, options.tolerance, "forward in two calls against one");
  });
  run("batch rows are independent", [&] {
    for (int64_t b = 0; b < options.batch; ++b) {
      expect_close(run_full(*layer, x.slice(1, b, b + 1)), full.slice(1, b, b + 1), options.tolerance,
                   fmt::format("row {} alone against in the batch", b));
    }
  });
  run("deterministic", [&] {
    expect(at::equal(run_full(*layer, x), full), "a second forward from a fresh state differs from the first");
    expect(at::equal(run_full(*make(), x), full), "a second instance with the same seed gives other outputs");
  });
  run("state_bytes", [&] {
    auto state = layer->init_state(options.batch);
    const int64_t empty = layer->state_bytes(*state);
    expect(empty >= 0, fmt::format("state_bytes of an empty state is {}", empty));
    layer->forward(x, *state);
    const int64_t after = layer->state_bytes(*state);
    expect(after >= empty, fmt::format("state_bytes shrank from {} to {} after {} tokens", empty, after, options.length));
    auto stepped = layer->init_state(options.batch);
    for (int64_t t = 0; t < options.length; ++t) layer->step(x[t], *stepped);
    expect(layer->state_bytes(*stepped) == after,
           fmt::format("state_bytes after {} steps ({}) differs from after forward ({})", options.length,
                       layer->state_bytes(*stepped), after));
  });
  run("bad input is an error, not a crash", [&] {
    auto state = layer->init_state(options.batch);
    bool threw = false;
    try {
      layer->forward(at::randn({2, options.batch, options.embed_dim + 1}).to(device), *state);
    } catch (const PluginError&) {
      threw = true;  // the plugin's exception arrived as a message, through the boundary
    }
    expect(threw, "forward accepted an input of the wrong width");
  });
  return finish();
}

}  // namespace attnbench
