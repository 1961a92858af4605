# Writes the build's provenance (build_info.cpp) at build time, run as
#   cmake -DSOURCE_DIR=... -DOUTPUT=... -DATTNBENCH_VERSION=... -DBUILD_TYPE=... -DCOMPILER=...
#         -DCUDA_ARCHITECTURES=... -P BuildInfo.cmake
# on every build, so the commit is the one built; the file is rewritten only when a fact changed, so an
# unchanged tree recompiles nothing.
find_package(Git QUIET)
set(GIT_COMMIT unknown)
set(GIT_DIRTY false)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE commit_rc ERROR_QUIET)
  if(commit_rc EQUAL 0 AND commit)
    set(GIT_COMMIT ${commit})
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(changes)
      set(GIT_DIRTY true)
    endif()
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/build_info.cpp.in ${OUTPUT} @ONLY)
