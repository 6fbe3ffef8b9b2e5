// Trace: what the simulator did, in order, with a running 64-bit hash.
//
// Every scheduling decision (which ready handler ran), every timer firing,
// every clock advance and every labelled application or fault event is
// recorded. The hash is updated on every event from deterministic fields only
// (kind, virtual time, sequence numbers, chain, labels' text; never an
// address), so two runs of one seed agree on it bit for bit, in one process or
// two. Recording is bounded (the last `bound` events), full, or hash-only.
//
// Export: Chrome Trace Event JSON (opens in Perfetto and chrome://tracing).
// Virtual time is the timestamp; each chain (a logical thread of handlers:
// see SimContext) or named track is a thread; faults are instant events.
//
// Thread-safety: none; the simulator is single-threaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/error.h"
#include "memfuse/time.h"

namespace memfuse::sim {

enum class EventKind : std::uint8_t {
  Run,            // a ready handler was chosen and ran; `value` = ready count, `seq` = handler
  TimerFire,      // a timer's deadline came; `seq` = timer
  TimerCancel,    // a pending timer was cancelled
  ClockAdvance,   // nothing was ready; the clock jumped to the next timer
  BlockingStart,  // blocking work submitted; `value` = modelled latency (ns) or -1 for a hang
  BlockingDone,   // blocking work completed; `value` = 0 ok, 1 cancelled
  App,            // a labelled application event
  Fault,          // an injected fault
};

[[nodiscard]] std::string_view to_string(EventKind kind) noexcept;

struct TraceEvent {
  std::int64_t time_ns = 0;  // virtual time
  std::uint64_t seq = 0;     // the handler's, timer's or operation's sequence number
  std::uint32_t track = 0;   // chain or named track
  EventKind kind = EventKind::Run;
  std::int64_t value = 0;
  std::string label;  // App and Fault events, blocking work kind; empty for Run
};

class Trace {
 public:
  enum class Mode : std::uint8_t { HashOnly, Bounded, Full };

  explicit Trace(Mode mode = Mode::Bounded, std::size_t bound = 4096);

  // Hot path: no allocation, no label (Run, TimerFire, TimerCancel, ClockAdvance).
  void record(EventKind kind, TimePoint t, std::uint64_t seq, std::uint32_t track,
              std::int64_t value) noexcept {
    account(kind, t, seq, track, value);
    if (mode_ != Mode::HashOnly) {
      store(TraceEvent{t.time_since_epoch().count(), seq, track, kind, value, {}});
    }
  }
  // With a label (App, Fault, Blocking*): the label's text enters the hash.
  void record(EventKind kind, TimePoint t, std::uint64_t seq, std::uint32_t track,
              std::int64_t value, std::string_view label);

  [[nodiscard]] std::uint64_t hash() const noexcept { return hash_; }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] Mode mode() const noexcept { return mode_; }

  // The recorded events, oldest first (the last `bound` in Bounded mode).
  [[nodiscard]] std::vector<TraceEvent> events() const;

  // Names a track in the export (e.g. "flush-worker-1"); unnamed tracks are "chain N".
  void name_track(std::uint32_t track, std::string name);

  [[nodiscard]] std::string to_chrome_json() const;
  [[nodiscard]] Result<void> write_chrome_json(const std::filesystem::path& path) const;

 private:
  // One multiply-xorshift round per word (the finaliser of MurmurHash3, keyed
  // by the running state): cheap, order-sensitive, and address-free.
  void mix(std::uint64_t v) noexcept {
    std::uint64_t h = hash_ ^ (v + 0x9e3779b97f4a7c15ull + (hash_ << 6) + (hash_ >> 2));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    hash_ = h;
  }
  // Every field enters the hash: two words, each field multiplied by an odd
  // constant before folding so that no two fields cancel.
  void account(EventKind kind, TimePoint t, std::uint64_t seq, std::uint32_t track,
               std::int64_t value) noexcept {
    ++count_;
    mix(static_cast<std::uint64_t>(t.time_since_epoch().count()) ^ (seq * 0x9e3779b97f4a7c15ull));
    mix((static_cast<std::uint64_t>(kind) << 32 | track) ^
        (static_cast<std::uint64_t>(value) * 0xc2b2ae3d27d4eb4full));
  }
  void store(TraceEvent&& event) {
    if (mode_ == Mode::Bounded && ring_.size() == bound_) {
      ring_[(count_ - 1) % bound_] = std::move(event);
    } else if (mode_ != Mode::HashOnly) {
      ring_.push_back(std::move(event));
    }
  }

  Mode mode_;
  std::size_t bound_;
  std::uint64_t hash_ = 0x6a09e667f3bcc908ull;
  std::uint64_t count_ = 0;
  std::vector<TraceEvent> ring_;  // Bounded: circular, next write at count_ % bound_
  std::map<std::uint32_t, std::string> track_names_;
};

}  // namespace memfuse::sim
