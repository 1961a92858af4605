// Finds, loads and checks plugins, and wraps their handles in host-side objects that throw.
#pragma once

#include "study/study.h"

#include <attnbench/attention.h>
#include <attnbench/embedder.h>
#include <attnbench/task.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnbench {

// A user-facing error about a plugin: not found, incompatible, or a call that failed inside it, with the
// attnbench_status the plugin reported (INTERNAL where it could not say, e.g. a minor-0 plugin).
class PluginError : public std::runtime_error {
 public:
  explicit PluginError(const std::string& message, int status = ATTNBENCH_INTERNAL)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

const char* kind_name(uint32_t kind);

// A loaded, handshake-checked plugin. The library stays loaded until the process exits.
struct Plugin {
  std::string path;
  const attnbench_plugin_info_v1* info = nullptr;
  std::string name() const { return info->name; }
  std::string version() const { return info->version; }
  // Whether the plugin has what SDK ABI minor `minor` added (see plugin.h on versioning).
  bool has_minor(uint32_t minor) const { return info->sdk_abi_minor >= minor; }
  const attnbench_param_spec_v1* find_param(const std::string& key) const;
  std::string param_names() const;  // "a, b, c" for error messages
};

// Compares a plugin's handshake with this build's; "" when compatible, otherwise one message naming
// every field that differs with both values.
std::string handshake_mismatch(const attnbench_plugin_info_v1& plugin);

// Directories searched for plugins by name, in order: $ATTNBENCH_PLUGIN_PATH (':'-separated), the
// build tree's plugin folder beside the runner, the install tree's lib/attnbench/plugins.
std::vector<std::string> plugin_search_dirs();

// `spec` is a plugin name (file attnbench_<name>.so in the search dirs) or a path to a .so. Loads once
// per path, checks the handshake and the kind. Throws PluginError.
const Plugin& load_plugin(const std::string& spec, attnbench_plugin_kind kind);

struct PluginListing {
  std::string path;
  std::string name, version, kind;
  std::string error;  // why it cannot be used, "" when it can
};
std::vector<PluginListing> list_plugins();

// Builds the full parameter set: defaults from the plugin's spec overridden by `given`. Unknown keys
// and wrong types throw InvalidParameter naming the key (in the message too) and the valid ones.
Params complete_params(const Plugin& plugin, const Params& given);
ParamValue parse_param_text(const attnbench_param_spec_v1& spec, const std::string& text);
const char* param_type_name(attnbench_param_type type);

// The plugin's own check of complete parameters (its validate(); minor-0 plugins have none and accept
// everything). Returns the width an embedder will produce, 0 when unknown; fills `failure`.
int64_t validate_params(const Plugin& plugin, const Params& params, int64_t embed_dim, Failure& failure);

// The LoadOptions that check a study's plugin parameters against the plugins the loader finds.
LoadOptions plugin_aware_options(std::vector<std::string> overrides);

class AttentionLayer {
 public:
  AttentionLayer(const Plugin& plugin, const CreateArgs& args);
  ~AttentionLayer();
  AttentionLayer(const AttentionLayer&) = delete;
  AttentionLayer& operator=(const AttentionLayer&) = delete;

  const Plugin& plugin() const { return plugin_; }
  AttentionInfo info();
  std::unique_ptr<State> init_state(int64_t batch);
  at::Tensor forward(const at::Tensor& x, State& state);
  at::Tensor step(const at::Tensor& x_t, State& state);
  int64_t state_bytes(const State& state);
  void reserve(State& state, int64_t tokens);  // a no-op for minor-0 plugins
  StepTraffic step_traffic(const State& state);  // {-1, -1} for minor-0 plugins

 private:
  [[noreturn]] void fail(const char* call) const;
  const Plugin& plugin_;
  AttentionHandle* handle_ = nullptr;
};

class EmbedderInstance {
 public:
  EmbedderInstance(const Plugin& plugin, const CreateArgs& args);
  ~EmbedderInstance();
  EmbedderInstance(const EmbedderInstance&) = delete;
  EmbedderInstance& operator=(const EmbedderInstance&) = delete;

  EmbedderInfo info();
  at::Tensor embed(int64_t samples, int64_t seq_len);

 private:
  const Plugin& plugin_;
  EmbedderHandle* handle_ = nullptr;
};

// A task plugin's instance. make() checks the episode's shapes and dtypes, so a task with a bug is one
// clear error rather than a crash in the readout.
class TaskInstance {
 public:
  TaskInstance(const Plugin& plugin, const CreateArgs& args);
  ~TaskInstance();
  TaskInstance(const TaskInstance&) = delete;
  TaskInstance& operator=(const TaskInstance&) = delete;

  const Plugin& plugin() const { return plugin_; }
  TaskInfo info();
  TaskEpisode make(int64_t embed_dim, const at::Tensor& corpus);
  at::Tensor feedback(const at::Tensor& predictions);  // (B, K) float64 -> (B, E) float32
  TaskScores score(const TaskEpisode& episode, const TaskPredictions& predictions);

 private:
  [[noreturn]] void fail(const char* call) const;
  const Plugin& plugin_;
  TaskHandle* handle_ = nullptr;
};

}  // namespace attnbench
