# What the `python` attention plugin needs, found for the torch this build uses (docs/python-layers.md):
# a Python whose `torch` package is that same libtorch (Debian's python3-torch for Debian's libtorch, the
# pip torch's own Python for a CUDA build), its headers and shared libpython, libtorch_python, and
# pybind11's headers (torch's bundled copy first, else pybind11-dev).
#
#   -DATTNBENCH_PYTHON_LAYERS=AUTO|ON|OFF   AUTO builds the plugin where all of it exists
#   -DATTNBENCH_PYTHON_EXECUTABLE=PATH      the Python to embed; default: the first of `python3` on PATH
#                                           and /usr/bin/python3 whose torch is this build's libtorch
#
# Sets ATTNBENCH_WITH_PYTHON and, when ON, the INTERFACE target attnbench_python_embed.
set(ATTNBENCH_PYTHON_LAYERS AUTO CACHE STRING "The python attention plugin: AUTO (where a Python with this torch is found), ON or OFF")
set_property(CACHE ATTNBENCH_PYTHON_LAYERS PROPERTY STRINGS AUTO ON OFF)
set(ATTNBENCH_PYTHON_EXECUTABLE "" CACHE FILEPATH "The Python the python plugin embeds (empty: found)")

function(attnbench_find_python_embed)
  set(ATTNBENCH_WITH_PYTHON OFF PARENT_SCOPE)
  if(ATTNBENCH_PYTHON_LAYERS STREQUAL "OFF")
    message(STATUS "attnbench: python layers OFF (ATTNBENCH_PYTHON_LAYERS=OFF)")
    return()
  endif()
  macro(missing why)
    if(ATTNBENCH_PYTHON_LAYERS STREQUAL "ON")
      message(FATAL_ERROR "ATTNBENCH_PYTHON_LAYERS=ON, but ${why}")
    endif()
    message(STATUS "attnbench: python layers OFF: ${why} (scripts/setup.sh installs python3-dev, python3-torch, pybind11-dev)")
    return()
  endmacro()

  # The Python: its torch must be this build's libtorch, file for file, or the process would hold two.
  if(ATTNBENCH_PYTHON_EXECUTABLE)
    set(candidates "${ATTNBENCH_PYTHON_EXECUTABLE}")
  else()
    find_program(_attnbench_path_python python3)
    set(candidates ${_attnbench_path_python} /usr/bin/python3)
    unset(_attnbench_path_python CACHE)
    list(REMOVE_DUPLICATES candidates)
  endif()
  get_filename_component(host_libtorch "${TORCH_LIBRARY}" REALPATH)
  set(python "")
  set(tried "")
  foreach(candidate IN LISTS candidates)
    execute_process(COMMAND "${candidate}" -c
      "import importlib.util as u, os; s = u.find_spec('torch'); print(os.path.realpath(os.path.join(os.path.dirname(s.origin), 'lib', 'libtorch.so')) if s else 'no torch')"
      OUTPUT_VARIABLE their_libtorch OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
    if(NOT failed AND their_libtorch STREQUAL host_libtorch)
      set(python "${candidate}")
      break()
    endif()
    if(failed)
      set(their_libtorch "does not run")
    endif()
    list(APPEND tried "${candidate}: ${their_libtorch}")
  endforeach()
  if(NOT python)
    string(REPLACE ";" ", " tried "${tried}")
    missing("no Python's torch is this build's libtorch ${host_libtorch} (${tried}); set ATTNBENCH_PYTHON_EXECUTABLE")
  endif()

  set(Python3_EXECUTABLE "${python}")
  find_package(Python3 3.9 COMPONENTS Interpreter Development.Embed QUIET)
  if(NOT Python3_Development.Embed_FOUND)
    missing("${python} has no headers or libpython to embed (python3-dev)")
  endif()
  get_target_property(libpython Python3::Python IMPORTED_LOCATION)
  if(NOT libpython)
    set(libpython "${Python3_LIBRARIES}")
  endif()
  if(NOT libpython MATCHES "\\.so")
    missing("${python}'s libpython is static (${libpython}); the plugin needs a shared libpython")
  endif()

  get_filename_component(torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
  find_library(ATTNBENCH_TORCH_PYTHON_LIBRARY torch_python HINTS "${torch_lib_dir}" "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
  if(NOT ATTNBENCH_TORCH_PYTHON_LIBRARY)
    missing("no libtorch_python beside ${TORCH_LIBRARY}")
  endif()
  find_path(ATTNBENCH_TORCH_PYTHON_INCLUDE_DIR torch/csrc/autograd/python_variable.h HINTS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  find_path(ATTNBENCH_PYBIND11_INCLUDE_DIR pybind11/pybind11.h HINTS ${TORCH_INCLUDE_DIRS})
  if(NOT ATTNBENCH_TORCH_PYTHON_INCLUDE_DIR OR NOT ATTNBENCH_PYBIND11_INCLUDE_DIR)
    missing("torch's Python headers or pybind11's are missing (pybind11-dev)")
  endif()

  # bridge.py, compiled into the plugin, so that nothing has to be found beside it at run time.
  file(READ "${CMAKE_CURRENT_SOURCE_DIR}/attention_python/bridge.py" ATTNBENCH_BRIDGE_SOURCE)
  file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/attention_python/bridge_source.h" @ONLY CONTENT
       "// Generated from plugins/attention_python/bridge.py at configure time.\n#pragma once\n\nconstexpr char kBridgeSource[] = R\"attnbench_bridge(@ATTNBENCH_BRIDGE_SOURCE@)attnbench_bridge\";\n")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/attention_python/bridge.py")

  add_library(attnbench_python_embed INTERFACE)
  target_include_directories(attnbench_python_embed INTERFACE "${CMAKE_CURRENT_BINARY_DIR}/attention_python"
                             ${ATTNBENCH_PYBIND11_INCLUDE_DIR})
  target_link_libraries(attnbench_python_embed INTERFACE Python3::Python "${ATTNBENCH_TORCH_PYTHON_LIBRARY}")
  target_compile_definitions(attnbench_python_embed INTERFACE ATTNBENCH_PYTHON_EXECUTABLE="${python}")
  message(STATUS "attnbench: python layers ON: ${python} (Python ${Python3_VERSION}, ${libpython})")
  set(ATTNBENCH_WITH_PYTHON ON PARENT_SCOPE)
  set(ATTNBENCH_PYTHON_EXECUTABLE_FOUND "${python}" PARENT_SCOPE)
endfunction()

attnbench_find_python_embed()
