#include "measure/inputs.h"

#include "plugins/loader.h"

#include <attnbench/support/hash.h>

namespace attnbench {

const EmbeddingSource::Entry& EmbeddingSource::get(const Cell& cell, c10::Device device, c10::ScalarType dtype) {
  return get(cell, device, dtype, cell.samples, cell.seq_len);
}

const EmbeddingSource::Entry& EmbeddingSource::get(const Cell& cell, c10::Device device, c10::ScalarType dtype,
                                                   int64_t samples, int64_t seq_len) {
  nlohmann::json data = {{"embedder", cell.embedder}, {"params", params_to_json(cell.embedder_params)},
                         {"samples", samples}, {"seq_len", seq_len}};
  nlohmann::json key = {{"data", data}, {"device", device.str()}, {"dtype", c10::toString(dtype)}, {"seed", cell.seed}};
  std::string hash = hash_json(key);
  auto it = entries_.find(hash);
  if (it != entries_.end()) return it->second;
  const Plugin& plugin = load_plugin(cell.embedder, ATTNBENCH_PLUGIN_EMBEDDER);
  CreateArgs args;
  args.params = complete_params(plugin, cell.embedder_params);
  args.device = device;
  args.dtype = dtype;
  args.seed = static_cast<uint64_t>(cell.seed);
  args.threads = static_cast<int>(cell.threads);
  EmbedderInstance embedder(plugin, args);
  Entry entry;
  entry.tokens = embedder.embed(samples, seq_len).to(device, dtype);
  EmbedderInfo info = embedder.info();
  entry.info = {{"plugin", plugin.name()}, {"version", plugin.version()}, {"description", info.description},
                {"embed_dim", info.embed_dim}, {"details", params_to_json(info.details)}};
  return entries_.emplace(hash, std::move(entry)).first->second;
}

}  // namespace attnbench
