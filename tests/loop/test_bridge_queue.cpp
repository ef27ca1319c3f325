// BridgeQueue: threads and tasks on either end, close(), timeouts and
// cancellation safety. Suite "bridge" (also TSan).
#include "loop/bridge_queue.hpp"

#include <doctest/doctest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "tests/loop/tsan_suppressions.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif

// The full million in normal and ASan builds; a tenth under TSan, whose
// instrumented mutexes make each item tens of times slower.
constexpr int kItems = kTsan ? 100'000 : 1'000'000;

using Item = std::uint64_t;  // producer << 32 | sequence
Item make_item(int producer, int seq) { return (static_cast<Item>(producer) << 32) | static_cast<std::uint32_t>(seq); }

struct Collected {
  std::vector<std::vector<Item>> per_consumer;
};

Task<void> consumer(BridgeQueue<Item>& q, std::vector<Item>& out) {
  for (;;) {
    Item x;
    try {
      x = co_await q.async_get();
    } catch (const QueueClosed&) {
      co_return;
    }
    out.push_back(x);
  }
}

Task<void> consume_all(BridgeQueue<Item>& q, Collected& c, std::atomic<int>& producers_done, int producers) {
  std::vector<TaskHandle<void>> hs;
  for (auto& v : c.per_consumer) hs.push_back(create_task(consumer(q, v)));
  while (producers_done.load() < producers) co_await sleep(1ms);
  q.close();  // the consumers drain what is left, then see QueueClosed
  for (auto& h : hs) co_await h;
}

// Every item exactly once; each producer's items in order within each consumer.
void check_exactly_once(const std::vector<std::vector<Item>>& parts, int producers, int per_producer) {
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(producers) * per_producer, 0);
  bool in_order = true, in_range = true;
  std::size_t total = 0;
  for (const auto& part : parts) {
    std::vector<long> last(producers, -1);
    for (Item x : part) {
      int p = static_cast<int>(x >> 32);
      long s = static_cast<long>(x & 0xffffffffu);
      if (p >= producers || s >= per_producer) {
        in_range = false;
        continue;
      }
      in_order = in_order && s > last[p];
      last[p] = s;
      ++seen[static_cast<std::size_t>(p) * per_producer + s];
      ++total;
    }
  }
  CHECK(in_range);
  CHECK(in_order);
  CHECK(total == seen.size());
  std::size_t once = 0;
  for (auto v : seen) once += v == 1;
  CHECK(once == seen.size());
}

}  // namespace

TEST_CASE("4 producer threads and 4 consumer tasks move every item exactly once") {
  test::on_each_backend([](EventLoop& loop) {
    constexpr int kProducers = 4, kConsumers = 4;
    const int per = kItems / kProducers;
    BridgeQueue<Item> q(1024);
    Collected c;
    c.per_consumer.resize(kConsumers);
    for (auto& v : c.per_consumer) v.reserve(kItems / 2);
    std::atomic<int> done{0};
    std::vector<std::thread> producers;
    TimePoint t0 = Clock::now();
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < per; ++i) q.put(make_item(p, i));
        ++done;
      });
    }
    loop.run_until_complete(consume_all(q, c, done, kProducers));
    for (auto& th : producers) th.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    MESSAGE(kItems << " items thread->task in " << secs << " s, " << loop.wakeups() << " loop wake-ups");
    check_exactly_once(c.per_consumer, kProducers, per);
  });
}

namespace {

Task<void> produce(BridgeQueue<Item>& q, int p, int n) {
  for (int i = 0; i < n; ++i) co_await q.async_put(make_item(p, i));
}

Task<void> produce_all(BridgeQueue<Item>& q, int producers, int per) {
  std::vector<TaskHandle<void>> hs;
  for (int p = 0; p < producers; ++p) hs.push_back(create_task(produce(q, p, per)));
  for (auto& h : hs) co_await h;
  q.close();
}

}  // namespace

