"""The Python half of attnbench's `python` attention plugin, compiled into the plugin and run inside its
embedded interpreter (docs/python-layers.md). It does what happens once per cell: finding torch,
importing the layer's module, checking its class against the protocol, building it, reading its optional
attributes, and turning an exception into the cell's message. The per-token calls (forward, step,
state_bytes) go from C++ straight to the layer's methods and never pass through here."""
import importlib.util
import os
import sys
import traceback

# What a layer class must define, and what it may.
REQUIRED = ("init_state", "forward", "step", "state_bytes")
OPTIONAL = ("reserve",)
# Keyword arguments the plugin passes itself, which `args` may therefore not name.
RESERVED_ARGS = ("embed_dim", "device", "dtype", "seed")
# Traceback frames from here or from the import machinery say nothing about the user's code.
BRIDGE_FILE = "<attnbench python bridge>"
FRAMES_SHOWN = 3


class LayerError(Exception):
    """A layer that breaks the protocol: its message is the whole story, no traceback is added."""


def import_torch(host_libtorch):
    """Imports torch after making sure it is the libtorch the runner already runs (host_libtorch, a
    path): a second copy of libtorch in one process would register every operator twice. Returns its
    version."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise LayerError(f"python: this Python ({sys.executable}, {python_version()}) has no torch module; "
                         f"install the torch the runner was built with (its libtorch is {host_libtorch})")
    torch_dir = os.path.dirname(spec.origin)
    mine = os.path.join(torch_dir, "lib", os.path.basename(host_libtorch).split(".so")[0] + ".so")
    if os.path.realpath(mine) != os.path.realpath(host_libtorch):
        raise LayerError(f"python: the embedded Python's torch ({torch_dir}) uses {os.path.realpath(mine)}, "
                         f"not the runner's libtorch {os.path.realpath(host_libtorch)}; run with the Python "
                         "the plugin was built for (unset PYTHONPATH/PYTHONHOME) or rebuild with "
                         "-DATTNBENCH_PYTHON_EXECUTABLE=<a python whose torch is the runner's>")
    import torch
    return torch.__version__


def python_version():
    return ".".join(str(v) for v in sys.version_info[:3])


def where(obj):
    """'file:line' of a function or class, or '' when Python cannot tell (a builtin)."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        return f"{code.co_filename}:{code.co_firstlineno}"
    try:
        import inspect
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (TypeError, OSError):
        return ""


_module_names = {}


def module_name(path):
    """A name in sys.modules for the file at path, one per file, that no real module has."""
    if path not in _module_names:
        stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
        _module_names[path] = f"attnbench_layer_{len(_module_names)}_{stem}"
    return _module_names[path]


def load(module_path, class_name, args, embed_dim, device, dtype, seed):
    """Imports the file module_path, checks that class_name implements the protocol and builds it as
    class_name(embed_dim, device=, dtype=, seed=, **args). Returns (instance, {method: 'file:line'})."""
    import torch
    path = os.path.abspath(module_path)
    if not os.path.exists(path):
        raise LayerError(f"python: module '{module_path}' does not exist (class {class_name}); module is a path "
                         f"to a .py file, relative to the directory the runner was started in ({os.getcwd()})")
    if not os.path.isfile(path):
        raise LayerError(f"python: module '{module_path}' is not a file (class {class_name})")
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered, as an import would, so that dataclasses and pickling find the module; its folder goes on
    # sys.path so that it can import the files beside it.
    sys.modules[name] = module
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)

    cls = getattr(module, class_name, None)
    if cls is None:
        classes = sorted(k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == name)
        raise LayerError(f"python: {module_path} has no class '{class_name}'; it defines: "
                         f"{', '.join(classes) if classes else '(no classes)'}")
    if not isinstance(cls, type):
        raise LayerError(f"python: {module_path}: '{class_name}' is a {type(cls).__name__}, not a class")
    for method in REQUIRED:
        if not callable(getattr(cls, method, None)):
            raise LayerError(f"python: {where(cls) or module_path}: class {class_name} has no method '{method}'; "
                             f"a layer defines {', '.join(REQUIRED)} (docs/python-layers.md)")
    instance = cls(embed_dim, device=torch.device(device), dtype=getattr(torch, dtype), seed=seed, **args)
    methods = {m: where(getattr(cls, m)) for m in REQUIRED + OPTIONAL if callable(getattr(cls, m, None))}
    return instance, methods


def info(instance, class_name, module_path):
    """The layer's optional attributes, checked: (description, causal, devices)."""
    description = getattr(instance, "description", None)
    if description is None:
        description = f"{class_name} from {module_path}"
    causal = getattr(instance, "causal", True)
    devices = getattr(instance, "devices", ("cpu", "cuda"))
    if not isinstance(description, str):
        raise LayerError(f"python: {class_name}.description must be a str, got {type(description).__name__}")
    if not isinstance(causal, bool):
        raise LayerError(f"python: {class_name}.causal must be a bool, got {type(causal).__name__}")
    if isinstance(devices, str) or not all(isinstance(d, str) for d in devices):
        raise LayerError(f"python: {class_name}.devices must be a list of device types such as ['cpu', 'cuda'], "
                         f"got {devices!r}")
    return description, causal, list(devices)


def describe(exc, what):
    """The cell's message for an exception raised by `what` (e.g. 'Layer.step'): the exception and the
    last frames of its traceback, each with file:line. Returns (message, kind), kind being
    'out_of_memory', 'protocol' (the layer breaks the protocol: a LayerError) or 'error'."""
    if isinstance(exc, LayerError):
        return str(exc), "protocol"
    out_of_memory = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    lines = [f"python: {what} raised {type(exc).__name__}: {exc}"]
    if isinstance(exc, SyntaxError) and exc.filename:
        lines.append(f'  File "{exc.filename}", line {exc.lineno}: {(exc.text or "").strip()}')
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename != BRIDGE_FILE and not f.filename.startswith("<frozen ")]
    for frame in frames[-FRAMES_SHOWN:]:
        source = f": {frame.line.strip()}" if frame.line else ""
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}{source}')
    return "\n".join(lines), "out_of_memory" if out_of_memory else "error"
