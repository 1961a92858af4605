#include "measure/isolate.h"

#include <fmt/format.h>

#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>

namespace attnbench {
namespace {

constexpr size_t kActivityBytes = 4096;

// The child's activity text, in a page shared with the parent so that it survives the child's crash.
char* g_activity = nullptr;

void write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent is gone; nothing left to tell
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void child_main(int fd, const std::function<std::string()>& work) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, SIG_DFL);
  // The first byte says whether the work returned ('=') or threw ('!'); the rest is the payload or message.
  std::string message;
  try {
    message = "=" + work();
  } catch (const std::exception& e) {
    message = std::string("!") + e.what();
  } catch (...) {
    message = "!an exception that is not a std::exception";
  }
  write_all(fd, message);
  ::close(fd);
  std::fflush(nullptr);  // what the work itself printed; the parent flushed its own before the fork
  ::_exit(0);
}

}  // namespace

std::string signal_text(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV (segmentation fault: a bad memory access)";
    case SIGBUS:
      return "SIGBUS (bus error: a bad memory access)";
    case SIGFPE:
      return "SIGFPE (arithmetic exception, e.g. an integer division by zero)";
    case SIGILL:
      return "SIGILL (illegal instruction, e.g. code built for another CPU)";
    case SIGABRT:
      return "SIGABRT (abort: a failed assert, std::terminate or an uncaught exception)";
    case SIGKILL:
      return "SIGKILL (killed, e.g. by the kernel when memory ran out)";
    case SIGTERM:
      return "SIGTERM (terminated)";
    default:
      return fmt::format("signal {} ({})", signal, strsignal(signal));
  }
}

std::string ChildOutcome::failure() const {
  const std::string where = activity.empty() ? "" : " in " + activity;
  if (timed_out) return fmt::format("did not finish in {:g} s{}", timeout_s, where);
  if (signal != 0) return fmt::format("crashed with {}{}", signal_text(signal), where);
  if (!error.empty()) return error;
  return fmt::format("exited with status {} before reporting{} (a sanitizer's report or an exit() in the plugin?)",
                     exit_status, where);
}

void set_activity(const std::string& text) {
  if (g_activity == nullptr) return;
  const size_t n = std::min(text.size(), kActivityBytes - 1);
  std::memcpy(g_activity, text.data(), n);
  g_activity[n] = '\0';
}

ChildOutcome run_in_child(const std::function<std::string()>& work, double timeout_s) {
  void* page = ::mmap(nullptr, kActivityBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    throw std::runtime_error(fmt::format("cannot map a page for a child: {}", std::strerror(errno)));
  static_cast<char*>(page)[0] = '\0';
  int fds[2];
  if (::pipe(fds) != 0) {
    ::munmap(page, kActivityBytes);
    throw std::runtime_error(fmt::format("cannot make a pipe for a child: {}", std::strerror(errno)));
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    ::munmap(page, kActivityBytes);
    throw std::runtime_error(fmt::format("cannot start a child process: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    g_activity = static_cast<char*>(page);
    child_main(fds[1], work);
  }
  ::close(fds[1]);

  ChildOutcome outcome;
  outcome.timeout_s = timeout_s;
  std::string received;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buffer[65536];
  for (;;) {
    int wait_ms = -1;
    if (timeout_s > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      ::kill(pid, SIGKILL);
      outcome.timed_out = true;
      break;
    }
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of file: the child closed its end, finished or not
    received.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.activity = static_cast<const char*>(page);
  ::munmap(page, kActivityBytes);

  if (outcome.timed_out) return outcome;
  if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  } else if (!received.empty() && received[0] == '=') {
    outcome.finished = true;
    outcome.payload = received.substr(1);
  } else if (!received.empty() && received[0] == '!') {
    outcome.error = received.substr(1);
  } else {
    outcome.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return outcome;
}

}  // namespace attnbench
