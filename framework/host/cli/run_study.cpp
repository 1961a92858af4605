#include "cli/run_study.h"

#include "measure/device.h"
#include "measure/inputs.h"
#include "measure/isolate.h"
#include "measure/mode.h"
#include "plugins/loader.h"
#include "results/console.h"
#include "results/context.h"
#include "results/results_file.h"
#include "study/select.h"

#include <attnbench/support/safetensors.h>

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

namespace attnbench {
namespace {

using Clock = std::chrono::steady_clock;

// A message for a skipped cell; thrown and caught inside run_study only.
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

std::string join(const std::vector<std::string>& items, const std::string& separator = " ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

void save_outputs(CellContext& context, const std::string& dir, const std::string& stem) {
  std::map<std::string, at::Tensor> tensors{
      {"input", context.first()}, {"forward", context.full_output()}, {"step", context.step_output()}};
  std::map<std::string, std::string> metadata{{"cell", context.cell.hash}, {"attention", context.cell.label}};
  if (context.has_prefix_output()) {
    tensors["prefix"] = context.prefix_output(context.prefix_positions());
    metadata["prefix_positions"] = context.prefix_positions().empty() ? "all" : nlohmann::json(context.prefix_positions()).dump();
  }
  save_safetensors((std::filesystem::path(dir) / (stem + ".safetensors")).string(), tensors, metadata);
}

// Red on a terminal, as it is elsewhere.
std::string red(const std::string& text, bool color) { return color ? "\033[31m" + text + "\033[0m" : text; }

nlohmann::json context_from_child() {
  const ChildOutcome outcome = run_in_child([] { return make_context().dump(); });
  if (!outcome.finished) throw std::runtime_error("gathering the machine's facts: the process " + outcome.failure());
  return nlohmann::json::parse(outcome.payload);
}

// The bound on the cell's CPU tensor bytes that run.max_memory asks for (0: none). "auto" leaves a tenth
// of the machine, after what the process holds outside tensors.
int64_t memory_limit(const Cell& cell) {
  const std::string& setting = cell.settings.get_string("run.max_memory");
  if (setting == "none") return 0;
  if (setting != "auto") return parse_bytes(setting);
  const int64_t outside_tensors = std::max<int64_t>(0, current_rss_bytes() - allocated_bytes(c10::kCPU));
  return std::max<int64_t>(1, physical_memory_bytes() / 10 * 9 - outside_tensors);
}

// What to lower when a cell runs out of memory, with this cell's values.
std::string memory_hint(const Cell& cell, bool cpu_limit) {
  return fmt::format(" (lower data.seq_len (now {}), run.batch (now {}) or the layer's size for this cell{})", cell.seq_len,
                     cell.batch, cpu_limit ? ", or raise run.max_memory" : "");
}


// Measures one cell in this process: fills `line` (status ok, inconsistent, skipped or error) and prints
// the cell's report lines to `out` as it goes.
nlohmann::json run_cell(const Cell& cell, nlohmann::json line, EmbeddingSource& embeddings, const std::string& outputs_dir,
                        std::ostream& out) {
  const c10::Device device = cell.device == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  try {
    if (device.is_cuda() && !cuda_available()) throw SkipCell{cuda_unavailable_reason()};
    c10::InferenceMode inference;
    const ThreadSettings threads = set_threads(static_cast<int>(cell.threads));
    line["threads"] = {{"requested", threads.requested}, {"torch_intra_op", threads.torch_intra_op},
                       {"blas", threads.blas}, {"blas_library", threads.blas_library}};
    reset_peak_memory(device);
    set_cpu_memory_limit(memory_limit(cell));
    const c10::ScalarType dtype = compute_dtype(cell);
    set_activity("making the data");
    const EmbeddingSource::Entry& data = embeddings.get(cell, device, dtype);
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
    set_activity("creating the layer");
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
    CellContext measured(cell, layer, info, std::move(batches), device, &embeddings);
    line["metrics"] = measure_cell(measured);
    if (!outputs_dir.empty()) save_outputs(measured, outputs_dir, fmt::format("{:04d}_{}_{}", cell.index, cell.label, cell.hash));
    // Beyond a consistency gate the timings stand, but the layer's streaming form does not compute its forward.
    const std::vector<std::string> off = inconsistencies(line["metrics"], measured);
    line["status"] = off.empty() ? "ok" : "inconsistent";
    if (!off.empty()) line["message"] = join(off, "; ");
    line["dtype"] = c10::toString(dtype);
  } catch (const SkipCell& skip) {
    line["status"] = "skipped";
    line["message"] = skip.reason;
  } catch (const PluginError& e) {
    // The plugin said how it failed: a cell it cannot run is skipped, out of memory frees the cache.
    line["status"] = e.status() == ATTNBENCH_UNSUPPORTED ? "skipped" : "error";
    line["message"] = e.what();
    if (e.status() == ATTNBENCH_OUT_OF_MEMORY) {
      release_cached_memory(device);
      const std::string message = e.what();
      line["message"] = message + memory_hint(cell, message.find("run.max_memory") != std::string::npos);
    }
  } catch (const c10::OutOfMemoryError& e) {
    release_cached_memory(device);
    const std::string message = e.what_without_backtrace();
    line["status"] = "error";
    line["message"] = message + memory_hint(cell, message.find("run.max_memory") != std::string::npos);
  } catch (const c10::Error& e) {
    // c10::Error carries a C++ backtrace after its message; a user needs only the message.
    line["status"] = "error";
    line["message"] = e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    // The host's own allocation failed (a plugin's comes as a PluginError): "std::bad_alloc" alone
    // says neither what ran out nor what to lower.
    release_cached_memory(device);
    line["status"] = "error";
    line["message"] = "out of memory: an allocation failed" + memory_hint(cell, false);
  } catch (const std::exception& e) {
    line["status"] = "error";
    line["message"] = e.what();
  }
  return line;
}

// run.isolate: run_cell in a child process, its report lines printed here once it ends. A child that
// crashed leaves the cell an error naming the signal and what it was doing; the study goes on.
nlohmann::json run_cell_in_child(const Cell& cell, nlohmann::json line, const std::string& outputs_dir, std::ostream& out) {
  const ChildOutcome outcome = run_in_child([&] {
    EmbeddingSource embeddings;  // the child's own: the parent computes nothing with torch
    std::ostringstream report;
    nlohmann::json done = run_cell(cell, line, embeddings, outputs_dir, report);
    return nlohmann::json{{"line", done}, {"report", report.str()}}.dump(-1, ' ', false,
                                                                          nlohmann::json::error_handler_t::replace);
  });
  if (outcome.finished) {
    nlohmann::json back = nlohmann::json::parse(outcome.payload);
    out << back["report"].get<std::string>();
    return back["line"];
  }
  line["status"] = "error";
  line["message"] = "the cell's process " + outcome.failure() + "; run.isolate kept the other cells running";
  return line;
}

}  // namespace

void print_cells(const Study& study, std::ostream& out) {
  for (const Cell& cell : study.cells) fmt::print(out, "{}  [{}]\n", cell_line(cell), join(cell.modes));
  fmt::print(out, "{} cells\n", study.cells.size());
}

int run_study(const Study& study, const RunOptions& options, std::ostream& out) {
  ResultsFile results(study.results_path);
  for (const std::string& note : results.notes()) fmt::print(out, "note: {}\n", note);
  const std::string outputs_dir = options.save_outputs_dir.empty() ? study.save_outputs_dir : options.save_outputs_dir;
  // An isolated study leaves torch to its children (measure/isolate.h): even the context, whose GPU facts
  // would initialise CUDA here and leave it unusable in every child.
  const bool isolated = std::any_of(study.cells.begin(), study.cells.end(),
                                    [](const Cell& c) { return c.settings.get_bool("run.isolate"); });
  nlohmann::json context = isolated ? context_from_child() : make_context();
  fmt::print(out, "attnbench study '{}' ({}): {} cells -> {}\n", study.name, study.file, study.cells.size(),
             study.results_path);
  fmt::print(out, "host {}, cpu {}, torch {}, build {}, commit {}\n", context["host"].get<std::string>(),
             context["cpu"].get<std::string>(), context["torch"].get<std::string>(),
             context["build_type"].get<std::string>(), context["git_commit"].get<std::string>());
  if (context["build_type"] != "Release") {
    fmt::print(out, "warning: this is a {} build; timings are not representative (configure with "
                    "-DCMAKE_BUILD_TYPE=Release)\n", context["build_type"].get<std::string>());
  }
  if (context["cpu_scaling_governor"] != "" && context["cpu_scaling_governor"] != "performance") {
    fmt::print(out, "warning: CPU frequency scaling governor is '{}'; set 'performance' for stable timings\n",
               context["cpu_scaling_governor"].get<std::string>());
  }

  install_cpu_accounting();
  EmbeddingSource embeddings;
  std::vector<nlohmann::json> summary;
  bool any_error = false, any_inconsistent = false;
  const auto start = Clock::now();
  size_t ran = 0, position = 0;
  const size_t total = study.cells.size();
  for (const Cell& cell : study.cells) {
    ++position;
    std::string label_text = cell.label + axes_text(cell);
    // Claimed first, then looked up: a runner sharing the file may have finished it since the start.
    if (!results.claim(cell.hash)) {
      fmt::print(out, "[{}/{}] {}: another runner is running it now (same results file), skipped\n", position, total,
                 label_text);
      continue;
    }
    auto done = results.done().find(cell.hash);
    if (done != results.done().end() && !options.force) {
      results.release(cell.hash);
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
    line = cell.settings.get_bool("run.isolate") ? run_cell_in_child(cell, std::move(line), outputs_dir, out)
                                                 : run_cell(cell, std::move(line), embeddings, outputs_dir, out);
    set_cpu_memory_limit(0);  // outside cells (the results, the next embedding) nothing is bounded
    any_error |= line["status"] == "error";
    any_inconsistent |= line["status"] == "inconsistent";
    results.append(line);
    ++ran;
    line["label_text"] = label_text;
    if (line["status"] == "ok" || line["status"] == "inconsistent") print_metrics(line["metrics"], out);
    if (line["status"] == "inconsistent") {
      fmt::print(out, "  {}\n", red(fmt::format("INCONSISTENT: {}; the timings are kept, but this layer's streaming "
                                                "does not compute its forward", line["message"].get<std::string>()),
                                    options.color));
    } else if (line["status"] != "ok") {
      fmt::print(out, "  {}: {}\n", line["status"].get<std::string>(), line["message"].get<std::string>());
    }
    summary.push_back(line);
  }
  print_summary(summary, out);
  fmt::print(out, "\nresults: {} ({:.1f} s)\n", study.results_path,
             std::chrono::duration<double>(Clock::now() - start).count());
  if (any_inconsistent) {
    fmt::print(out, "{}\n", red(options.allow_inconsistent
                                    ? "some cells are inconsistent (see above); --allow-inconsistent: exit status 0"
                                    : "some cells are inconsistent (see above): exit status 1 (--allow-inconsistent "
                                      "accepts them, or raise measure.tolerance_<dtype>)",
                                options.color));
  }
  return any_error || (any_inconsistent && !options.allow_inconsistent) ? 1 : 0;
}

}  // namespace attnbench
