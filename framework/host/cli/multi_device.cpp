#include "cli/multi_device.h"

#include "results/results_file.h"

#include <attnbench/support/files.h>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

extern char** environ;

namespace attnbench {

int run_on_devices(const Study& study, const std::vector<std::string>& devices, const std::vector<std::string>& child_args,
                   ShardSpec outer, bool force, std::ostream& out) {
  const int64_t n = static_cast<int64_t>(devices.size());
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  ResultsFile results(study.results_path);  // refuses what is not a results file
  for (const std::string& note : results.notes()) fmt::print(out, "note: {}\n", note);
  const std::vector<nlohmann::json> existing = results.lines();
  // cell hash -> 0-based part: position modulo n, as the child's composed --shard selects it
  std::map<std::string, int64_t> shard_of;
  for (size_t position = 0; position < study.cells.size(); ++position) {
    shard_of[study.cells[position].hash] = static_cast<int64_t>(position) % n;
  }

  std::vector<pid_t> children;
  std::vector<std::string> shard_files;
  for (int64_t k = 0; k < n; ++k) {
    const std::string shard_file = fmt::format("{}.device{}.jsonl", study.results_path, devices[k]);
    const std::string log_file = fmt::format("{}.device{}.log", study.results_path, devices[k]);
    {
      // Seed the shard with its cells already done, so the child skips them as a single run would.
      AtomicFile seed(shard_file);
      for (const auto& line : existing) {
        auto it = shard_of.find(line["hash"]);
        if (!force && it != shard_of.end() && it->second == k) seed.write(line.dump() + "\n");
      }
      seed.commit();
    }
    std::vector<std::string> args{self};
    args.insert(args.end(), child_args.begin(), child_args.end());
    const std::string part = fmt::format("{}/{}", outer.index + outer.count * k, outer.count * n);
    for (const std::string& extra : {std::string("--shard"), part, std::string("--results"), shard_file}) {
      args.push_back(extra);
    }
    std::vector<std::string> env{"CUDA_VISIBLE_DEVICES=" + devices[k]};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("CUDA_VISIBLE_DEVICES=", 0) != 0) env.emplace_back(*e);
    }
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error(fmt::format("cannot start a runner for device {}: {}", devices[k], std::strerror(rc)));
    fmt::print(out, "device {}: shard {} started (log {})\n", devices[k], part, log_file);
    out.flush();
    children.push_back(pid);
    shard_files.push_back(shard_file);
  }

  int status_out = 0;
  for (int64_t k = 0; k < n; ++k) {
    int status = 0;
    waitpid(children[k], &status, 0);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fmt::print(out, "device {}: finished with exit status {}\n", devices[k], code);
    if (code != 0 && status_out == 0) status_out = code;
  }

  // Merge: every new line of every shard, once; lines the study file already has stay as they are.
  // done() grows with each append, which also reads what other runners appended meanwhile.
  size_t added = 0;
  std::set<std::string> merged;
  for (const std::string& file : shard_files) {
    std::vector<nlohmann::json> lines;
    {
      // A child stopped mid-line leaves a torn last line: it goes to a sidecar file, as in any results file.
      ResultsFile shard(file);
      for (const std::string& note : shard.notes()) fmt::print(out, "note: {}\n", note);
      lines = shard.lines();
    }
    for (const auto& line : lines) {
      const std::string& hash = line["hash"].get_ref<const std::string&>();
      if (force ? merged.count(hash) > 0 : results.done().count(hash) > 0) continue;
      results.append(line);
      merged.insert(hash);
      ++added;
    }
    std::filesystem::remove(file);
  }
  fmt::print(out, "merged {} new cells from {} devices into {}\n", added, n, study.results_path);
  return status_out;
}

}  // namespace attnbench
