// The plugin handshake: the only symbol a plugin exports, and the plain-C description the host checks
// before it touches anything C++ in the plugin.
//
// Lifetime: the host loads a plugin, calls attnbench_plugin_query_v1() once, compares the fields below
// with its own build and only then calls create(). Plugins are never unloaded before the process exits,
// so every pointer in the struct may point at static storage.
//
// Versioning: a new SDK ABI minor only appends (fields at the end of attnbench_plugin_info_v1, virtual
// functions at the end of the handle classes). The host reads an appended field or calls an appended
// function only when the plugin's sdk_abi_minor says it has it, so plugins built against an older minor
// still load; a plugin newer than the host is refused.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ATTNBENCH_SDK_ABI_MAJOR 1  // bump on any change that breaks a built plugin
#define ATTNBENCH_SDK_ABI_MINOR 1  // bump on additions old plugins still work with

#if defined(_WIN32)
#define ATTNBENCH_EXPORT __declspec(dllexport)
#else
#define ATTNBENCH_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attnbench_plugin_kind {
  ATTNBENCH_PLUGIN_ATTENTION = 1,
  ATTNBENCH_PLUGIN_EMBEDDER = 2,
  ATTNBENCH_PLUGIN_TASK = 3  // since minor 1
} attnbench_plugin_kind;

typedef enum attnbench_param_type {
  ATTNBENCH_PARAM_BOOL = 1,
  ATTNBENCH_PARAM_INT = 2,
  ATTNBENCH_PARAM_FLOAT = 3,
  ATTNBENCH_PARAM_STRING = 4
} attnbench_param_type;

// How a call into a plugin ended (since minor 1; a minor-0 plugin's failures count as INTERNAL). The
// host acts on it: UNSUPPORTED skips the cell with the plugin's reason, OUT_OF_MEMORY frees the device's
// cached memory before the next cell, the others end the cell as an error.
typedef enum attnbench_status {
  ATTNBENCH_OK = 0,
  ATTNBENCH_INVALID_ARGUMENT = 1,  // a bad parameter or input, for the user to fix
  ATTNBENCH_UNSUPPORTED = 2,       // cannot run this cell here (device, dtype, size): skip it
  ATTNBENCH_OUT_OF_MEMORY = 3,
  ATTNBENCH_INTERNAL = 4           // anything else
} attnbench_status;

// One parameter a plugin accepts. The host validates a study's parameters against this list (unknown
// keys and wrong types are errors naming the valid keys) and fills defaults, so create() only ever sees
// a complete, well-typed set.
typedef struct attnbench_param_spec_v1 {
  const char* name;
  attnbench_param_type type;
  const char* default_value;  // parsed with the type above; "" for an empty string
  const char* help;
} attnbench_param_spec_v1;

// Returns an object the plugin owns (an attnbench::AttentionHandle*, EmbedderHandle* or TaskHandle*),
// or NULL after writing a message into error. `args` is a const attnbench::CreateArgs*.
typedef void* (*attnbench_create_fn_v1)(const void* args, char* error, size_t error_size);

// Checks parameters without building anything (since minor 1), so a study's mistakes are found when it
// loads. `args` is a const attnbench::ValidateArgs*, `result` an attnbench::ValidateResult*.
typedef void (*attnbench_validate_fn_v1)(const void* args, void* result);

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
  // --- minor 1
  attnbench_validate_fn_v1 validate;
} attnbench_plugin_info_v1;

// The size of the struct as minor 0 plugins have it: every field before `validate`.
#define ATTNBENCH_PLUGIN_INFO_V1_0_SIZE offsetof(attnbench_plugin_info_v1, validate)

typedef const attnbench_plugin_info_v1* (*attnbench_plugin_query_fn_v1)(void);

#define ATTNBENCH_QUERY_SYMBOL_V1 "attnbench_plugin_query_v1"

#ifdef __cplusplus
}  // extern "C"
#endif
