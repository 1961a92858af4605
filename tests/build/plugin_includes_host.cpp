// Must not compile: a plugin sees the SDK and the support library, never the host's headers. The test
// build.plugin_cannot_include_host_headers builds this and expects the compiler to miss the header.
#include <attnbench/attention.h>
#include <attnbench/support/safetensors.h>

#include "study/study.h"
