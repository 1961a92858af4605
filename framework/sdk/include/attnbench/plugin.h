// The plugin handshake: the only symbol a plugin exports, and the plain-C description the host checks
// before it touches anything C++ in the plugin.
//
// Lifetime: the host loads a plugin, calls attnbench_plugin_query_v1() once, compares the fields below
// with its own build and only then calls create(). Plugins are never unloaded before the process exits,
// so every pointer in the struct may point at static storage.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ATTNBENCH_SDK_ABI_MAJOR 1  // bump on any change that breaks a built plugin
#define ATTNBENCH_SDK_ABI_MINOR 0  // bump on additions old plugins still work with

#if defined(_WIN32)
#define ATTNBENCH_EXPORT __declspec(dllexport)
#else
#define ATTNBENCH_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attnbench_plugin_kind { ATTNBENCH_PLUGIN_ATTENTION = 1, ATTNBENCH_PLUGIN_EMBEDDER = 2 } attnbench_plugin_kind;

typedef enum attnbench_param_type {
  ATTNBENCH_PARAM_BOOL = 1,
  ATTNBENCH_PARAM_INT = 2,
  ATTNBENCH_PARAM_FLOAT = 3,
  ATTNBENCH_PARAM_STRING = 4
} attnbench_param_type;

// One parameter a plugin accepts. The host validates a study's parameters against this list (unknown
// keys and wrong types are errors naming the valid keys) and fills defaults, so create() only ever sees
// a complete, well-typed set.
typedef struct attnbench_param_spec_v1 {
  const char* name;
  attnbench_param_type type;
  const char* default_value;  // parsed with the type above; "" for an empty string
  const char* help;
} attnbench_param_spec_v1;

// Returns an object the plugin owns (an attnbench::AttentionHandle* or attnbench::EmbedderHandle*), or
// NULL after writing a message into error. `args` is a const attnbench::CreateArgs*.
typedef void* (*attnbench_create_fn_v1)(const void* args, char* error, size_t error_size);

typedef struct attnbench_plugin_info_v1 {
  uint32_t struct_size;  // sizeof(attnbench_plugin_info_v1) in the plugin's build
  uint32_t sdk_abi_major;
  uint32_t sdk_abi_minor;
  uint32_t torch_major;
  uint32_t torch_minor;
  uint32_t cxx11_abi;  // _GLIBCXX_USE_CXX11_ABI: std::string layout differs between 0 and 1
  uint32_t cuda;       // 1 when built against a CUDA libtorch
  uint32_t kind;       // attnbench_plugin_kind
  const char* compiler;
  const char* name;
  const char* version;
  const attnbench_param_spec_v1* params;
  uint32_t param_count;
  attnbench_create_fn_v1 create;
} attnbench_plugin_info_v1;

typedef const attnbench_plugin_info_v1* (*attnbench_plugin_query_fn_v1)(void);

#define ATTNBENCH_QUERY_SYMBOL_V1 "attnbench_plugin_query_v1"

#ifdef __cplusplus
}  // extern "C"
#endif
