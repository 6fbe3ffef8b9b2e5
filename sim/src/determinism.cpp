#include "memfuse/sim/determinism.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

extern char** environ;

namespace memfuse::sim {

Result<ProcessOutput> run_process(const std::vector<std::string>& argv) {
  if (argv.empty()) return fail(ErrorCode::InvalidArgument, false, "run_process: empty argv");
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    return fail(ErrorCode::Io, fmt::format("pipe: {}", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    return fail(ErrorCode::NotFound, false,
                fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  }
  ProcessOutput out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      out.output.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

Result<std::uint64_t> parse_trace_hash(std::string_view output) {
  constexpr std::string_view kKey = "trace_hash=0x";
  const std::size_t at = output.find(kKey);
  if (at == std::string_view::npos || output.size() < at + kKey.size() + 16) {
    return fail(ErrorCode::NotFound, false, "no trace_hash=0x<16 hex digits> in the output");
  }
  std::uint64_t value = 0;
  for (char c : output.substr(at + kKey.size(), 16)) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (d < 0) return fail(ErrorCode::InvalidArgument, false, "malformed trace_hash");
    value = value << 4 | static_cast<std::uint64_t>(d);
  }
  return value;
}

std::string DeterminismReport::to_string() const {
  return fmt::format("{}: first process {:#018x}, second process {:#018x}",
                     same() ? "deterministic" : "NONDETERMINISTIC", first, second);
}

Result<DeterminismReport> compare_across_processes(const std::vector<std::string>& argv) {
  DeterminismReport report;
  for (std::uint64_t* slot : {&report.first, &report.second}) {
    auto run = run_process(argv);
    if (!run) return Unexpected(run.error());
    if (run->exit_code != 0) {
      return fail(ErrorCode::Unavailable, false,
                  fmt::format("{} exited with {}:\n{}", argv[0], run->exit_code, run->output));
    }
    auto hash = parse_trace_hash(run->output);
    if (!hash) return Unexpected(hash.error());
    *slot = *hash;
  }
  return report;
}

}  // namespace memfuse::sim