TEST_CASE("4 producer tasks and 4 consumer threads move every item exactly once") {
  test::on_each_backend([](EventLoop& loop) {
    constexpr int kProducers = 4, kConsumers = 4;
    const int per = kItems / 5 / kProducers;
    BridgeQueue<Item> q(256);
    std::vector<std::vector<Item>> parts(kConsumers);
    std::vector<std::thread> consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.emplace_back([&q, &part = parts[c]] {
        try {
          for (;;) part.push_back(q.get());
        } catch (const QueueClosed&) {
        }
      });
    }
    loop.run_until_complete(produce_all(q, kProducers, per));
    for (auto& th : consumers) th.join();
    check_exactly_once(parts, kProducers, per);
  });
}

namespace {

Task<void> closed_wakes_tasks(BridgeQueue<int>& empty_q, BridgeQueue<int>& full_q, int& outcomes) {
  auto getter = create_task(
      [](BridgeQueue<int>& q) -> Task<void> {
        CHECK_THROWS_AS(co_await q.async_get(), QueueClosed);
      }(empty_q),
      "getter");
  auto putter = create_task(
      [](BridgeQueue<int>& q) -> Task<void> {
        CHECK_THROWS_AS(co_await q.async_put(2), QueueClosed);
      }(full_q),
      "putter");
  co_await sleep(20ms);  // both are waiting (and the threads too)
  CHECK_FALSE(getter.done());
  CHECK_FALSE(putter.done());
  empty_q.close();
  full_q.close();
  co_await getter;
  co_await putter;
  outcomes += 2;
}

}  // namespace

TEST_CASE("close() wakes blocked threads and waiting tasks on both sides") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> empty_q(4);
    BridgeQueue<int> full_q(1);
    full_q.put(1);
    std::atomic<int> thread_outcomes{0};
    std::thread tg([&] {
      try {
        empty_q.get();
      } catch (const QueueClosed&) {
        ++thread_outcomes;
      }
    });
    std::thread tp([&] {
      try {
        full_q.put(2);
      } catch (const QueueClosed&) {
        ++thread_outcomes;
      }
    });
    int task_outcomes = 0;
    loop.run_until_complete(closed_wakes_tasks(empty_q, full_q, task_outcomes));
    tg.join();
    tp.join();
    CHECK(thread_outcomes.load() == 2);
    CHECK(task_outcomes == 2);
    // The item already in full_q is still drained after close; then QueueClosed.
    CHECK(full_q.get() == 1);
    CHECK_THROWS_AS(full_q.get(), QueueClosed);
    CHECK_THROWS_AS(full_q.try_get(), QueueClosed);
    CHECK_THROWS_AS(full_q.put(3), QueueClosed);
    CHECK(full_q.closed());
  });
}

namespace {

Task<void> drain_after_close(BridgeQueue<int>& q, std::vector<int>& got) {
  for (;;) {
    try {
      got.push_back(co_await q.async_get());
    } catch (const QueueClosed&) {
      co_return;
    }
  }
}

}  // namespace

TEST_CASE("after close() getters drain the remaining items, then see QueueClosed") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> q(10);
    for (int i = 0; i < 5; ++i) q.put(i);
    q.close();
    std::vector<int> got;
    loop.run_until_complete(drain_after_close(q, got));
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
  });
}

TEST_CASE("timed get and put return empty-handed without losing or moving anything") {
  BridgeQueue<std::unique_ptr<int>> q(1);
  TimePoint t0 = Clock::now();
  CHECK_FALSE(q.get(20ms).has_value());
  CHECK(Clock::now() - t0 >= 20ms);
  CHECK(q.put(std::make_unique<int>(1), 10ms));
  auto second = std::make_unique<int>(2);
  CHECK_FALSE(q.put(std::move(second), 20ms));
  REQUIRE(second);  // a refused put leaves the item with the caller
  CHECK(*second == 2);
  CHECK_FALSE(q.try_put(std::move(second)));
  REQUIRE(second);
  auto first = q.get(10ms);
  REQUIRE(first);
  CHECK(**first == 1);
  CHECK(q.try_put(std::move(second)));
  CHECK_FALSE(second);
  CHECK(q.full());
  CHECK(q.qsize() == 1);
  CHECK(**q.try_get() == 2);
  CHECK_FALSE(q.try_get().has_value());
}

