// The `python` attention plugin: a PyTorch layer written in Python, run by an embedded CPython in the
// same harness as the C++ layers (docs/python-layers.md). The study names a file and a class:
//
//   attention: [{plugin: python, params: {module: examples/python/retention.py, class: Retention, args: "{heads: 4}"}}]
//
// and the class implements __init__(embed_dim, device, dtype, seed, **args), init_state(batch),
// forward(x, state) -> (y, state), step(x_t, state) -> (y_t, state) and state_bytes(state). Tensors cross
// as the same TensorImpl in both directions (torch's own THPVariable_Wrap / THPVariable_Unpack), the
// state stays a Python object this plugin holds, and a Python exception becomes the cell's error with
// the last frames of its traceback.
#include "interpreter.h"

#include <attnbench/attention.h>

#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <vector>

namespace {

namespace py = pybind11;
using attnbench::InvalidParameter;
using attnbench::python::calling;
using attnbench::python::Gil;
using attnbench::python::Interpreter;
using attnbench::python::throw_python_error;

const attnbench_param_spec_v1 kParams[] = {
    {"module", ATTNBENCH_PARAM_STRING, "", "the .py file defining the layer class (relative to the runner's working directory)"},
    {"class", ATTNBENCH_PARAM_STRING, "", "the layer class in that file"},
    {"args", ATTNBENCH_PARAM_STRING, "{}", "keyword arguments for the class, as a YAML mapping in a string, e.g. '{heads: 4}'"},
};

// What the plugin passes the class itself; `args` may not name them.
constexpr std::array<const char*, 4> kReservedArgs{"embed_dim", "device", "dtype", "seed"};

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// The `args` text as a YAML mapping of keyword names to values, or InvalidParameter("args").
YAML::Node parse_args(const std::string& text) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InvalidParameter("args", "python: args '" + text + "' is not a YAML mapping (" + e.msg + " at column " +
                                       std::to_string(e.mark.column + 1) + "); write e.g. '{heads: 4, decay: 0.9}'");
  }
  if (node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!node.IsMap()) {
    throw InvalidParameter("args", "python: args must be a mapping of keyword arguments such as '{heads: 4}', got '" + text + "'");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (!is_identifier(key)) {
      throw InvalidParameter("args", "python: args key '" + (kv.first.IsScalar() ? key : text) +
                                         "' is not a Python keyword argument name");
    }
    if (std::find(kReservedArgs.begin(), kReservedArgs.end(), key) != kReservedArgs.end()) {
      throw InvalidParameter("args", "python: args may not set '" + key +
                                         "': the plugin passes embed_dim, device, dtype and seed itself");
    }
  }
  return node;
}

// A YAML value as the Python value a study would mean: the scalars typed as attnbench types parameters
// (true/false, integers, floats, else strings; quoted: always strings), ~ as None, lists and mappings.
py::object to_python(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      py::dict out;
      for (const auto& kv : node) out[py::str(kv.first.Scalar())] = to_python(kv.second);
      return std::move(out);
    }
    case YAML::NodeType::Sequence: {
      py::list out;
      for (const auto& item : node) out.append(to_python(item));
      return std::move(out);
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return py::str(s);
      if (s == "true" || s == "True") return py::bool_(true);
      if (s == "false" || s == "False") return py::bool_(false);
      int64_t i = 0;
      double d = 0;
      if (YAML::convert<int64_t>::decode(node, i)) return py::int_(i);
      if (YAML::convert<double>::decode(node, d)) return py::float_(d);
      return py::str(s);
    }
    default: return py::none();
  }
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    default: throw attnbench::Unsupported(std::string("python: no torch dtype for ") + c10::toString(dtype));
  }
}

std::string shape_text(const at::Tensor& t) { return c10::str(t.sizes()); }

// The layer's state: whatever Python object the class returned. Released with the GIL held.
struct PyState final : attnbench::State {
  explicit PyState(py::object v) : value(std::move(v)) {}
  ~PyState() override {
    Gil gil;
    value = py::object();
  }
  py::object value;
};

