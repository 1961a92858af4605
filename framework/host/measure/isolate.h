// Running a piece of work in a child process, so that a plugin that crashes (a signal) ends that piece
// of work and not the runner: the conformance checker runs each check this way, and a study with
// `run.isolate: true` each cell.
//
// The child is a fork of this process. For that to be safe the parent should not have computed with
// torch before: a fork keeps only the calling thread, so a parent's OpenMP team or initialised CUDA
// context is unusable in the child. The checker and an isolated study leave all of that to the children.
#pragma once

#include <functional>
#include <string>

namespace attnbench {

// How a child ended: its payload when it finished, otherwise why it did not.
struct ChildOutcome {
  bool finished = false;  // the work returned and its payload came back
  std::string payload;
  int signal = 0;          // the signal that ended the child, 0 if none
  int exit_status = -1;    // the status it exited with, when it exited without a payload
  bool timed_out = false;  // killed after `timeout_s`
  double timeout_s = 0;
  std::string activity;  // the last set_activity() of the child: where it was when it ended
  std::string error;     // the work threw instead of returning: its message

  // For a child that did not finish: "crashed with SIGFPE (arithmetic exception, ...) in step() over 1
  // token", "exited with status 1 before reporting ...", "did not finish in 600 s ...".
  std::string failure() const;
};

// Runs `work` in a forked child and returns what it returned (the payload) or how the child ended.
// In the child the crash signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) are reset to their default
// action, so a crash ends the child by that signal even where a sanitizer would have handled it; the
// child leaves with _exit(), running no atexit handlers or static destructors. Standard output is
// flushed before the fork. `timeout_s` > 0: the child is killed (SIGKILL) when it runs longer.
ChildOutcome run_in_child(const std::function<std::string()>& work, double timeout_s = 0);

// In a child of run_in_child: records what it is doing now ("step() over 65 tokens"), which a crash
// report then names. Elsewhere it does nothing.
void set_activity(const std::string& text);

// "SIGFPE (arithmetic exception, e.g. an integer division by zero)", "SIGSEGV (...)", "signal 42".
std::string signal_text(int signal);

}  // namespace attnbench
