// Properties of the simulator itself, over generated workloads.
//
// A workload is a random program of top-level operations (plain posts, strand
// posts, timers, blocking calls), each of which may spawn children. Running it
// records the order handlers ran in. The properties: one seed always gives the
// same order and trace hash; under random and pct, different seeds explore
// different orders; strand order and the virtual clock's monotonicity hold in
// every run.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <set>
#include <vector>

#include "memfuse/sim/sim_runtime.h"

namespace memfuse::sim {
namespace {

namespace asio = boost::asio;

}  // namespace

// How RapidCheck prints a Strategy in a counterexample (found by ADL).
inline void showValue(Strategy s, std::ostream& os) { os << to_string(s); }

namespace {

struct Op {
  int kind = 0;       // 0 post, 1 strand post, 2 timer, 3 blocking
  int delay_us = 0;   // timers and blocking calls
  int children = 0;   // handlers each one posts when it runs
};

struct Observed {
  std::vector<int> order;
  std::uint64_t hash = 0;
  bool strand_fifo = true;
  bool clock_monotonic = true;
  bool quiescent = false;
};

Observed run(const std::vector<Op>& program, Strategy strategy, std::uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.strategy = strategy;
  o.pct_depth = 3;
  o.pct_steps = 200;
  o.trace_mode = Trace::Mode::HashOnly;
  SimRuntime rt(o);
  rt.set_blocking_model([](std::string_view, Random& r) {
    return BlockingPlan{std::chrono::microseconds(r.uniform(50))};
  });
  Observed out;
  auto strand = asio::make_strand(rt.executor().get());
  int last_strand = -1;
  TimePoint last_time = rt.now();
  std::vector<std::unique_ptr<Timer>> timers;
  auto note = [&](int id) {
    out.order.push_back(id);
    out.clock_monotonic = out.clock_monotonic && rt.now() >= last_time;
    last_time = rt.now();
  };
  for (std::size_t i = 0; i < program.size(); ++i) {
    const Op& op = program[i];
    const int id = static_cast<int>(i) * 100;
    auto body = [&, id, children = op.children] {
      note(id);
      for (int c = 1; c <= children; ++c) {
        asio::post(rt.executor().get(), [&, id, c] { note(id + c); });
      }
    };
    switch (op.kind) {
      case 0:
        asio::post(rt.executor().get(), body);
        break;
      case 1:
        asio::post(strand, [&, body, id] {
          out.strand_fifo = out.strand_fifo && id > last_strand;
          last_strand = id;
          body();
        });
        break;
      case 2:
        timers.push_back(rt.make_timer(rt.executor()));
        timers.back()->async_wait_until(rt.now() + std::chrono::microseconds(op.delay_us),
                                        [body](std::error_code) { body(); });
        break;
      default:
        rt.blocking().submit("prop.blocking", rt.executor(), [](const CancelToken&) {},
                             [body](std::error_code) { body(); });
        break;
    }
  }
  out.quiescent = rt.run_until_quiescent(100'000).quiescent;
  out.hash = rt.trace().hash();
  return out;
}

}  // namespace
}  // namespace memfuse::sim

namespace rc {
template <>
struct Arbitrary<memfuse::sim::Strategy> {
  static Gen<memfuse::sim::Strategy> arbitrary() {
    using memfuse::sim::Strategy;
    return gen::element(Strategy::Fifo, Strategy::Random, Strategy::Pct);
  }
};
}  // namespace rc

namespace memfuse::sim {
namespace {

void showValue(const Op& op, std::ostream& os) {
  static constexpr const char* kKinds[] = {"post", "strand", "timer", "blocking"};
  os << "{" << kKinds[op.kind] << " delay=" << op.delay_us << "us children=" << op.children << "}";
}

rc::Gen<Op> gen_op() {
  return rc::gen::build<Op>(rc::gen::set(&Op::kind, rc::gen::inRange(0, 4)),
                            rc::gen::set(&Op::delay_us, rc::gen::inRange(0, 1000)),
                            rc::gen::set(&Op::children, rc::gen::inRange(0, 3)));
}

rc::Gen<Strategy> gen_strategy() { return rc::gen::arbitrary<Strategy>(); }

RC_GTEST_PROP(SimProperties, TheSameSeedGivesTheSameOrderAndTraceHash, ()) {
  const auto program = *rc::gen::resize(30, rc::gen::container<std::vector<Op>>(gen_op()));
  const auto strategy = *gen_strategy();
  const auto seed = *rc::gen::arbitrary<std::uint64_t>();
  const Observed a = run(program, strategy, seed);
  const Observed b = run(program, strategy, seed);
  RC_ASSERT(a.quiescent);
  RC_ASSERT(a.order == b.order);
  RC_ASSERT(a.hash == b.hash);
}

RC_GTEST_PROP(SimProperties, StrandFifoAndClockMonotonicityHoldInEveryRun, ()) {
  const auto program = *rc::gen::container<std::vector<Op>>(gen_op());
  const Observed o = run(program, *gen_strategy(), *rc::gen::arbitrary<std::uint64_t>());
  RC_ASSERT(o.quiescent);
  RC_ASSERT(o.strand_fifo);
  RC_ASSERT(o.clock_monotonic);
  std::size_t expected = 0;
  for (const Op& op : program) expected += 1 + static_cast<std::size_t>(op.children);
  RC_ASSERT(o.order.size() == expected);
}

RC_GTEST_PROP(SimProperties, DifferentSeedsExploreDifferentOrdersUnderRandomAndPct, ()) {
  // At least four independent top-level posts: there is something to reorder.
  auto program = *rc::gen::container<std::vector<Op>>(gen_op());
  for (int i = 0; i < 4; ++i) program.push_back(Op{0, 0, 1});
  const auto strategy = *rc::gen::element(Strategy::Random, Strategy::Pct);
  const auto base = *rc::gen::arbitrary<std::uint64_t>();
  std::set<std::vector<int>> orders;
  std::set<std::uint64_t> hashes;
  for (std::uint64_t s = 0; s < 16; ++s) {
    const Observed o = run(program, strategy, base + s);
    orders.insert(o.order);
    hashes.insert(o.hash);
  }
  RC_ASSERT(orders.size() >= 2u);
  RC_ASSERT(hashes.size() >= 2u);
}

}  // namespace
}  // namespace memfuse::sim
