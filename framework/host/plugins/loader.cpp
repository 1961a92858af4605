#include "plugins/loader.h"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

namespace fs = std::filesystem;

namespace attnbench {
namespace {

// This build's own handshake, filled by the same code a plugin uses.
const attnbench_param_spec_v1 kNoParams[] = {{"", ATTNBENCH_PARAM_BOOL, "", ""}};
const attnbench_plugin_info_v1& host_info() {
  static const attnbench_plugin_info_v1 info =
      detail::make_info(ATTNBENCH_PLUGIN_ATTENTION, "host", "", kNoParams, 0, nullptr, nullptr);
  return info;
}

std::string file_name_for(const std::string& name) { return "attnbench_" + name + ".so"; }

bool looks_like_path(const std::string& spec) {
  return spec.find('/') != std::string::npos || (spec.size() > 3 && spec.compare(spec.size() - 3, 3, ".so") == 0);
}

// Libraries are kept here for the life of the process: a plugin's code (vtables, deleters, statics) may
// still be referenced by objects the host holds, so nothing is ever unloaded.
struct Registry {
  std::mutex mutex;
  std::map<std::string, boost::dll::shared_library> libraries;
  std::map<std::string, Plugin> plugins;
};
Registry& registry() {
  static auto* r = new Registry();  // leaked on purpose: unloading at exit would run plugin code late
  return *r;
}

// Loads the library at `path` and returns its handshake, or throws PluginError. Does not check it.
const attnbench_plugin_info_v1* query(const std::string& path) {
  Registry& r = registry();
  auto it = r.libraries.find(path);
  if (it == r.libraries.end()) {
    boost::dll::shared_library library;
    boost::dll::fs::error_code ec;
    library.load(path, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local, ec);
    if (ec) {
      const char* why = dlerror();
      throw PluginError(fmt::format("cannot load plugin '{}': {}", path, why ? why : ec.message()));
    }
    it = r.libraries.emplace(path, std::move(library)).first;
  }
  if (!it->second.has(ATTNBENCH_QUERY_SYMBOL_V1)) {
    throw PluginError(fmt::format("'{}' is not an attnbench plugin: it exports no {}() (build it with "
                                  "ATTNBENCH_ATTENTION_PLUGIN or ATTNBENCH_EMBEDDER_PLUGIN)",
                                  path, ATTNBENCH_QUERY_SYMBOL_V1));
  }
  auto query_fn = it->second.get<const attnbench_plugin_info_v1*()>(ATTNBENCH_QUERY_SYMBOL_V1);
  const attnbench_plugin_info_v1* info = query_fn();
  if (info == nullptr) throw PluginError(fmt::format("plugin '{}' returned no handshake", path));
  return info;
}

std::string find_plugin_file(const std::string& name) {
  for (const std::string& dir : plugin_search_dirs()) {
    fs::path candidate = fs::path(dir) / file_name_for(name);
    std::error_code ec;
    const fs::file_status status = fs::symlink_status(candidate, ec);
    if (!ec && fs::exists(status)) return candidate.string();  // a broken link is reported when it is loaded
  }
  std::string known;
  for (const PluginListing& p : list_plugins()) {
    if (p.error.empty()) known += (known.empty() ? "" : ", ") + p.name;
  }
  std::string dirs;
  for (const std::string& dir : plugin_search_dirs()) dirs += (dirs.empty() ? "" : ":") + dir;
  throw PluginError(fmt::format("unknown plugin '{}': no {} in {}; available: {} (set ATTNBENCH_PLUGIN_PATH or give "
                                "a path to the .so)",
                                name, file_name_for(name), dirs.empty() ? "(no search directories)" : dirs,
                                known.empty() ? "none" : known));
}

}  // namespace

namespace {
std::string with_article(const std::string& noun) {
  return (std::string("aeiou").find(noun.front()) != std::string::npos ? "an " : "a ") + noun;
}
}  // namespace

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case ATTNBENCH_PLUGIN_ATTENTION: return "attention";
    case ATTNBENCH_PLUGIN_EMBEDDER: return "embedder";
    case ATTNBENCH_PLUGIN_TASK: return "task";
    default: return "unknown";
  }
}