// A bound method of the layer and how errors name it: "Class.method (file.py:line)".
struct Method {
  py::object bound;
  std::string what;
  explicit operator bool() const { return static_cast<bool>(bound); }
};

class PythonAttention final : public attnbench::Attention {
 public:
  static void validate(const attnbench::Params& p, int64_t /*embed_dim*/) {
    if (p.get_string("module").empty()) {
      throw InvalidParameter("module", "python: give module, the .py file that defines the layer class");
    }
    if (!is_identifier(p.get_string("class"))) {
      throw InvalidParameter("class", "python: class '" + p.get_string("class") +
                                          "' is not a Python class name; give the layer class defined in the module");
    }
    parse_args(p.get_string("args"));
    // The module file is looked for when the cell runs, not here: a matrix over several modules then
    // runs every cell it can, and a missing file ends only its own cells.
  }

  explicit PythonAttention(const attnbench::CreateArgs& args)
      : module_(args.params.get_string("module")),
        class_(args.params.get_string("class")),
        args_text_(args.params.get_string("args")),
        device_(args.device),
        dtype_(args.dtype),
        embed_dim_(args.embed_dim) {
    validate(args.params, args.embed_dim);
    const YAML::Node keywords = parse_args(args_text_);
    Interpreter& python = Interpreter::get();
    Gil gil;
    try {
      calling(class_ + " (" + module_ + ")", [&] { load(python, keywords, args.seed); });
    } catch (...) {
      release();  // the members' Python objects go while the GIL is still held
      throw;
    }
    info_.embed_dim = embed_dim_;
    info_.details.set("module", module_);
    info_.details.set("class", class_);
    info_.details.set("args", args_text_);
    info_.details.set("python", python.python_version());
    info_.details.set("python_torch", python.torch_version());
  }

  ~PythonAttention() override {
    Gil gil;
    release();
  }

  attnbench::AttentionInfo info() const override { return info_; }

  std::unique_ptr<attnbench::State> init_state(int64_t batch) override {
    Gil gil;
    PyObject* result = PyObject_CallOneArg(init_state_.bound.ptr(), py::int_(batch).ptr());
    if (result == nullptr) throw_python_error(init_state_.what);
    return std::make_unique<PyState>(py::reinterpret_steal<py::object>(result));
  }

  at::Tensor forward(const at::Tensor& x, attnbench::State& state) override {
    if (x.dim() != 3 || x.size(2) != embed_dim_) {
      throw std::invalid_argument("python: forward expects (L, B, " + std::to_string(embed_dim_) + "), got " + shape_text(x));
    }
    return call(forward_, x, attnbench::state_cast<PyState>(state));
  }

  at::Tensor step(const at::Tensor& x_t, attnbench::State& state) override {
    if (x_t.dim() != 2 || x_t.size(1) != embed_dim_) {
      throw std::invalid_argument("python: step expects (B, " + std::to_string(embed_dim_) + "), got " + shape_text(x_t));
    }
    return call(step_, x_t, attnbench::state_cast<PyState>(state));
  }

  int64_t state_bytes(const attnbench::State& state) const override {
    const auto& held = attnbench::state_cast<PyState>(state);
    Gil gil;
    PyObject* result = PyObject_CallOneArg(state_bytes_.bound.ptr(), held.value.ptr());
    if (result == nullptr) throw_python_error(state_bytes_.what);
    py::object owned = py::reinterpret_steal<py::object>(result);
    if (!PyLong_Check(result) || PyBool_Check(result)) {
      throw std::invalid_argument("python: " + state_bytes_.what + " returned " + Py_TYPE(result)->tp_name +
                                  "; it must return an int, the bytes the state holds");
    }
    const long long bytes = PyLong_AsLongLong(result);
    if (bytes == -1 && PyErr_Occurred()) throw_python_error(state_bytes_.what);
    return bytes;
  }