TEST_CASE("a blocked thread is served by another thread in FIFO order, without busy waiting") {
  BridgeQueue<int> q(2);
  std::atomic<long> cpu_ns{-1};
  std::thread consumer([&] {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    int v = q.get();  // blocks ~100 ms
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    CHECK(v == 7);
    cpu_ns = (b.tv_sec - a.tv_sec) * 1'000'000'000L + (b.tv_nsec - a.tv_nsec);
  });
  std::this_thread::sleep_for(100ms);
  q.put(7);
  consumer.join();
  MESSAGE("a thread blocked 100 ms in get() used " << cpu_ns.load() / 1000 << " us of CPU");
  CHECK(cpu_ns.load() >= 0);
  CHECK(cpu_ns.load() < 20'000'000);
}

namespace {

struct CancelCase {
  std::optional<int> got;
  bool cancelled = false;
};

Task<void> get_one(BridgeQueue<int>& q, CancelCase& c) {
  try {
    c.got = co_await q.async_get();
  } catch (const CancelledError&) {
    c.cancelled = true;
    throw;
  }
}

// The item is handed to the waiting getter while the loop is blocked; the
// cancel arrives before the getter runs: the getter must give it back.
Task<void> cancel_after_handoff(BridgeQueue<int>& q, CancelCase& c) {
  auto t = create_task(get_one(q, c), "getter");
  co_await sleep(5ms);  // the getter is waiting
  std::thread producer([&q] { q.put(42); });
  producer.join();  // handed off (the loop is blocked here: the wake-up is queued)
  CHECK(q.qsize() == 0);
  t.cancel();
  try {
    co_await t;
  } catch (const CancelledError&) {
  }
  CHECK(t.cancelled());
}

Task<void> cancel_waiting_getter(BridgeQueue<int>& q, bool& cancelled) {
  auto t = create_task(
      [](BridgeQueue<int>& qq) -> Task<int> { co_return co_await qq.async_get(); }(q), "getter");
  co_await sleep(5ms);
  t.cancel();
  try {
    co_await t;
  } catch (const CancelledError&) {
    cancelled = true;
  }
}

Task<void> cancel_waiting_putter(BridgeQueue<std::unique_ptr<int>>& q, std::unique_ptr<int>& item, bool& cancelled) {
  auto t = create_task(
      [](BridgeQueue<std::unique_ptr<int>>& qq, std::unique_ptr<int>& it) -> Task<void> {
        co_await qq.async_put(std::move(it));
      }(q, item),
      "putter");
  co_await sleep(5ms);
  t.cancel();
  try {
    co_await t;
  } catch (const CancelledError&) {
    cancelled = true;
  }
}

}  // namespace

TEST_CASE("a getter cancelled after an item was handed to it gives the item back to the queue") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> q(4);
    CancelCase c;
    loop.run_until_complete(cancel_after_handoff(q, c));
    CHECK(c.cancelled);
    CHECK_FALSE(c.got.has_value());
    REQUIRE(q.qsize() == 1);
    CHECK(*q.try_get() == 42);
  });
}