const char* param_type_name(attnbench_param_type type) {
  switch (type) {
    case ATTNBENCH_PARAM_BOOL: return "bool";
    case ATTNBENCH_PARAM_INT: return "int";
    case ATTNBENCH_PARAM_FLOAT: return "float";
    case ATTNBENCH_PARAM_STRING: return "string";
  }
  return "unknown";
}

std::string handshake_mismatch(const attnbench_plugin_info_v1& p) {
  const attnbench_plugin_info_v1& h = host_info();
  std::vector<std::string> diffs;
  // struct_size first: below minor 0's size not even the version fields can be trusted. Fields a later
  // minor appended are read only where sdk_abi_minor says the plugin has them (Plugin::has_minor).
  if (p.struct_size < ATTNBENCH_PLUGIN_INFO_V1_0_SIZE) {
    return fmt::format("handshake struct size: plugin {} bytes, runner needs at least {} (not a v1 handshake; rebuild it)",
                       p.struct_size, ATTNBENCH_PLUGIN_INFO_V1_0_SIZE);
  }
  if (p.sdk_abi_major != h.sdk_abi_major) {
    diffs.push_back(fmt::format("SDK ABI major: plugin {}, runner {}", p.sdk_abi_major, h.sdk_abi_major));
  } else if (p.sdk_abi_minor > h.sdk_abi_minor) {
    diffs.push_back(fmt::format("SDK ABI minor: plugin {} is newer than runner {}", p.sdk_abi_minor, h.sdk_abi_minor));
  }
  if (p.torch_major != h.torch_major || p.torch_minor != h.torch_minor) {
    diffs.push_back(fmt::format("torch: plugin built against torch {}.{}, runner uses torch {}.{}", p.torch_major,
                                p.torch_minor, h.torch_major, h.torch_minor));
  }
  if (p.cxx11_abi != h.cxx11_abi) {
    diffs.push_back(fmt::format("_GLIBCXX_USE_CXX11_ABI: plugin {}, runner {}", p.cxx11_abi, h.cxx11_abi));
  }
  // Minor 1 appended `validate`; a plugin that claims it must have room for it.
  const size_t minor1_size = offsetof(attnbench_plugin_info_v1, validate) + sizeof(attnbench_validate_fn_v1);
  if (p.sdk_abi_major == h.sdk_abi_major && p.sdk_abi_minor >= 1 && p.struct_size < minor1_size) {
    diffs.push_back(fmt::format("handshake struct size: plugin {} bytes for SDK ABI minor {}, which needs {}",
                                p.struct_size, p.sdk_abi_minor, minor1_size));
  }
  if (p.cuda != 0 && h.cuda == 0) diffs.push_back("CUDA: plugin built with CUDA, runner without");
  if (diffs.empty()) return "";
  std::string message = "incompatible plugin:";
  for (const std::string& d : diffs) message += "\n  - " + d;
  message += fmt::format("\n  (plugin compiler: {}; runner compiler: {}) rebuild the plugin against this attnbench",
                         p.compiler ? p.compiler : "?", h.compiler);
  return message;
}

std::vector<std::string> plugin_search_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("ATTNBENCH_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':')) {
      if (!item.empty()) dirs.push_back(item);
    }
  }
  boost::dll::fs::error_code ec;
  fs::path exe_dir = boost::dll::program_location(ec).parent_path();
  if (!ec) {
    // The build tree keeps plugins beside the runner (tests one level down); the install tree under the
    // configured library directory.
    for (fs::path d : {exe_dir / "plugins", exe_dir / ".." / "plugins", exe_dir / ".." / ATTNBENCH_PLUGIN_INSTALL_DIR}) {
      std::error_code dir_ec;
      if (!fs::is_directory(d, dir_ec)) continue;
      const fs::path canonical = fs::canonical(d, dir_ec);
      if (!dir_ec) dirs.push_back(canonical.string());
    }
  }
  return dirs;
}