  void reserve(attnbench::State& state, int64_t tokens) override {
    if (!reserve_) return;
    auto& held = attnbench::state_cast<PyState>(state);
    Gil gil;
    py::int_ count(tokens);
    PyObject* argv[] = {held.value.ptr(), count.ptr()};
    PyObject* result = PyObject_Vectorcall(reserve_.bound.ptr(), argv, 2, nullptr);
    if (result == nullptr) throw_python_error(reserve_.what);
    py::object owned = py::reinterpret_steal<py::object>(result);
    if (result != Py_None) held.value = std::move(owned);  // None: changed in place
  }

 private:
  // Imports the module, builds the class and binds its methods (bridge.load), reads its attributes.
  void load(Interpreter& python, const YAML::Node& keywords, uint64_t seed) {
    py::tuple loaded = python.bridge().attr("load")(module_, class_, to_python(keywords), embed_dim_, device_.str(),
                                                    dtype_name(dtype_), seed);
    instance_ = loaded[0];
    py::dict where = loaded[1];
    auto bind = [&](Method& m, const char* name) {
      if (!where.contains(name)) return;
      m.bound = instance_.attr(name);
      m.what = class_ + "." + name + " (" + where[name].cast<std::string>() + ")";
    };
    bind(init_state_, "init_state");
    bind(forward_, "forward");
    bind(step_, "step");
    bind(state_bytes_, "state_bytes");
    bind(reserve_, "reserve");
    py::tuple described = python.bridge().attr("info")(instance_, class_, module_);
    info_.description = described[0].cast<std::string>();
    info_.causal = described[1].cast<bool>();
    info_.devices = described[2].cast<std::vector<std::string>>();
  }

  // Drops every Python object the layer holds. Call with the GIL held.
  void release() {
    for (Method* m : {&init_state_, &forward_, &step_, &state_bytes_, &reserve_}) m->bound = py::object();
    instance_ = py::object();
  }

  // method(x, state) -> (y, state): the hot path of step(), so plain C API calls and no copies.
  at::Tensor call(const Method& method, const at::Tensor& x, PyState& state) {
    Gil gil;
    PyObject* input = THPVariable_Wrap(x);
    if (input == nullptr) throw_python_error(method.what);
    PyObject* argv[] = {input, state.value.ptr()};
    PyObject* result = PyObject_Vectorcall(method.bound.ptr(), argv, 2, nullptr);
    Py_DECREF(input);
    if (result == nullptr) throw_python_error(method.what);
    py::object owned = py::reinterpret_steal<py::object>(result);
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 2 || !THPVariable_Check(PyTuple_GET_ITEM(result, 0))) {
      std::string got = Py_TYPE(result)->tp_name;
      if (PyTuple_Check(result)) {
        got = "a tuple of " + std::to_string(PyTuple_GET_SIZE(result));
        if (PyTuple_GET_SIZE(result) == 2) got += " whose first item is " + std::string(Py_TYPE(PyTuple_GET_ITEM(result, 0))->tp_name);
      }
      throw std::invalid_argument("python: " + method.what + " returned " + got +
                                  "; it must return a tuple (y, state) with y a torch.Tensor");
    }
    at::Tensor y = THPVariable_Unpack(PyTuple_GET_ITEM(result, 0));
    state.value = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(result, 1));
    if (y.sizes() != x.sizes() || y.scalar_type() != x.scalar_type() || y.device() != x.device()) {
      throw std::invalid_argument("python: " + method.what + " returned a " + std::string(c10::toString(y.scalar_type())) +
                                  " tensor of shape " + shape_text(y) + " on " + y.device().str() + " for a " +
                                  c10::toString(x.scalar_type()) + " input of shape " + shape_text(x) + " on " +
                                  x.device().str() + "; y must have the input's shape, dtype and device");
    }
    return y;
  }

  std::string module_, class_, args_text_;
  c10::Device device_;
  c10::ScalarType dtype_;
  int64_t embed_dim_;
  py::object instance_;
  Method init_state_, forward_, step_, state_bytes_, reserve_;
  attnbench::AttentionInfo info_;
};

}  // namespace

ATTNBENCH_ATTENTION_PLUGIN(PythonAttention, "python", "0.1.0", kParams)
