#include "interpreter.h"

#include "bridge_source.h"  // generated from bridge.py: kBridgeSource

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

namespace attnbench::python {
namespace {

// The runner dlopens plugins RTLD_LOCAL, so libpython, loaded as this plugin's dependency, is visible to
// this plugin alone. CPython's extension modules (torch._C, math, ...) are built without linking libpython
// and expect its symbols in the global scope; re-opening the library already loaded with RTLD_NOLOAD |
// RTLD_GLOBAL promotes it there without loading anything. The path comes from the running code itself,
// so it is right for whichever libpython (Debian's, a pip torch's Python, a virtualenv's) was linked.
void make_libpython_global() {
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&Py_IsInitialized), &where) == 0 || where.dli_fname == nullptr) {
    throw std::runtime_error("python: cannot find libpython in this process (dladdr failed)");
  }
  if (dlopen(where.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) == nullptr) {  // kept open: never unloaded
    const char* why = dlerror();
    throw std::runtime_error(std::string("python: cannot make ") + where.dli_fname + "'s symbols global: " +
                             (why ? why : "unknown error"));
  }
}

// The libtorch file the runner runs, which the Python torch must share (the bridge checks it).
std::string host_libtorch() {
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &where) == 0 || where.dli_fname == nullptr) {
    throw std::runtime_error("python: cannot find the runner's libtorch (dladdr failed)");
  }
  return where.dli_fname;
}

void start_python() {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);  // honours PYTHONPATH, PYTHONHOME and the user's site-packages
  config.install_signal_handlers = 0;  // Ctrl-C stays the runner's
  config.write_bytecode = 0;           // no __pycache__ beside the user's layer files
  config.parse_argv = 0;
  // The interpreter the plugin was built for: Python derives sys.prefix, the standard library and
  // site-packages (a virtualenv's too) from its path, as if that executable were running.
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, ATTNBENCH_PYTHON_EXECUTABLE);
  const char* argv[] = {""};
  if (!PyStatus_Exception(status)) status = PyConfig_SetBytesArgv(&config, 1, const_cast<char**>(argv));
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    throw std::runtime_error(std::string("python: cannot start the interpreter (") + ATTNBENCH_PYTHON_EXECUTABLE +
                             "): " + (status.err_msg ? status.err_msg : "unknown error"));
  }
  PyEval_SaveThread();  // released: each call takes it with a Gil
}

// The bridge's describe(), once the bridge runs; until then errors keep a plain message.
PyObject* describe_function = nullptr;

std::string text(PyObject* object) {
  PyObject* s = object ? PyObject_Str(object) : nullptr;
  const char* utf8 = s ? PyUnicode_AsUTF8(s) : nullptr;
  std::string out = utf8 ? utf8 : "(unprintable)";
  Py_XDECREF(s);
  PyErr_Clear();
  return out;
}

}  // namespace

Interpreter& Interpreter::get() {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  static Interpreter* interpreter = nullptr;  // leaked on purpose: never finalized
  if (interpreter == nullptr) interpreter = new Interpreter();
  return *interpreter;
}

Interpreter::Interpreter() {
  make_libpython_global();
  if (!Py_IsInitialized()) start_python();
  // torch makes tensors while it imports: ordinary ones, whatever mode the first layer is created in.
  c10::InferenceMode not_inference(/*enabled=*/false);
  Gil gil;
  try {
    calling("starting the bridge", [&] {
      py::module_ bridge = py::module_::import("types").attr("ModuleType")("attnbench_python_bridge");
      py::module_ builtins = py::module_::import("builtins");
      builtins.attr("exec")(builtins.attr("compile")(kBridgeSource, "<attnbench python bridge>", "exec"), bridge.attr("__dict__"));
      py::module_::import("sys").attr("modules")["attnbench_python_bridge"] = bridge;
      bridge_ = bridge;
      describe_function = py::object(bridge.attr("describe")).release().ptr();  // a reference kept for the process
      python_version_ = bridge.attr("python_version")().cast<std::string>();
    });
    torch_version_ = calling("import torch (" ATTNBENCH_PYTHON_EXECUTABLE ")", [&] {
      return bridge_.attr("import_torch")(host_libtorch()).cast<std::string>();
    });
  } catch (...) {
    bridge_ = py::module_();  // released with the GIL held; the next layer created tries again
    throw;
  }
}

void throw_python_error(const std::string& what) {
  PyObject *type = nullptr, *value = nullptr, *trace = nullptr;
  PyErr_Fetch(&type, &value, &trace);
  if (type == nullptr) throw std::runtime_error("python: " + what + " failed without an exception");
  PyErr_NormalizeException(&type, &value, &trace);
  if (trace != nullptr && value != nullptr) PyException_SetTraceback(value, trace);
  std::string message = "python: " + what + " raised " + text(value);
  std::string kind;
  PyObject* described =
      describe_function ? PyObject_CallFunction(describe_function, "Os", value ? value : Py_None, what.c_str()) : nullptr;
  PyObject *described_text = nullptr, *described_kind = nullptr;
  if (described && PyArg_ParseTuple(described, "OO", &described_text, &described_kind)) {
    message = text(described_text);
    kind = text(described_kind);
  }
  PyErr_Clear();  // a failing describe() keeps the plain message above
  Py_XDECREF(described);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(trace);
  if (kind == "out_of_memory") throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)}, message);
  if (kind == "protocol") throw std::invalid_argument(message);
  throw std::runtime_error(message);
}

}  // namespace attnbench::python
