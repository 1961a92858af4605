// The `runner` executable: command-line parsing and top-level error reporting only.
#include "cli/multi_device.h"
#include "cli/run_study.h"
#include "measure/check.h"
#include "measure/mode.h"
#include "plugins/loader.h"
#include "results/context.h"
#include "study/schema.h"
#include "study/select.h"
#include "study/study.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

namespace {

constexpr const char* kUsage = R"(usage: runner STUDY.yaml [options]
       runner --list-plugins
       runner check-plugin NAME|PATH [--embed-dim E] [--device cpu|cuda] [--set KEY=VALUE]... [--seq-len N]
                           [--batch B] [--seed S] [--tolerance T] [--timeout SECONDS] [--in-process]
       runner describe [modes|metrics|keys] [--markdown|--json]
       runner --version

Runs every cell of a study and appends one JSON line per cell to the study's results file.

options:
  --set PATH=VALUE     override a study value, e.g. --set run.device=cuda --set matrix.run.threads=[1,2]
  --dry-run            list the expanded cells and their count, run nothing
  --force              rerun cells already present in the results file
  --allow-inconsistent exit 0 even when a cell is inconsistent (its step, prefix recompute, batch rows or
                       closed loop beyond measure.tolerance_<dtype> of its forward; its timings are kept)
  --results FILE       write results to FILE instead of the study's output.results
  --save-outputs DIR   save each cell's input, forward, step and prefix outputs as .safetensors
  --filter REGEX       run only the cells whose line in --dry-run matches REGEX (RE2 syntax)
  --devices 0,1,...    run the cells over these CUDA devices in parallel, one runner process per device
                       (CUDA_VISIBLE_DEVICES), merged into the results file with every cell once
  --shard I/N          run only shard I of N (cells I, I+N, I+2N, ... of those --filter kept); the
                       shards partition them, for job arrays (scripts/slurm_sweep.sh); with --devices,
                       the shard's cells are shared over the devices
  --list-plugins       list the plugins found (ATTNBENCH_PLUGIN_PATH, build and install trees)
  -h, --help           this text

describe lists the measurement modes, the metrics each writes and the study keys (--markdown: the
tables of docs/results.md and docs/study.md; --json: what scripts/attnbench_results.py reads).

check-plugin puts an attention plugin through the streaming contract (handshake, shapes, step ==
forward, prefix == step, closed loop, batch isolation, determinism, state_bytes) and exits 1 if any
check fails. Every sequence check runs at lengths 1, one past each power of two, the longest (--seq-len,
default 2049) and one drawn with --seed (default 0); batch 3, embed_dim 32, tolerance 1e-5 relative RMS
by default. Each check runs in its own process (--timeout, default 600 s), so a crash fails that check
and the report goes on; --in-process runs them all in this one (for a debugger).

exit status: 0 all cells ok or skipped, 1 some cell failed or is inconsistent, 2 bad command line or study
)";

int check_plugin_command(int argc, char** argv) {
  if (argc < 3 || argv[2][0] == '-') {
    std::cerr << "runner check-plugin: give a plugin name or path first\n" << kUsage;
    return 2;
  }
  attnbench::CheckOptions options;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--in-process") {
      options.isolate = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "runner check-plugin: " << arg << " needs a value\n";
      return 2;
    }
    const std::string value = argv[++i];
    // Whole-text numbers within [low, high]: "64x" or "-1" for a length is a mistake, not 64 or a huge size.
    auto number = [&](double low, double high) {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || !(v >= low && v <= high)) {
        throw std::invalid_argument(
            fmt::format("runner check-plugin: {} needs a number from {:.15g} to {:.15g}, got '{}'", arg, low, high, value));
      }
      return v;
    };
    auto integer = [&](double low, double high) {
      const double v = number(low, high);
      if (v != static_cast<double>(static_cast<int64_t>(v))) {
        throw std::invalid_argument(fmt::format("runner check-plugin: {} needs a whole number, got '{}'", arg, value));
      }
      return static_cast<int64_t>(v);
    };
    try {
      if (arg == "--embed-dim") options.embed_dim = integer(1, 1 << 20);
      else if (arg == "--device") options.device = value;
      else if (arg == "--set") options.params.push_back(value);
      else if (arg == "--seq-len") options.max_length = integer(1, 1 << 24);
      else if (arg == "--batch") options.batch = integer(1, 1 << 16);
      else if (arg == "--seed") options.seed = static_cast<uint64_t>(integer(0, 9007199254740992.0));
      else if (arg == "--tolerance") options.tolerance = number(0, 1e9);
      else if (arg == "--timeout") options.timeout_s = number(0, 1e9);
      else {
        std::cerr << "runner check-plugin: unknown option '" << arg << "'\n" << kUsage;
        return 2;
      }
    } catch (const std::invalid_argument& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }
  if (options.device != "cpu" && options.device != "cuda") {
    std::cerr << "runner check-plugin: --device " << options.device << ": expected cpu or cuda\n";
    return 2;
  }
  return attnbench::check_plugin(argv[2], options, std::cout) == 0 ? 0 : 1;
}

