// The error check the standalone programs in docs/bench share: a failed CUDA runtime call prints
// itself and its error and returns 1 from the function (main, or a helper that returns int).
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

#define CHECK(x)                                                        \
  do {                                                                  \
    cudaError_t status_ = (x);                                          \
    if (status_ != cudaSuccess) {                                       \
      std::printf("%s: %s\n", #x, cudaGetErrorString(status_));         \
      return 1;                                                         \
    }                                                                   \
  } while (0)
