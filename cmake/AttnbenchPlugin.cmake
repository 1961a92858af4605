# attnbench_add_plugin(<name> SOURCES <files...> [CUDA_SOURCES <files...>] [LIBRARIES <targets...>]
#                      [DEFINITIONS <defs...>] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL] [EXCLUDE_FROM_ALL])
#
# Builds attnbench_<name>.so, loadable by the runner: the SDK on the include path, the same torch as the
# runner, hidden visibility so plugins never clash with each other or the host, and ATTNBENCH_WITH_CUDA
# when CUDA is on, which the handshake reports. Used for the built-in plugins and, once installed,
# by third-party projects through find_package(attnbench). A plugin that needs safetensors I/O, the torch
# version shims or the CUDA helpers adds LIBRARIES attnbench::support.
function(attnbench_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL;EXCLUDE_FROM_ALL" "OUTPUT_DIRECTORY" "SOURCES;CUDA_SOURCES;LIBRARIES;DEFINITIONS" ${ARGN})
  set(target attnbench_${name})
  set(sources ${ARG_SOURCES})
  if(ATTNBENCH_WITH_CUDA AND ARG_CUDA_SOURCES)
    list(APPEND sources ${ARG_CUDA_SOURCES})
  endif()
  if(ARG_EXCLUDE_FROM_ALL)
    add_library(${target} MODULE EXCLUDE_FROM_ALL ${sources})
  else()
    add_library(${target} MODULE ${sources})
  endif()
  target_link_libraries(${target} PRIVATE attnbench::sdk ${ARG_LIBRARIES})
  target_compile_definitions(${target} PRIVATE ${ARG_DEFINITIONS})
  if(NOT ARG_OUTPUT_DIRECTORY)
    # In attnbench's tree: beside the runner; in a third-party project: its build folder.
    if(DEFINED ATTNBENCH_PLUGIN_BUILD_DIR)
      set(ARG_OUTPUT_DIRECTORY "${ATTNBENCH_PLUGIN_BUILD_DIR}")
    else()
      set(ARG_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    endif()
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "attnbench_${name}"
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}"
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(NOT ARG_NO_INSTALL AND DEFINED ATTNBENCH_PLUGIN_INSTALL_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION "${ATTNBENCH_PLUGIN_INSTALL_DIR}")
  endif()
endfunction()
