// FUZZ_CHECK: a property a fuzz target asserts. A failure prints what broke
// and aborts, which libFuzzer reports as a crash with the input saved.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s)\n", #cond, what);        \
      std::abort();                                                             \
    }                                                                           \
  } while (false)