TEST_CASE("a cancelled waiting getter takes nothing; a cancelled putter enqueues nothing and keeps its item") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> q(4);
    bool cancelled = false;
    loop.run_until_complete(cancel_waiting_getter(q, cancelled));
    CHECK(cancelled);
    q.put(5);  // nobody waits any more: it stays queued
    CHECK(q.qsize() == 1);

    BridgeQueue<std::unique_ptr<int>> full(1);
    full.put(std::make_unique<int>(1));
    auto item = std::make_unique<int>(2);
    bool put_cancelled = false;
    loop.run_until_complete(cancel_waiting_putter(full, item, put_cancelled));
    CHECK(put_cancelled);
    REQUIRE(item);
    CHECK(*item == 2);
    CHECK(full.qsize() == 1);
    CHECK(**full.try_get() == 1);
    CHECK_FALSE(full.try_get().has_value());
  });
}

namespace {

// Getters are cancelled at random while a thread produces: every item is
// either received by a getter or still in the queue at the end. Each getter
// counts its item itself, right away (a task that returns while a cancel is
// pending is reported cancelled and its return value dropped, as in asyncio).
Task<void> counting_getter(BridgeQueue<int>& q, long& received) { received += co_await q.async_get(); }

Task<void> churn(BridgeQueue<int>& q, long& received, std::atomic<bool>& producer_done) {
  std::vector<TaskHandle<void>> getters;
  unsigned seed = 12345;
  int rounds = 0;
  auto settle = [](std::vector<TaskHandle<void>>& gs) -> Task<void> {
    for (auto& g : gs) {
      if (!g.done()) g.cancel();
      try {
        co_await g;
      } catch (const CancelledError&) {
      }
    }
    gs.clear();
  };
  while (!producer_done.load() && rounds < 200'000) {
    ++rounds;
    getters.push_back(create_task(counting_getter(q, received)));
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 16) % 3 == 0) getters.back().cancel();
    if (getters.size() >= 8) co_await settle(getters);
    co_await sleep(0ms);
  }
  co_await settle(getters);
}

}  // namespace

TEST_CASE("getters cancelled at random while a thread produces lose no item") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> q(0);  // unbounded: the producer never waits
    constexpr int kN = kTsan ? 5'000 : 20'000;
    std::atomic<bool> done{false};
    std::thread producer([&] {
      for (int i = 1; i <= kN; ++i) {
        q.put(1);
        if (i % 16 == 0) std::this_thread::sleep_for(50us);  // keep getters busy for a while
      }
      done = true;
    });
    long received = 0;
    loop.run_until_complete(churn(q, received, done));
    producer.join();
    long left = 0;
    while (auto x = q.try_get()) left += *x;
    MESSAGE("received by getters " << received << ", left in the queue " << left);
    CHECK(received + left == kN);
  });
}

namespace {

Task<void> fifo_tasks(BridgeQueue<int>& q, std::vector<int>& order) {
  std::vector<TaskHandle<void>> hs;
  for (int i = 0; i < 3; ++i) {
    hs.push_back(create_task(
        [](BridgeQueue<int>& qq, std::vector<int>& o, int id) -> Task<void> {
          int v = co_await qq.async_get();
          o.push_back(id * 10 + v);
        }(q, order, i)));
    co_await sleep(1ms);  // arrival order 0, 1, 2
  }
  std::thread producer([&q] {
    for (int v = 0; v < 3; ++v) q.put(v);
  });
  for (auto& h : hs) co_await h;
  producer.join();
}

Task<void> blocking_on_loop_throws(BridgeQueue<int>& q) {
  CHECK_THROWS_AS(q.get(), InvalidStateError);
  CHECK_THROWS_AS(q.put(1), InvalidStateError);
  CHECK(q.try_put(1));  // non-blocking calls are fine on the loop
  CHECK(co_await q.async_get() == 1);
}

}  // namespace

TEST_CASE("waiting tasks are served in arrival order; blocking calls are refused on the loop thread") {
  test::on_each_backend([](EventLoop& loop) {
    BridgeQueue<int> q(4);
    std::vector<int> order;
    loop.run_until_complete(fifo_tasks(q, order));
    CHECK(order == std::vector<int>{0, 11, 22});
    loop.run_until_complete(blocking_on_loop_throws(q));
  });
}
