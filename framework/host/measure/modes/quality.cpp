// Mode `quality`: what a layer remembers, with no training of the layer. For each task plugin in
// quality.tasks (plugins/tasks/), the task makes an episode; its inputs stream through the layer in
// causal chunks through one state, as a user would stream them; a ridge readout (measure/readout.h) is
// fitted from the layer's outputs to the task's targets, and the same readout from the inputs alone for
// the baseline; the task scores both. A closed loop, where the task asks for one, feeds the readout's
// prediction back through step(). Every task is seeded from the cell's seed.
#include "measure/inputs.h"
#include "measure/mode.h"
#include "measure/readout.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>

namespace attnbench {
namespace {

std::vector<StudyKey> quality_keys() {
  StudyKey tasks;
  tasks.path = "quality.tasks";
  tasks.type = SettingType::kStringList;
  tasks.default_text = "[memory_capacity, mackey_glass, next_embedding]";
  tasks.min = 1;
  tasks.hashed = Hashed::kWhenSet;
  tasks.plugin_kind = ATTNBENCH_PLUGIN_TASK;
  tasks.help = "task plugins the quality mode runs; each one's parameters under quality.params.<task> "
               "(docs/quality.md)";
  StudyKey chunk;
  chunk.path = "quality.chunk";
  chunk.type = SettingType::kInt;
  chunk.default_text = "512";
  chunk.min = 1;
  chunk.hashed = Hashed::kWhenSet;
  chunk.help = "tokens per forward() when a task's stream goes through the layer (the state carries across)";
  return {tasks, chunk};
}

at::Tensor as_cpu_double(const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); }

void check_finite(const at::Tensor& y, const std::string& plugin, const std::string& task) {
  if (!at::isfinite(y).all().item<bool>()) {
    throw PluginError(fmt::format("plugin '{}' returned NaN or Inf on task '{}'", plugin, task));
  }
}

nlohmann::json params_json(const Params& p) { return params_to_json(p); }

nlohmann::json run_task(CellContext& c, const std::string& name, const Params& params) {
  const Plugin& plugin = load_plugin(name, ATTNBENCH_PLUGIN_TASK);
  const int64_t embed_dim = c.first().size(2);
  CreateArgs args;
  args.params = params;
  args.embed_dim = embed_dim;
  args.seed = static_cast<uint64_t>(c.cell.seed);
  TaskInstance task(plugin, args);
  const TaskInfo info = task.info();

  at::Tensor corpus;
  if (info.corpus_documents > 0) {
    if (c.data() == nullptr) throw std::logic_error("quality: no embedder to read the study's corpus from");
    const int64_t tokens = info.corpus_tokens > 0 ? info.corpus_tokens : c.cell.seq_len;
    corpus = c.data()->get(c.cell, c10::kCPU, at::kFloat, info.corpus_documents, tokens).tokens;
  }
  const TaskEpisode episode = task.make(embed_dim, corpus);
  const int64_t rows = episode.inputs.size(0), batch = episode.inputs.size(1), k = episode.targets.size(2);

  // The stream through one state, in causal chunks; outputs kept on the CPU in float64 for the readout.
  auto state = c.layer.init_state(batch);
  c.layer.reserve(*state, rows + episode.free_run);
  const at::Tensor inputs = episode.inputs.to(c.device, c.first().scalar_type());
  at::Tensor outputs = at::empty({rows, batch, c.first().size(2)}, at::kDouble);
  const int64_t chunk = c.cell.settings.get_int("quality.chunk");
  for (int64_t start = 0; start < rows; start += chunk) {
    const int64_t n = std::min(chunk, rows - start);
    outputs.narrow(0, start, n).copy_(as_cpu_double(c.layer.forward(inputs.narrow(0, start, n), *state)));
  }
  check_finite(outputs, c.layer.plugin().name(), name);

  const at::Tensor split = episode.split.reshape({rows * batch});
  const at::Tensor train = split.eq(static_cast<int8_t>(Split::kTrain));
  const at::Tensor validation = split.eq(static_cast<int8_t>(Split::kValidation));
  const at::Tensor targets = episode.targets.reshape({rows * batch, k});
  const Readout readout = fit_ridge(outputs.reshape({rows * batch, -1}), targets, train, validation);
  const Readout baseline = fit_ridge(episode.inputs.reshape({rows * batch, -1}), targets, train, validation);
  TaskPredictions predictions;
  predictions.outputs = readout.predict(outputs.reshape({rows * batch, -1})).reshape({rows, batch, k});
  predictions.inputs = baseline.predict(episode.inputs.reshape({rows * batch, -1})).reshape({rows, batch, k});

  if (episode.free_run > 0) {
    // The readout's prediction from the last output is the next input: nothing else drives the layer.
    predictions.free_outputs = at::empty({episode.free_run, batch, k}, at::kDouble);
    at::Tensor prediction = readout.predict(outputs[rows - 1]);
    for (int64_t h = 0; h < episode.free_run; ++h) {
      predictions.free_outputs[h].copy_(prediction);
      if (h + 1 == episode.free_run) break;
      const at::Tensor next = task.feedback(prediction).to(c.device, c.first().scalar_type());
      const at::Tensor y = as_cpu_double(c.layer.step(next, *state));
      check_finite(y, c.layer.plugin().name(), name + " (closed loop)");
      prediction = readout.predict(y);
    }
  }

  const TaskScores s = task.score(episode, predictions);
  std::vector<double> ridge = readout.ridge;
  std::nth_element(ridge.begin(), ridge.begin() + static_cast<long>(ridge.size() / 2), ridge.end());
  auto count = [&](Split which) { return split.eq(static_cast<int8_t>(which)).sum().item<int64_t>(); };
  nlohmann::json out = {
      {"score", s.score},
      {"score_name", info.score_name},
      {"better", info.higher_is_better ? "higher" : "lower"},
      {"baseline", s.baseline},
      {"baseline_name", info.baseline_name},
      {"scores", params_json(s.scores)},
      {"baseline_scores", params_json(s.baseline_scores)},
      {"task", {{"plugin", plugin.name()}, {"version", plugin.version()}, {"description", info.description},
                {"details", params_json(info.details)}}},
      {"readout",
       {{"ridge", ridge[ridge.size() / 2]}, {"ridge_grid", ridge_grid()}, {"features", readout.features},
        {"targets", k}, {"washout", count(Split::kIgnore)}, {"train", count(Split::kTrain)},
        {"validation", count(Split::kValidation)}, {"test", count(Split::kTest)}, {"free_run", episode.free_run}}},
  };
  if (!s.curve_x.empty()) {
    out["curve"] = {{"x", s.curve_x}, {"y", s.curve_y}, {"x_name", s.curve_x_name}, {"y_name", s.curve_y_name}};
  }
  return out;
}

Mode quality_mode() {
  Mode m;
  m.name = "quality";
  m.title = "Quality";
  m.help = "quality tasks (quality.tasks): a ridge readout of the layer's outputs, scored against a baseline";
  m.order = 60;
  m.needs_causal = true;
  m.metrics = {
      {"quality.<task>.score", "number", "1", "task",
       "the task's headline score (`score_name`), better in the direction `better` says"},
      {"quality.<task>.baseline", "number", "1", "task", "the same score for the task's baseline (`baseline_name`)"},
      {"quality.<task>.scores", "object", "1", "", "every score the task reports, by name"},
      {"quality.<task>.baseline_scores", "object", "1", "", "the baseline's scores, by name"},
      {"quality.<task>.curve", "object", "", "", "`{x, y, x_name, y_name}`: a curve the task draws (memory capacity: r²(k))"},
      {"quality.<task>.readout", "object", "", "",
       "`ridge` (median regulariser chosen, relative to XᵀX's mean eigenvalue), `ridge_grid`, `features`, `targets`, "
       "rows for `washout`, `train`, `validation`, `test`, and `free_run` closed-loop steps"},
  };
  m.summary = {{"*", "quality.*.score", "number"}};
  m.run = [](CellContext& c) {
    nlohmann::json quality = nlohmann::json::object();
    const auto& params = c.cell.plugin_params.at("quality.tasks");
    for (const std::string& name : c.cell.settings.get_list("quality.tasks")) quality[name] = run_task(c, name, params.at(name));
    return nlohmann::json{{"quality", quality}};
  };
  m.print = [](const nlohmann::json& metrics, std::ostream& out) {
    bool first = true;
    for (const auto& [name, q] : metrics["quality"].items()) {
      fmt::print(out, "  {:<18}{}: {} {:.4g} (baseline {:.4g}, {}; {} is better)\n", first ? "[Quality]" : "", name,
                 q["score_name"].get<std::string>(), q["score"].get<double>(), q["baseline"].get<double>(),
                 q["baseline_name"].get<std::string>(), q["better"].get<std::string>());
      first = false;
    }
  };
  return m;
}

}  // namespace

ATTNBENCH_REGISTER_MODE(quality_mode(), quality_keys());

}  // namespace attnbench
