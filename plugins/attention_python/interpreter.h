// The CPython interpreter the `python` plugin embeds: one per process, started on first use and never
// finalized (torch's Python objects may outlive any cell, and CPython cannot restart after finalizing).
// Every call into Python holds a Gil; between calls no thread holds the GIL, so any thread may call.
#pragma once

// Python.h first, as CPython asks; through torch's header, which adds what torch's Python API needs.
#include <torch/csrc/python_headers.h>

#include <pybind11/pybind11.h>

#include <string>

namespace attnbench::python {

namespace py = pybind11;

// Holds the GIL for its lifetime, from any thread (PyGILState_Ensure / Release).
class Gil {
 public:
  Gil() : state_(PyGILState_Ensure()) {}
  ~Gil() { PyGILState_Release(state_); }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  PyGILState_STATE state_;
};

class Interpreter {
 public:
  // Starts Python (once; thread-safe), imports torch and the bridge, and returns the interpreter.
  // Throws an exception saying why when that fails (no Python, another torch); the next call tries again.
  static Interpreter& get();

  // The bridge module (bridge.py, compiled in). Call with a Gil held.
  const py::module_& bridge() const { return bridge_; }
  const std::string& python_version() const { return python_version_; }
  const std::string& torch_version() const { return torch_version_; }

 private:
  Interpreter();

  py::module_ bridge_;
  std::string python_version_;
  std::string torch_version_;
};

// With the GIL held and a Python exception pending: clears it and throws it as the cell's error, its
// message made by the bridge (the exception, the last frames of its traceback with file:line). `what`
// names the call, e.g. "Layer.step (layer.py)". A MemoryError or torch's OutOfMemoryError becomes
// c10::OutOfMemoryError, so the runner frees cached device memory; a broken protocol (the bridge's
// LayerError) std::invalid_argument; anything else std::runtime_error.
[[noreturn]] void throw_python_error(const std::string& what);

// Runs fn (which calls Python through pybind11) and turns a py::error_already_set into
// throw_python_error(what). Call with a Gil held.
template <typename Fn>
auto calling(const std::string& what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (py::error_already_set& e) {
    e.restore();
    throw_python_error(what);
  }
}

}  // namespace attnbench::python