const attnbench_param_spec_v1* Plugin::find_param(const std::string& key) const {
  for (uint32_t i = 0; i < info->param_count; ++i) {
    if (key == info->params[i].name) return &info->params[i];
  }
  return nullptr;
}

std::string Plugin::param_names() const {
  std::string names;
  for (uint32_t i = 0; i < info->param_count; ++i) names += (i ? ", " : "") + std::string(info->params[i].name);
  return names.empty() ? "(none)" : names;
}

const Plugin& load_plugin(const std::string& spec, attnbench_plugin_kind kind) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::string path = looks_like_path(spec) ? spec : find_plugin_file(spec);
  std::error_code ec;
  const std::string resolved = fs::canonical(path, ec).string();
  if (ec) {
    throw PluginError(ec == std::errc::no_such_file_or_directory
                          ? fmt::format("plugin file '{}' does not exist", path)
                          : fmt::format("plugin file '{}': {}", path, ec.message()));
  }
  path = resolved;
  auto found = r.plugins.find(path);
  if (found == r.plugins.end()) {
    const attnbench_plugin_info_v1* info = query(path);
    std::string mismatch = handshake_mismatch(*info);
    if (!mismatch.empty()) throw PluginError(fmt::format("'{}': {}", path, mismatch));
    found = r.plugins.emplace(path, Plugin{path, info}).first;
  }
  const Plugin& plugin = found->second;
  if (plugin.info->kind != static_cast<uint32_t>(kind)) {
    throw PluginError(fmt::format("plugin '{}' is {} plugin, but {} plugin is needed here", plugin.name(),
                                  with_article(kind_name(plugin.info->kind)), with_article(kind_name(kind))));
  }
  return plugin;
}

std::vector<PluginListing> list_plugins() {
  std::vector<PluginListing> out;
  std::map<std::string, bool> seen;
  for (const std::string& dir : plugin_search_dirs()) {
    // Every call with an error_code: a symlink loop or an unreadable entry in a plugin folder is that
    // plugin's problem, listed as such, not a filesystem_error that ends the runner.
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const fs::path entry = it->path();
      std::string file = entry.filename().string();
      if (file.rfind("attnbench_", 0) != 0 || entry.extension() != ".so") continue;
      std::error_code resolve_ec;
      std::string path = fs::canonical(entry, resolve_ec).string();
      if (resolve_ec) {
        out.push_back({entry.string(), "", "", "", fmt::format("cannot resolve the path: {}", resolve_ec.message())});
        continue;
      }
      if (seen[path]) continue;
      seen[path] = true;
      PluginListing listing{path, "", "", "", ""};
      try {
        const attnbench_plugin_info_v1* info = query(path);
        listing.name = info->name;
        listing.version = info->version;
        listing.kind = kind_name(info->kind);
        listing.error = handshake_mismatch(*info);
      } catch (const PluginError& e) {
        listing.error = e.what();
      }
      out.push_back(listing);
    }
  }
  return out;
}

ParamValue parse_param_text(const attnbench_param_spec_v1& spec, const std::string& text) {
  auto bad = [&]() {
    return std::invalid_argument(
        fmt::format("parameter '{}': '{}' is not a valid {}", spec.name, text, param_type_name(spec.type)));
  };
  switch (spec.type) {
    case ATTNBENCH_PARAM_BOOL:
      if (text == "true") return true;
      if (text == "false") return false;
      throw bad();
    case ATTNBENCH_PARAM_INT: {
      size_t used = 0;
      try {
        int64_t v = std::stoll(text, &used);
        if (used == text.size()) return v;
      } catch (const std::exception&) {
      }
      throw bad();
    }
    case ATTNBENCH_PARAM_FLOAT: {
      size_t used = 0;
      try {
        double v = std::stod(text, &used);
        if (used == text.size()) return v;
      } catch (const std::exception&) {
      }
      throw bad();
    }
    case ATTNBENCH_PARAM_STRING: return text;
  }
  throw bad();
}

