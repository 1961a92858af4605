// What attention and embedder plugins share: typed parameters, creation arguments, and the machinery
// that fills the handshake and keeps exceptions on the plugin's side of the boundary.
#pragma once

#include <attnbench/plugin.h>

#include <ATen/ATen.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace attnbench {

using ParamValue = std::variant<bool, int64_t, double, std::string>;

// A flat, typed key-value map. The host has already checked names and types against the plugin's
// attnbench_param_spec_v1 list and filled defaults, so a getter only fails on a plugin bug.
class Params {
 public:
  void set(const std::string& key, ParamValue value) { values_[key] = std::move(value); }
  bool contains(const std::string& key) const { return values_.count(key) != 0; }
  const std::map<std::string, ParamValue>& items() const { return values_; }

  bool get_bool(const std::string& key) const { return get<bool>(key); }
  int64_t get_int(const std::string& key) const { return get<int64_t>(key); }
  const std::string& get_string(const std::string& key) const { return get<std::string>(key); }
  double get_float(const std::string& key) const {
    const ParamValue& v = at(key);
    if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
    return std::get<double>(v);
  }

 private:
  const ParamValue& at(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::invalid_argument("parameter '" + key + "' was not provided");
    return it->second;
  }
  template <typename T>
  const T& get(const std::string& key) const {
    const T* v = std::get_if<T>(&at(key));
    if (v == nullptr) throw std::invalid_argument("parameter '" + key + "' has another type");
    return *v;
  }
  std::map<std::string, ParamValue> values_;
};

// Everything create() receives. Tensors a plugin returns must be on `device` in `dtype`.
struct CreateArgs {
  Params params;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  int64_t embed_dim = 0;  // the width of the embedder's tokens
  uint64_t seed = 0;      // the cell's seed; a plugin with random weights draws them from it
  int threads = 1;
};

namespace detail {

// Runs `fn`, turning any exception into a message, so that no exception leaves the plugin.
template <typename Fn>
bool guarded(std::string& error, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  if (error.empty()) error = "exception with an empty message";
  return false;
}

inline void copy_error(const std::string& message, char* out, size_t size) noexcept {
  if (out == nullptr || size == 0) return;
  std::strncpy(out, message.c_str(), size - 1);
  out[size - 1] = '\0';
}

// The handshake values of the translation unit that includes this header, i.e. the plugin's build.
// The ATTNBENCH_HANDSHAKE_* overrides exist only for the loader's negative tests.
#ifndef ATTNBENCH_HANDSHAKE_ABI_MAJOR
#define ATTNBENCH_HANDSHAKE_ABI_MAJOR ATTNBENCH_SDK_ABI_MAJOR
#endif
#ifndef ATTNBENCH_HANDSHAKE_TORCH_MAJOR
#define ATTNBENCH_HANDSHAKE_TORCH_MAJOR TORCH_VERSION_MAJOR
#endif
#ifndef ATTNBENCH_HANDSHAKE_TORCH_MINOR
#define ATTNBENCH_HANDSHAKE_TORCH_MINOR TORCH_VERSION_MINOR
#endif
#ifdef ATTNBENCH_WITH_CUDA
#define ATTNBENCH_HANDSHAKE_CUDA 1u
#else
#define ATTNBENCH_HANDSHAKE_CUDA 0u
#endif
#if defined(__clang__)
#define ATTNBENCH_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define ATTNBENCH_COMPILER "gcc " __VERSION__
#else
#define ATTNBENCH_COMPILER "unknown"
#endif

inline attnbench_plugin_info_v1 make_info(attnbench_plugin_kind kind, const char* name, const char* version,
                                          const attnbench_param_spec_v1* params, uint32_t param_count,
                                          attnbench_create_fn_v1 create) noexcept {
  attnbench_plugin_info_v1 info{};
  info.struct_size = sizeof(attnbench_plugin_info_v1);
  info.sdk_abi_major = ATTNBENCH_HANDSHAKE_ABI_MAJOR;
  info.sdk_abi_minor = ATTNBENCH_SDK_ABI_MINOR;
  info.torch_major = ATTNBENCH_HANDSHAKE_TORCH_MAJOR;
  info.torch_minor = ATTNBENCH_HANDSHAKE_TORCH_MINOR;
  info.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
  info.cuda = ATTNBENCH_HANDSHAKE_CUDA;
  info.kind = kind;
  info.compiler = ATTNBENCH_COMPILER;
  info.name = name;
  info.version = version;
  info.params = params;
  info.param_count = param_count;
  info.create = create;
  return info;
}

// create() for plugin class Impl behind handle type Adapter<Impl>.
template <typename Adapter>
void* create_guarded(const void* args, char* error, size_t error_size) noexcept {
  std::string message;
  Adapter* handle = nullptr;
  if (!guarded(message, [&] { handle = new Adapter(*static_cast<const CreateArgs*>(args)); })) {
    copy_error(message, error, error_size);
    return nullptr;
  }
  return handle;
}

}  // namespace detail

template <size_t N>
constexpr uint32_t param_count(const attnbench_param_spec_v1 (&)[N]) {
  return static_cast<uint32_t>(N);
}

}  // namespace attnbench

// Defines the exported query function of a plugin. Use through ATTNBENCH_ATTENTION_PLUGIN or
// ATTNBENCH_EMBEDDER_PLUGIN.
#define ATTNBENCH_DEFINE_PLUGIN_(kind, adapter, name, version, params)                                     \
  extern "C" ATTNBENCH_EXPORT const attnbench_plugin_info_v1* attnbench_plugin_query_v1(void) {            \
    static const attnbench_plugin_info_v1 info = ::attnbench::detail::make_info(                           \
        kind, name, version, params, ::attnbench::param_count(params), &::attnbench::detail::create_guarded<adapter>); \
    return &info;                                                                                          \
  }