int describe_command(int argc, char** argv) {
  std::string what = "modes", format = "text";
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--markdown") format = "markdown";
    else if (arg == "--json") format = "json";
    else if (arg == "modes" || arg == "metrics" || arg == "keys") what = arg;
    else {
      std::cerr << "runner describe: unknown argument '" << arg << "'; expected modes, metrics, keys, --markdown or --json\n";
      return 2;
    }
  }
  if (format == "json") {
    nlohmann::json keys = nlohmann::json::array();
    for (const attnbench::StudyKey& k : attnbench::study_keys()) {
      keys.push_back({{"path", k.path}, {"type", attnbench::setting_type_name(k.type)}, {"default", k.default_text},
                      {"help", k.help}});
    }
    nlohmann::json all = {{"modes", attnbench::metrics_json()}, {"keys", keys}};
    std::cout << (what == "keys" ? all["keys"] : all["modes"]).dump(2) << "\n";
  } else if (what == "keys") {
    std::cout << attnbench::study_keys_markdown();
  } else if (what == "metrics" || format == "markdown") {
    std::cout << attnbench::metrics_markdown();
  } else {
    for (const attnbench::Mode& m : attnbench::modes()) {
      fmt::print("{:<12} {}{}{}\n", m.selectable ? m.name : "(always)", m.help, m.in_default ? " [default]" : "",
                 m.needs_causal ? " [causal layers only]" : "");
    }
  }
  return 0;
}

int list_plugins() {
  auto plugins = attnbench::list_plugins();
  if (plugins.empty()) {
    std::cout << "no plugins found; searched:";
    for (const auto& d : attnbench::plugin_search_dirs()) std::cout << " " << d;
    std::cout << "\n";
    return 0;
  }
  for (const auto& p : plugins) {
    if (p.error.empty()) {
      fmt::print("{:<12} {:<10} {:<10} {}\n", p.name, p.version, p.kind, p.path);
    } else {
      fmt::print("{:<12} {:<10} {:<10} {}\n    unusable: {}\n", p.name.empty() ? "?" : p.name, p.version, p.kind,
                 p.path, p.error);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "check-plugin") return check_plugin_command(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "describe") return describe_command(argc, argv);
  std::string study_path;
  std::vector<std::string> overrides;
  bool dry_run = false;
  std::string results;
  std::string filter, shard, devices;
  // The command line for --devices' children, less the options the parent resolves for them.
  std::vector<std::string> child_args;
  const auto parent_only = [](const std::string& a) { return a == "--devices" || a == "--results" || a == "--shard"; };
  attnbench::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!parent_only(arg)) child_args.push_back(arg);
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "runner: " << arg << " needs a value\n" << kUsage;
        std::exit(2);
      }
      std::string v = argv[++i];
      if (!parent_only(arg)) child_args.push_back(v);  // the children need an option's value with it
      return v;
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--list-plugins") {
      return list_plugins();
    } else if (arg == "--version") {
      std::cout << attnbench::build_facts().dump(2) << "\n";
      return 0;
    } else if (arg == "--set") {
      overrides.push_back(value());
    } else if (arg.rfind("--set=", 0) == 0) {
      overrides.push_back(arg.substr(6));
    } else if (arg == "--dry-run") {
      dry_run = true;
    } else if (arg == "--force") {
      options.force = true;
    } else if (arg == "--allow-inconsistent") {
      options.allow_inconsistent = true;
    } else if (arg == "--results") {
      results = value();
    } else if (arg == "--devices") {
      devices = value();
    } else if (arg == "--shard") {
      shard = value();
    } else if (arg == "--filter") {
      filter = value();
    } else if (arg == "--save-outputs") {
      options.save_outputs_dir = value();
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "runner: unknown option '" << arg << "'\n" << kUsage;
      return 2;
    } else if (study_path.empty()) {
      study_path = arg;
    } else {
      std::cerr << "runner: more than one study given ('" << study_path << "', '" << arg << "')\n";
      return 2;
    }
  }
  if (study_path.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  options.color = ::isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  try {
    attnbench::Study study = attnbench::load_study(study_path, attnbench::plugin_aware_options(overrides));
    if (!results.empty()) study.results_path = results;
    // --filter first, then --shard shares what it kept, then --devices shares the shard.
    if (!filter.empty()) attnbench::filter_cells(study, filter);
    int64_t shard_index = 1, shard_count = 1;
    if (!shard.empty()) {
      char slash = 0;
      std::istringstream in(shard);
      if (!(in >> shard_index >> slash >> shard_count) || slash != '/' || !in.eof()) {
        std::cerr << "runner: --shard " << shard << ": expected I/N, e.g. --shard 2/8\n";
        return 2;
      }
      attnbench::shard_cells(study, shard_index, shard_count);
    }
    std::vector<std::string> device_list;
    std::stringstream ss(devices);
    for (std::string item; std::getline(ss, item, ',');) {
      if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) {
        std::cerr << "runner: --devices " << devices << ": expected CUDA device ordinals, e.g. --devices 0,1,2,3\n";
        return 2;
      }
      device_list.push_back(item);
    }
    if (dry_run) {
      attnbench::print_cells(study, std::cout);
      return 0;
    }
    if (!device_list.empty()) {
      return attnbench::run_on_devices(study, device_list, child_args, {shard_index, shard_count}, options.force, std::cout);
    }
    return attnbench::run_study(study, options, std::cout);
  } catch (const attnbench::ConfigError& e) {
    std::cerr << "runner: " << e.what() << "\n";
    return 2;
  } catch (const attnbench::PluginError& e) {
    std::cerr << "runner: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "runner: " << study_path << ": " << e.what_without_backtrace() << "\n";  // no C++ backtrace
    return 2;
  } catch (const std::bad_alloc&) {
    // Outside any cell (a cell's own failures are in its result): loading, expanding or listing the study.
    std::cerr << "runner: " << study_path << ": out of memory outside the cells (loading, expanding or merging the "
              << "study); it asks for more than this machine has: lower its sizes or split its matrix\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "runner: " << study_path << ": " << e.what() << "\n";
    return 2;
  } catch (...) {
    std::cerr << "runner: " << study_path << ": stopped by an exception of unknown type\n";
    return 2;
  }
}
