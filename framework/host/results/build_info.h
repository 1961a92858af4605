// Facts about this build, fixed when it was built (cmake/BuildInfo.cmake writes their definitions).
#pragma once

namespace attnbench::build_info {
extern const char* const kVersion;            // attnbench's project version
extern const char* const kGitCommit;          // short commit of the source tree, "unknown" outside git
extern const bool kGitDirty;                  // tracked files differed from that commit
extern const char* const kBuildType;          // CMAKE_BUILD_TYPE
extern const char* const kCompiler;           // e.g. "GNU 12.2.0"
extern const char* const kCudaArchitectures;  // CMAKE_CUDA_ARCHITECTURES, "" without CUDA
}  // namespace attnbench::build_info
