#include "runner.h"

#include "device.h"
#include "loader.h"
#include "measure.h"
#include "results.h"
#include "safetensors.h"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>

namespace attnbench {
namespace {

using Clock = std::chrono::steady_clock;

// A message for a skipped cell; thrown and caught inside run_cell only.
struct SkipCell {
  std::string reason;
};

c10::ScalarType compute_dtype(const Cell& cell) {
  if (!cell.amp) return at::kFloat;
  if (cell.amp_dtype == "float16") return at::kHalf;
  if (cell.amp_dtype == "bfloat16") return at::kBFloat16;
  return cell.device == "cuda" ? at::kHalf : at::kBFloat16;  // "auto", as torch.autocast picks per device
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string axes_text(const Cell& cell) {
  std::string out;
  for (const auto& [axis, value] : cell.axes) {
    if (axis == "attention") continue;
    auto dot = axis.rfind('.');
    out += fmt::format(" {}={}", dot == std::string::npos ? axis : axis.substr(dot + 1), value);
  }
  return out;
}

std::string cell_line(const Cell& cell) {
  return fmt::format("{:>4}  {}  {:<20}{}", cell.index + 1, cell.hash, cell.label, axes_text(cell));
}

// Embeddings are the costly, shared input of many cells: computed once per distinct data section.
class EmbeddingCache {
 public:
  struct Entry {
    at::Tensor tokens;  // (samples, L, E)
    nlohmann::json info;
  };
  const Entry& get(const Cell& cell, c10::Device device, c10::ScalarType dtype) {
    nlohmann::json key = {{"data", cell.resolved["data"]}, {"device", device.str()}, {"dtype", c10::toString(dtype)},
                          {"seed", cell.seed}};
    std::string hash = hash_json(key);
    auto it = entries_.find(hash);
    if (it != entries_.end()) return it->second;
    const Plugin& plugin = load_plugin(cell.embedder, ATTNBENCH_PLUGIN_EMBEDDER);
    CreateArgs args;
    args.params = complete_params(plugin, cell.embedder_params);
    args.device = device;
    args.dtype = dtype;
    args.seed = static_cast<uint64_t>(cell.seed);
    args.threads = static_cast<int>(cell.threads);
    EmbedderInstance embedder(plugin, args);
    Entry entry;
    entry.tokens = embedder.embed(cell.samples, cell.seq_len).to(device, dtype);
    EmbedderInfo info = embedder.info();
    entry.info = {{"plugin", plugin.name()}, {"version", plugin.version()}, {"description", info.description},
                  {"embed_dim", info.embed_dim}, {"details", params_to_json(info.details)}};
    return entries_.emplace(hash, std::move(entry)).first->second;
  }

 private:
  std::map<std::string, Entry> entries_;
};

void check_finite(const at::Tensor& y, const std::string& plugin, const char* call) {
  if (!at::isfinite(y).all().item<bool>()) {
    throw PluginError(fmt::format("plugin '{}' {} returned NaN or Inf", plugin, call));
  }
}

nlohmann::json stream_json(const StreamTiming& s, int64_t tokens) {
  return {{"time_ms", to_json(s.total_ms)},
          {"per_token_us", to_json(s.per_token_us, /*with_samples=*/false)},
          {"per_position_us", s.per_position_us},
          {"tokens_per_s", s.total_ms.median > 0 ? static_cast<double>(tokens) / (s.total_ms.median / 1000.0) : 0.0}};
}

// State size after 0, 1, 2, 4, ... tokens and after the last, for "state bytes against tokens".
nlohmann::json state_growth(AttentionLayer& layer, const at::Tensor& x) {
  auto state = layer.init_state(x.size(1));
  nlohmann::json tokens = nlohmann::json::array(), bytes = nlohmann::json::array();
  tokens.push_back(0);
  bytes.push_back(layer.state_bytes(*state));
  for (int64_t t = 0; t < x.size(0); ++t) {
    layer.step(x[t], *state);
    int64_t n = t + 1;
    if ((n & (n - 1)) == 0 || n == x.size(0)) {
      tokens.push_back(n);
      bytes.push_back(layer.state_bytes(*state));
    }
  }
  return {{"tokens", tokens}, {"bytes", bytes}};
}

nlohmann::json measure_cell(const Cell& cell, AttentionLayer& layer, const AttentionInfo& info,
                            std::vector<at::Tensor> batches, c10::Device device, const RunOptions& options,
                            const std::string& output_stem) {
  nlohmann::json m = nlohmann::json::object();
  const at::Tensor& x0 = batches.front();
  const int64_t tokens = x0.size(0) * x0.size(1);
  at::Tensor y_full = run_full(layer, x0);
  check_finite(y_full, layer.plugin().name(), "forward()");

  Measurer measurer(layer, batches, cell.measure, device);
  if (cell.has_mode("full")) {
    Stats s = measurer.time_full();
    m["full"] = {{"time_ms", to_json(s)}, {"tokens_per_s", s.median > 0 ? tokens / (s.median / 1000.0) : 0.0}};
  }
  if (cell.has_mode("step")) m["step"] = stream_json(measurer.time_steps(), tokens);
  if (cell.has_mode("prefix")) m["prefix"] = stream_json(measurer.time_prefix(), tokens);

  at::Tensor y_step, y_prefix;
  if (cell.has_mode("consistency") || !options.save_outputs_dir.empty()) {
    y_step = run_steps(layer, x0);
    check_finite(y_step, layer.plugin().name(), "step()");
  }
  if (cell.has_mode("consistency")) {
    if (!info.causal) {
      m["consistency"] = {{"skipped", "the layer is not causal (forward is unmasked), so step cannot match it"}};
    } else {
      y_prefix = run_prefix(layer, x0);
      m["consistency"] = {{"step_vs_full", to_json(compare(y_step, y_full))},
                          {"prefix_vs_step", to_json(compare(y_prefix, y_step))}};
    }
  }
  if (cell.has_mode("rollout")) {
    if (!info.causal) {
      m["rollout"] = {{"skipped", "the layer is not causal (forward is unmasked)"}};
    } else {
      at::Tensor by_step = rollout_steps(layer, x0, cell.seed_len, cell.horizon);
      at::Tensor by_prefix = rollout_prefix(layer, x0, cell.seed_len, cell.horizon);
      check_finite(by_step, layer.plugin().name(), "step() in the closed loop");
      nlohmann::json err = to_json(compare(by_step, by_prefix));
      err["seed_len"] = cell.seed_len;
      err["horizon"] = cell.horizon;
      m["rollout"] = {{"step_vs_prefix", err}};
    }
  }
  nlohmann::json growth = state_growth(layer, x0);
  m["state_bytes"] = growth["bytes"].back();
  m["state_bytes_initial"] = growth["bytes"].front();
  m["state_growth"] = growth;
  m["tokens"] = x0.size(0);
  m["batch"] = x0.size(1);
  m["peak_rss_bytes"] = peak_rss_bytes();
  if (device.is_cuda()) m["peak_cuda_bytes"] = peak_device_bytes(device);

  if (!options.save_outputs_dir.empty()) {
    std::map<std::string, at::Tensor> tensors{{"input", x0}, {"forward", y_full}, {"step", y_step}};
    if (y_prefix.defined()) tensors["prefix"] = y_prefix;
    save_safetensors((std::filesystem::path(options.save_outputs_dir) / (output_stem + ".safetensors")).string(),
                     tensors, {{"cell", cell.hash}, {"attention", cell.label}});
  }
  return m;
}

std::string ms_text(const nlohmann::json& stats) {
  if (stats.is_null()) return "-";
  return fmt::format("{:.3f} ms", stats["median"].get<double>());
}

std::string err_text(const nlohmann::json& e) {
  if (e.is_null() || !e.contains("rel_rms")) return "-";
  return fmt::format("rel {:.3e}  max {:.3e}", e["rel_rms"].get<double>(), e["max_abs"].get<double>());
}

void print_cell_report(const nlohmann::json& r, std::ostream& out) {
  const nlohmann::json& m = r["metrics"];
  auto stability = [](const nlohmann::json& s) {
    return fmt::format("(n={}, cv {:.1f}%{})", s["n"].get<int64_t>(), 100 * s["cv"].get<double>(),
                       s["unstable"].get<bool>() ? ", UNSTABLE" : "");
  };
  if (m.contains("full")) {
    fmt::print(out, "  [Full sequence]  {:>12} | throughput {:.1f} tok/s {}\n", ms_text(m["full"]["time_ms"]),
               m["full"]["tokens_per_s"].get<double>(), stability(m["full"]["time_ms"]));
  }
  for (const char* mode : {"step", "prefix"}) {
    if (!m.contains(mode)) continue;
    const auto& s = m[mode];
    fmt::print(out, "  [Streaming {:<6}] {:>12} | per token p50 {:.1f} us, p99 {:.1f} us {}\n", mode,
               ms_text(s["time_ms"]), s["per_token_us"]["median"].get<double>(), s["per_token_us"]["p99"].get<double>(),
               stability(s["time_ms"]));
  }
  if (m.contains("consistency")) {
    if (m["consistency"].contains("skipped")) {
      fmt::print(out, "  [Consistency]     skipped: {}\n", m["consistency"]["skipped"].get<std::string>());
    } else {
      fmt::print(out, "  [Consistency]     step vs full: {}\n", err_text(m["consistency"]["step_vs_full"]));
      fmt::print(out, "                    prefix vs step: {}\n", err_text(m["consistency"]["prefix_vs_step"]));
    }
  }
  if (m.contains("rollout") && m["rollout"].contains("step_vs_prefix")) {
    const auto& e = m["rollout"]["step_vs_prefix"];
    fmt::print(out, "  [Closed loop]     step vs prefix: {}  (seed_len={}, horizon={})\n", err_text(e),
               e["seed_len"].get<int64_t>(), e["horizon"].get<int64_t>());
  }
  fmt::print(out, "  [State]           {} bytes after {} tokens ({} at start)\n", m["state_bytes"].get<int64_t>(),
             m["tokens"].get<int64_t>(), m["state_bytes_initial"].get<int64_t>());
}

void print_summary(const std::vector<nlohmann::json>& rows, std::ostream& out) {
  if (rows.empty()) return;
  fmt::print(out, "\n{:<40} {:>8} {:>12} {:>12} {:>12} {:>12} {:>11} {:>11} {:>11}\n", "cell", "status", "full",
             "step (all)", "prefix", "tok/s full", "step~full", "prefix~step", "rollout");
  for (const auto& r : rows) {
    const nlohmann::json& m = r.value("metrics", nlohmann::json::object());
    auto get = [&](std::initializer_list<const char*> path) {
      const nlohmann::json* p = &m;
      for (const char* k : path) {
        if (!p->is_object() || !p->contains(k)) return nlohmann::json();
        p = &(*p)[k];
      }
      return *p;
    };
    auto rel = [&](std::initializer_list<const char*> path) {
      nlohmann::json e = get(path);
      return e.is_null() ? std::string("-") : fmt::format("{:.2e}", e.get<double>());
    };
    nlohmann::json tps = get({"full", "tokens_per_s"});
    fmt::print(out, "{:<40} {:>8} {:>12} {:>12} {:>12} {:>12} {:>11} {:>11} {:>11}\n",
               r["label_text"].get<std::string>().substr(0, 40), r["status"].get<std::string>(),
               ms_text(get({"full", "time_ms"})), ms_text(get({"step", "time_ms"})), ms_text(get({"prefix", "time_ms"})),
               tps.is_null() ? "-" : fmt::format("{:.0f}", tps.get<double>()),
               rel({"consistency", "step_vs_full", "rel_rms"}), rel({"consistency", "prefix_vs_step", "rel_rms"}),
               rel({"rollout", "step_vs_prefix", "rel_rms"}));
  }
}

}  // namespace

LoadOptions plugin_aware_options(std::vector<std::string> overrides) {
  LoadOptions options;
  options.overrides = std::move(overrides);
  options.has_param = [](const std::string& plugin, const std::string& key) {
    return load_plugin(plugin, ATTNBENCH_PLUGIN_ATTENTION).find_param(key) != nullptr;
  };
  options.complete_params = [](attnbench_plugin_kind kind, const std::string& plugin, const Params& given) {
    return complete_params(load_plugin(plugin, kind), given);
  };
  return options;
}

void print_cells(const Study& study, std::ostream& out) {
  for (const Cell& cell : study.cells) fmt::print(out, "{}\n", cell_line(cell));
  fmt::print(out, "{} cells\n", study.cells.size());
}

void shard_cells(Study& study, int64_t index, int64_t count) {
  if (count < 1 || index < 1 || index > count) {
    throw ConfigError(fmt::format("--shard {}/{}: expected i/n with 1 <= i <= n", index, count));
  }
  std::vector<Cell> kept;
  for (Cell& cell : study.cells) {
    if (static_cast<int64_t>(cell.index) % count == index - 1) kept.push_back(std::move(cell));
  }
  study.cells = std::move(kept);
}

void filter_cells(Study& study, const std::string& pattern) {
  std::regex re;
  try {
    re = std::regex(pattern);
  } catch (const std::regex_error& e) {
    throw ConfigError(fmt::format("--filter '{}': not a valid regular expression ({})", pattern, e.what()));
  }
  std::vector<Cell> kept;
  for (Cell& cell : study.cells) {
    if (std::regex_search(cell_line(cell), re)) kept.push_back(std::move(cell));
  }
  if (kept.empty()) throw ConfigError(fmt::format("--filter '{}' matches none of the {} cells", pattern, study.cells.size()));
  study.cells = std::move(kept);
}

int run_study(const Study& study, const RunOptions& options, std::ostream& out) {
  ResultsFile results(study.results_path);
  if (results.repaired()) fmt::print(out, "note: {}: cut off a half-written last line\n", study.results_path);
  nlohmann::json context = make_context();
  fmt::print(out, "attnbench study '{}' ({}): {} cells -> {}\n", study.name, study.file, study.cells.size(),
             study.results_path);
  fmt::print(out, "host {}, cpu {}, torch {}, build {}, commit {}\n", context["host"].get<std::string>(),
             context["cpu"].get<std::string>(), context["torch"].get<std::string>(),
             context["build_type"].get<std::string>(), context["git_commit"].get<std::string>());
  if (std::string(ATTNBENCH_BUILD_TYPE) != "Release") {
    fmt::print(out, "warning: this is a {} build; timings are not representative (configure with "
                    "-DCMAKE_BUILD_TYPE=Release)\n", ATTNBENCH_BUILD_TYPE);
  }
  if (context["cpu_scaling_governor"] != "" && context["cpu_scaling_governor"] != "performance") {
    fmt::print(out, "warning: CPU frequency scaling governor is '{}'; set 'performance' for stable timings\n",
               context["cpu_scaling_governor"].get<std::string>());
  }

  EmbeddingCache embeddings;
  std::vector<nlohmann::json> summary;
  bool any_error = false;
  const auto start = Clock::now();
  size_t ran = 0, position = 0;
  const size_t total = study.cells.size();
  for (const Cell& cell : study.cells) {
    ++position;
    std::string label_text = cell.label + axes_text(cell);
    auto done = results.done().find(cell.hash);
    if (done != results.done().end() && !options.force) {
      fmt::print(out, "[{}/{}] {}: already in {} ({}), skipped; --force reruns it\n", position, total,
                 label_text, study.results_path, done->second);
      continue;
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::string eta = ran > 0 ? fmt::format(", ETA {:.0f} s", elapsed / ran * static_cast<double>(total - position + 1)) : "";
    fmt::print(out, "\n[{}/{}] {} (elapsed {:.0f} s{})\n", position, total, label_text, elapsed, eta);
    out.flush();

    nlohmann::json line = {{"schema_version", kResultsSchemaVersion},
                           {"study", study.name},
                           {"cell", cell.index},
                           {"hash", cell.hash},
                           {"time", now_iso()},
                           {"params", cell.resolved},
                           {"axes", cell.axes},
                           {"attention", {{"name", cell.label}, {"plugin", cell.plugin}}},
                           {"context", context}};
    const c10::Device device = cell.device == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    try {
      if (device.is_cuda() && !cuda_available()) throw SkipCell{cuda_unavailable_reason()};
      c10::InferenceMode inference;
      set_threads(static_cast<int>(cell.threads));
      reset_peak_memory(device);
      const c10::ScalarType dtype = compute_dtype(cell);
      const EmbeddingCache::Entry& data = embeddings.get(cell, device, dtype);
      line["embedder"] = data.info;
      fmt::print(out, "  data: {} via {} (E={})\n", data.info["description"].get<std::string>(),
                 data.info["plugin"].get<std::string>(), data.info["embed_dim"].get<int64_t>());

      const Plugin& plugin = load_plugin(cell.plugin, ATTNBENCH_PLUGIN_ATTENTION);
      CreateArgs args;
      args.params = cell.attention_params;
      args.device = device;
      args.dtype = dtype;
      args.embed_dim = data.tokens.size(2);
      args.seed = static_cast<uint64_t>(cell.seed);
      args.threads = static_cast<int>(cell.threads);
      AttentionLayer layer(plugin, args);
      AttentionInfo info = layer.info();
      line["attention"] = {{"name", cell.label},          {"plugin", plugin.name()},
                           {"version", plugin.version()},  {"path", plugin.path},
                           {"description", info.description}, {"details", params_to_json(info.details)}};
      if (std::find(info.devices.begin(), info.devices.end(), device.is_cuda() ? "cuda" : "cpu") == info.devices.end()) {
        throw SkipCell{fmt::format("plugin '{}' does not run on {}", plugin.name(), cell.device)};
      }
      std::vector<at::Tensor> batches;
      for (int64_t b = 0; b < cell.samples; b += cell.batch) {
        batches.push_back(data.tokens.slice(0, b, b + cell.batch).transpose(0, 1).contiguous());
      }
      line["metrics"] = measure_cell(cell, layer, info, batches, device, options,
                                     fmt::format("{:04d}_{}_{}", cell.index, cell.label, cell.hash));
      line["status"] = "ok";
      line["dtype"] = c10::toString(dtype);
    } catch (const SkipCell& skip) {
      line["status"] = "skipped";
      line["message"] = skip.reason;
    } catch (const std::exception& e) {
      // c10::Error carries a C++ backtrace after the first line; the first line is the message.
      std::string message = e.what();
      if (dynamic_cast<const c10::Error*>(&e)) message = static_cast<const c10::Error&>(e).what_without_backtrace();
      if (message.find("out of memory") != std::string::npos) {
        release_cached_memory(device);
        message += " (lower data.seq_len, run.batch or the layer's size for this cell)";
      }
      line["status"] = "error";
      line["message"] = message;
      any_error = true;
    }
    results.append(line);
    ++ran;
    line["label_text"] = label_text;
    if (line["status"] == "ok") {
      print_cell_report(line, out);
    } else {
      fmt::print(out, "  {}: {}\n", line["status"].get<std::string>(), line["message"].get<std::string>());
    }
    summary.push_back(line);
  }
  print_summary(summary, out);
  fmt::print(out, "\nresults: {} ({:.1f} s)\n", study.results_path,
             std::chrono::duration<double>(Clock::now() - start).count());
  return any_error ? 1 : 0;
}

}  // namespace attnbench
