// What every plugin kind shares: typed parameters, creation and validation arguments, the errors a
// plugin throws to say what went wrong, and the machinery that fills the handshake and keeps exceptions
// on the plugin's side of the boundary.
#pragma once

#include <attnbench/plugin.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
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

// How a call failed, as it crosses the boundary (SDK ABI minor 1).
struct Failure {
  int status = ATTNBENCH_OK;  // attnbench_status
  std::string message;        // one line or a few, never a C++ backtrace
  std::string parameter;      // the parameter an InvalidParameter named, else ""
};

// Everything create() receives. Tensors a plugin returns must be on `device` in `dtype`.
struct CreateArgs {
  Params params;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  int64_t embed_dim = 0;  // the width of the embedder's tokens
  uint64_t seed = 0;      // the cell's seed; a plugin with random weights draws them from it
  int threads = 1;
  Failure* failure = nullptr;      // the host's: where a failed create() reports how (SDK ABI minor 1)
};

// Throw (from validate() or a constructor) when one parameter is wrong: the host then points at that
// parameter in the study, with file, line and column. The message says what is valid.
class InvalidParameter : public std::invalid_argument {
 public:
  InvalidParameter(std::string name, const std::string& message)
      : std::invalid_argument(message), name_(std::move(name)) {}
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};

// Throw when this cell cannot run here (a device, dtype or size the layer does not support): the host
// records the cell as skipped, with this message, instead of failing it.
class Unsupported : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What validate() receives and returns (SDK ABI minor 1). Attention and task plugins get the width of
// the tokens (0 when the study cannot know it without running the embedder); an embedder reports the
// width it will produce (0 when it cannot tell without loading its model).
struct ValidateArgs {
  Params params;  // complete and well-typed, as create() would get them
  int64_t embed_dim = 0;
};
struct ValidateResult {
  Failure failure;
  int64_t embed_dim = 0;
};

namespace detail {

// Runs `fn`, turning any exception into a Failure, so that no exception leaves the plugin. c10 errors
// lose their C++ backtrace: the first lines say what went wrong, the frames help nobody running a study.
template <typename Fn>
bool guarded(Failure& failure, Fn&& fn) noexcept {
  failure = Failure{};
  try {
    fn();
    return true;
  } catch (const InvalidParameter& e) {
    failure = {ATTNBENCH_INVALID_ARGUMENT, e.what(), e.name()};
  } catch (const Unsupported& e) {
    failure = {ATTNBENCH_UNSUPPORTED, e.what(), ""};
  } catch (const c10::OutOfMemoryError& e) {
    failure = {ATTNBENCH_OUT_OF_MEMORY, e.what_without_backtrace(), ""};
  } catch (const c10::Error& e) {
    failure = {ATTNBENCH_INTERNAL, e.what_without_backtrace(), ""};
  } catch (const std::bad_alloc&) {
    failure = {ATTNBENCH_OUT_OF_MEMORY, "out of memory (std::bad_alloc)", ""};
  } catch (const std::logic_error& e) {  // invalid_argument, out_of_range, length_error, domain_error
    failure = {ATTNBENCH_INVALID_ARGUMENT, e.what(), ""};
  } catch (const std::exception& e) {
    failure = {ATTNBENCH_INTERNAL, e.what(), ""};
  } catch (...) {
    failure = {ATTNBENCH_INTERNAL, "unknown exception", ""};
  }
  if (failure.message.empty()) failure.message = "exception with an empty message";
  return false;
}

inline void copy_error(const std::string& message, char* out, size_t size) noexcept {
  if (out == nullptr || size == 0) return;
  std::strncpy(out, message.c_str(), size - 1);
  out[size - 1] = '\0';
}

// The handshake values of the translation unit that includes this header, i.e. the plugin's build.
// The ATTNBENCH_HANDSHAKE_* overrides exist only for the loader's tests.
#ifndef ATTNBENCH_HANDSHAKE_ABI_MAJOR
#define ATTNBENCH_HANDSHAKE_ABI_MAJOR ATTNBENCH_SDK_ABI_MAJOR
#endif
#ifndef ATTNBENCH_HANDSHAKE_ABI_MINOR
#define ATTNBENCH_HANDSHAKE_ABI_MINOR ATTNBENCH_SDK_ABI_MINOR
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
                                          attnbench_create_fn_v1 create, attnbench_validate_fn_v1 validate) noexcept {
  attnbench_plugin_info_v1 info{};
  // A test fixture built with ATTNBENCH_HANDSHAKE_ABI_MINOR=0 presents the minor-0 layout, as an old
  // plugin would.
  info.struct_size = ATTNBENCH_HANDSHAKE_ABI_MINOR == 0 ? static_cast<uint32_t>(ATTNBENCH_PLUGIN_INFO_V1_0_SIZE)
                                                        : static_cast<uint32_t>(sizeof(attnbench_plugin_info_v1));
  info.sdk_abi_major = ATTNBENCH_HANDSHAKE_ABI_MAJOR;
  info.sdk_abi_minor = ATTNBENCH_HANDSHAKE_ABI_MINOR;
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
  info.validate = validate;
  return info;
}

// create() for plugin class Impl behind handle type Adapter<Impl>. A failure also goes to the host's
// CreateArgs::failure, so an InvalidParameter or Unsupported thrown by a constructor keeps its meaning.
template <typename Adapter>
void* create_guarded(const void* args, char* error, size_t error_size) noexcept {
  const auto& create_args = *static_cast<const CreateArgs*>(args);
  Failure failure;
  Adapter* handle = nullptr;
  if (!guarded(failure, [&] { handle = new Adapter(create_args); })) {
    copy_error(failure.message, error, error_size);
    if (create_args.failure != nullptr) *create_args.failure = failure;
    return nullptr;
  }
  return handle;
}

template <typename Adapter>
void validate_guarded(const void* args, void* result) noexcept {
  auto& out = *static_cast<ValidateResult*>(result);
  guarded(out.failure, [&] { Adapter::validate(*static_cast<const ValidateArgs*>(args), out); });
}

// Whether Impl declares the optional `static void validate(const Params&, int64_t embed_dim)`.
template <typename Impl, typename = void>
struct has_validate : std::false_type {};
template <typename Impl>
struct has_validate<Impl, std::void_t<decltype(Impl::validate(std::declval<const Params&>(), int64_t{}))>>
    : std::true_type {};

}  // namespace detail

template <size_t N>
constexpr uint32_t param_count(const attnbench_param_spec_v1 (&)[N]) {
  return static_cast<uint32_t>(N);
}

}  // namespace attnbench

// Defines the exported query function of a plugin. Use through ATTNBENCH_ATTENTION_PLUGIN, ATTNBENCH_EMBEDDER_PLUGIN or
// ATTNBENCH_TASK_PLUGIN.
#define ATTNBENCH_DEFINE_PLUGIN_(kind, adapter, name, version, params)                                      \
  extern "C" ATTNBENCH_EXPORT const attnbench_plugin_info_v1* attnbench_plugin_query_v1(void) {             \
    static const attnbench_plugin_info_v1 info = ::attnbench::detail::make_info(                            \
        kind, name, version, params, ::attnbench::param_count(params),                                      \
        &::attnbench::detail::create_guarded<adapter>, &::attnbench::detail::validate_guarded<adapter>);    \
    return &info;                                                                                           \
  }