Params complete_params(const Plugin& plugin, const Params& given) {
  Params out;
  for (uint32_t i = 0; i < plugin.info->param_count; ++i) {
    const attnbench_param_spec_v1& spec = plugin.info->params[i];
    out.set(spec.name, parse_param_text(spec, spec.default_value));
  }
  for (const auto& [key, value] : given.items()) {
    const attnbench_param_spec_v1* spec = plugin.find_param(key);
    if (spec == nullptr) {
      throw InvalidParameter(key, fmt::format("plugin '{}' has no parameter '{}'; valid: {}", plugin.name(), key,
                                              plugin.param_names()));
    }
    ParamValue v = value;
    bool ok = false;
    switch (spec->type) {
      case ATTNBENCH_PARAM_BOOL: ok = std::holds_alternative<bool>(v); break;
      case ATTNBENCH_PARAM_INT: ok = std::holds_alternative<int64_t>(v); break;
      case ATTNBENCH_PARAM_FLOAT:
        if (const auto* i = std::get_if<int64_t>(&v)) v = static_cast<double>(*i);
        ok = std::holds_alternative<double>(v);
        break;
      case ATTNBENCH_PARAM_STRING: ok = std::holds_alternative<std::string>(v); break;
    }
    if (!ok) {
      throw InvalidParameter(key, fmt::format("plugin '{}' parameter '{}' must be {}", plugin.name(), key,
                                              with_article(param_type_name(spec->type))));
    }
    out.set(key, v);
  }
  return out;
}

int64_t validate_params(const Plugin& plugin, const Params& params, int64_t embed_dim, Failure& failure) {
  failure = Failure{};
  if (!plugin.has_minor(1) || plugin.info->validate == nullptr) return 0;
  ValidateArgs args;
  args.params = params;
  args.embed_dim = embed_dim;
  ValidateResult result;
  plugin.info->validate(&args, &result);
  failure = result.failure;
  return result.embed_dim;
}

LoadOptions plugin_aware_options(std::vector<std::string> overrides) {
  LoadOptions options;
  options.overrides = std::move(overrides);
  options.has_param = [](const std::string& plugin, const std::string& key) {
    return load_plugin(plugin, ATTNBENCH_PLUGIN_ATTENTION).find_param(key) != nullptr;
  };
  options.param_names = [](const std::string& plugin) { return load_plugin(plugin, ATTNBENCH_PLUGIN_ATTENTION).param_names(); };
  options.complete_params = [](attnbench_plugin_kind kind, const std::string& plugin, const Params& given) {
    return complete_params(load_plugin(plugin, kind), given);
  };
  options.validate = [](attnbench_plugin_kind kind, const std::string& plugin, const Params& params, int64_t embed_dim,
                        Failure& failure) { return validate_params(load_plugin(plugin, kind), params, embed_dim, failure); };
  return options;
}

// --- host-side wrappers -------------------------------------------------------------------------------

namespace {

template <typename Handle>
Handle* create_handle(const Plugin& plugin, const CreateArgs& given) {
  CreateArgs args = given;
  Failure failure;
  args.failure = &failure;  // read by minor-1 plugins only; a minor-0 plugin leaves it as it is
  char error[2048] = {0};
  void* raw = plugin.info->create(&args, error, sizeof(error));
  if (raw == nullptr) {
    const int status = failure.status == ATTNBENCH_OK ? ATTNBENCH_INTERNAL : failure.status;
    throw PluginError(fmt::format("plugin '{}' failed to create: {}", plugin.name(), error), status);
  }
  return static_cast<Handle*>(raw);
}

// The status of a failed call: minor-1 plugins say it, older ones cannot.
template <typename Handle>
int failed_status(const Plugin& plugin, const Handle* handle) {
  return plugin.has_minor(1) ? handle->last_failure().status : ATTNBENCH_INTERNAL;
}

}  // namespace

