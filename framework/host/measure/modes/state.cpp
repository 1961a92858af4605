// Every cell, whatever its modes: the state's size against tokens (a KV cache grows, a reservoir does
// not) and the cell's peak memory.
#include "measure/device.h"
#include "measure/mode.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

namespace attnbench {
namespace {

// State size after 0, 1, 2, 4, ... tokens and after the last, for "state bytes against tokens". Every
// cell streams here, so this is where a step that returns NaN or Inf is caught (checked on the device,
// read once at the end).
nlohmann::json state_growth(AttentionLayer& layer, const at::Tensor& x) {
  auto state = layer.init_state(x.size(1));
  layer.reserve(*state, x.size(0));
  nlohmann::json tokens = nlohmann::json::array(), bytes = nlohmann::json::array();
  tokens.push_back(0);
  bytes.push_back(layer.state_bytes(*state));
  at::Tensor finite = at::ones({}, x.options().dtype(at::kBool));
  for (int64_t t = 0; t < x.size(0); ++t) {
    finite.logical_and_(at::isfinite(layer.step(x[t], *state)).all());
    int64_t n = t + 1;
    if ((n & (n - 1)) == 0 || n == x.size(0)) {
      tokens.push_back(n);
      bytes.push_back(layer.state_bytes(*state));
    }
  }
  if (!finite.item<bool>()) throw PluginError(fmt::format("plugin '{}' step() returned NaN or Inf", layer.plugin().name()));
  return {{"tokens", tokens}, {"bytes", bytes}};
}

Mode state_mode() {
  Mode m;
  m.name = "state";
  m.title = "State";
  m.help = "the state's size against tokens, and the cell's peak memory";
  m.order = 1000;
  m.selectable = false;
  m.metrics = {
      {"state_bytes", "integer", "bytes", "lower", "bytes the state holds after L tokens"},
      {"state_bytes_initial", "integer", "bytes", "", "bytes of an empty state"},
      {"state_growth", "object", "bytes", "",
       "`{tokens: [0, 1, 2, 4, ..., L], bytes: [...]}`: state size against tokens"},
      {"tokens", "integer", "tokens", "", "L of the measured input"},
      {"batch", "integer", "sequences", "", "B of the measured input"},
      {"peak_rss_bytes", "integer", "bytes", "", "peak resident memory during the cell (VmHWM, reset per cell)"},
      {"peak_cuda_bytes", "integer", "bytes", "", "peak CUDA memory allocated during the cell (CUDA cells only)"},
      {"peak_tensor_bytes", "integer", "bytes", "",
       "the most tensor memory the cell held at once on its device, the harness's own buffers included (CPU: "
       "attnbench's accounting allocator; CUDA: the caching allocator)"},
  };
  m.run = [](CellContext& c) {
    nlohmann::json growth = state_growth(c.layer, c.first());
    nlohmann::json out = {{"state_bytes", growth["bytes"].back()}, {"state_bytes_initial", growth["bytes"].front()},
                          {"state_growth", growth},           {"tokens", c.first().size(0)},
                          {"batch", c.first().size(1)},        {"peak_rss_bytes", peak_rss_bytes()}};
    if (c.device.is_cuda()) out["peak_cuda_bytes"] = peak_device_bytes(c.device);
    out["peak_tensor_bytes"] = cell_peak_allocated_bytes(c.device);
    return out;
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    fmt::print(out, "  [State]           {} bytes after {} tokens ({} at start)\n", metrics["state_bytes"].get<int64_t>(),
               metrics["tokens"].get<int64_t>(), metrics["state_bytes_initial"].get<int64_t>());
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(state_mode());

}  // namespace attnbench
