// memfuse_config_check [FILE]: validates a configuration and prints the
// effective configuration (every key, defaults filled in, secrets redacted).
// With no FILE it prints the defaults. Exit codes: 0 valid, 1 invalid, 2 usage.
#include <cstdio>
#include <string>

#include "memfuse/config.h"

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help"))) {
    std::fprintf(stderr, "usage: %s [config.json]\n", argv[0]);
    return 2;
  }
  auto config = argc == 2 ? memfuse::Config::from_file(argv[1]) : memfuse::Config::from_json("{}");
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().to_string().c_str());
    return 1;
  }
  std::printf("%s\n", config->to_redacted_json().c_str());
  return 0;
}