AttentionLayer::AttentionLayer(const Plugin& plugin, const CreateArgs& args)
    : plugin_(plugin), handle_(create_handle<AttentionHandle>(plugin, args)) {}

AttentionLayer::~AttentionLayer() { handle_->destroy(); }

void AttentionLayer::fail(const char* call) const {
  throw PluginError(fmt::format("plugin '{}' {}: {}", plugin_.name(), call, handle_->last_error()),
                    failed_status(plugin_, handle_));
}

AttentionInfo AttentionLayer::info() {
  AttentionInfo out;
  if (!handle_->info(&out)) fail("info()");
  return out;
}

std::unique_ptr<State> AttentionLayer::init_state(int64_t batch) {
  std::unique_ptr<State> out;
  if (!handle_->init_state(batch, &out)) fail("init_state()");
  if (!out) throw PluginError(fmt::format("plugin '{}' init_state() returned no state", plugin_.name()));
  return out;
}

at::Tensor AttentionLayer::forward(const at::Tensor& x, State& state) {
  at::Tensor out;
  if (!handle_->forward(x, state, &out)) fail("forward()");
  if (!out.defined() || out.sizes() != x.sizes()) {
    throw PluginError(fmt::format("plugin '{}' forward() returned shape {} for input {}; expected the input's shape",
                                  plugin_.name(), out.defined() ? c10::str(out.sizes()) : "(undefined)",
                                  c10::str(x.sizes())));
  }
  return out;
}

at::Tensor AttentionLayer::step(const at::Tensor& x_t, State& state) {
  at::Tensor out;
  if (!handle_->step(x_t, state, &out)) fail("step()");
  if (!out.defined() || out.sizes() != x_t.sizes()) {
    throw PluginError(fmt::format("plugin '{}' step() returned shape {} for input {}; expected the input's shape",
                                  plugin_.name(), out.defined() ? c10::str(out.sizes()) : "(undefined)",
                                  c10::str(x_t.sizes())));
  }
  return out;
}

int64_t AttentionLayer::state_bytes(const State& state) {
  int64_t out = 0;
  if (!handle_->state_bytes(state, &out)) fail("state_bytes()");
  return out;
}

void AttentionLayer::reserve(State& state, int64_t tokens) {
  if (plugin_.has_minor(1) && !handle_->reserve(state, tokens)) fail("reserve()");
}

StepTraffic AttentionLayer::step_traffic(const State& state) {
  StepTraffic out;
  if (plugin_.has_minor(1) && !handle_->step_traffic(state, &out)) fail("step_traffic()");
  return out;
}

EmbedderInstance::EmbedderInstance(const Plugin& plugin, const CreateArgs& args)
    : plugin_(plugin), handle_(create_handle<EmbedderHandle>(plugin, args)) {}

EmbedderInstance::~EmbedderInstance() { handle_->destroy(); }

EmbedderInfo EmbedderInstance::info() {
  EmbedderInfo out;
  if (!handle_->info(&out)) {
    throw PluginError(fmt::format("embedder '{}' info(): {}", plugin_.name(), handle_->last_error()),
                      failed_status(plugin_, handle_));
  }
  return out;
}

at::Tensor EmbedderInstance::embed(int64_t samples, int64_t seq_len) {
  at::Tensor out;
  if (!handle_->embed(samples, seq_len, &out)) {
    throw PluginError(fmt::format("embedder '{}': {}", plugin_.name(), handle_->last_error()),
                      failed_status(plugin_, handle_));
  }
  if (!out.defined() || out.dim() != 3 || out.size(0) != samples || out.size(1) != seq_len) {
    throw PluginError(fmt::format("embedder '{}' returned shape {}; expected ({}, {}, E)", plugin_.name(),
                                  out.defined() ? c10::str(out.sizes()) : "(undefined)", samples, seq_len));
  }
  return out;
}

TaskInstance::TaskInstance(const Plugin& plugin, const CreateArgs& args)
    : plugin_(plugin), handle_(create_handle<TaskHandle>(plugin, args)) {}

TaskInstance::~TaskInstance() { handle_->destroy(); }

void TaskInstance::fail(const char* call) const {
  throw PluginError(fmt::format("task '{}' {}: {}", plugin_.name(), call, handle_->last_failure().message),
                    handle_->last_failure().status);
}

TaskInfo TaskInstance::info() {
  TaskInfo out;
  if (!handle_->info(&out)) fail("info()");
  return out;
}

TaskEpisode TaskInstance::make(int64_t embed_dim, const at::Tensor& corpus) {
  TaskEpisode e;
  if (!handle_->make(embed_dim, corpus, &e)) fail("make()");
  auto bad = [&](const std::string& what) {
    return PluginError(fmt::format("task '{}' make() returned {}", plugin_.name(), what));
  };
  if (!e.inputs.defined() || e.inputs.dim() != 3 || e.inputs.size(2) != embed_dim || e.inputs.scalar_type() != at::kFloat) {
    throw bad(fmt::format("inputs of shape {}; expected (T, B, {}) float32",
                          e.inputs.defined() ? c10::str(e.inputs.sizes()) : "(undefined)", embed_dim));
  }
  const int64_t t = e.inputs.size(0), b = e.inputs.size(1);
  if (!e.targets.defined() || e.targets.dim() != 3 || e.targets.size(0) != t || e.targets.size(1) != b ||
      e.targets.scalar_type() != at::kDouble) {
    throw bad(fmt::format("targets of shape {}; expected ({}, {}, K) float64",
                          e.targets.defined() ? c10::str(e.targets.sizes()) : "(undefined)", t, b));
  }
  if (!e.split.defined() || e.split.sizes() != at::IntArrayRef({t, b}) || e.split.scalar_type() != at::kChar) {
    throw bad(fmt::format("a split of shape {}; expected ({}, {}) int8",
                          e.split.defined() ? c10::str(e.split.sizes()) : "(undefined)", t, b));
  }
  for (Split needed : {Split::kTrain, Split::kValidation, Split::kTest}) {
    if (!e.split.eq(static_cast<int8_t>(needed)).any().item<bool>()) {
      throw bad("a split without train, validation or test rows; each needs at least one");
    }
  }
  if (e.free_run > 0 && (!e.free_targets.defined() || e.free_targets.dim() != 3 || e.free_targets.size(0) != e.free_run ||
                         e.free_targets.size(1) != b || e.free_targets.size(2) != e.targets.size(2))) {
    throw bad(fmt::format("free_targets of shape {}; expected ({}, {}, {})",
                          e.free_targets.defined() ? c10::str(e.free_targets.sizes()) : "(undefined)", e.free_run, b,
                          e.targets.size(2)));
  }
  e.inputs = e.inputs.contiguous();
  e.targets = e.targets.contiguous();
  return e;
}

at::Tensor TaskInstance::feedback(const at::Tensor& predictions) {
  at::Tensor out;
  if (!handle_->feedback(predictions, &out)) fail("feedback()");
  if (!out.defined() || out.dim() != 2 || out.size(0) != predictions.size(0)) {
    throw PluginError(fmt::format("task '{}' feedback() returned shape {} for {} sequences", plugin_.name(),
                                  out.defined() ? c10::str(out.sizes()) : "(undefined)", predictions.size(0)));
  }
  return out.to(at::kFloat);
}

TaskScores TaskInstance::score(const TaskEpisode& episode, const TaskPredictions& predictions) {
  TaskScores out;
  if (!handle_->score(episode, predictions, &out)) fail("score()");
  return out;
}

}  // namespace attnbench
