// Cross-thread entry into the loop: call_soon_threadsafe and its wake-up.
// Part of the "bridge" suite, which CI also runs under ThreadSanitizer.
#include "loop/event_loop.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

TEST_CASE("call_soon_threadsafe from 8 threads x 100,000 calls delivers each exactly once") {
  test::on_each_backend([](EventLoop& loop) {
    constexpr int kThreads = 8, kCalls = 100'000;
    std::vector<std::vector<int>> seen(kThreads);  // touched only on the loop thread
    std::atomic<int> done_threads{0};
    std::vector<std::thread> ths;
    for (int t = 0; t < kThreads; ++t) {
      ths.emplace_back([&, t] {
        for (int i = 0; i < kCalls; ++i) loop.call_soon_threadsafe([&seen, t, i] { seen[t].push_back(i); });
        if (done_threads.fetch_add(1) + 1 == kThreads) loop.call_soon_threadsafe([&] { loop.stop(); });
      });
    }
    loop.run_forever();
    for (auto& th : ths) th.join();
    for (int t = 0; t < kThreads; ++t) {
      REQUIRE(seen[t].size() == kCalls);
      // Each producer's calls arrive in its own order, none lost or repeated.
      bool in_order = true;
      for (int i = 0; i < kCalls; ++i) in_order = in_order && seen[t][i] == i;
      CHECK(in_order);
    }
  });
}

TEST_CASE("call_soon_threadsafe while the loop is busy costs no wake-up") {
  test::on_each_backend([](EventLoop& loop) {
    int ran = 0;
    loop.call_soon([&] {
      // The loop thread is busy here: calls from another thread only queue.
      std::thread producer([&] {
        for (int i = 0; i < 1000; ++i) loop.call_soon_threadsafe([&] { ++ran; });
        loop.call_soon_threadsafe([&] { loop.stop(); });
      });
      producer.join();
    });
    auto before = loop.wakeups();
    loop.run_forever();
    CHECK(ran == 1000);
    CHECK(loop.wakeups() - before == 0);
  });
}

TEST_CASE("a burst of call_soon_threadsafe while the loop sleeps costs at most one wake-up per sleep") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<bool> started{false};
    int ran = 0;
    std::thread producer([&] {
      while (!started.load()) std::this_thread::yield();
      std::this_thread::sleep_for(20ms);  // the loop is blocked in its wait by now
      for (int i = 0; i < 1000; ++i) loop.call_soon_threadsafe([&] { ++ran; });
      loop.call_soon_threadsafe([&] { loop.stop(); });
    });
    loop.call_soon([&] { started = true; });
    auto wakeups0 = loop.wakeups();
    auto sleeps0 = loop.sleeps();
    loop.run_forever();
    producer.join();
    auto wakeups = loop.wakeups() - wakeups0;
    auto sleeps = loop.sleeps() - sleeps0;
    MESSAGE("1001 calls: " << wakeups << " wake-up(s), loop slept " << sleeps << " time(s)");
    CHECK(ran == 1000);
    CHECK(wakeups >= 1);
    // The property: each sleep admits at most one wake-up, however many calls
    // arrive during it. How many sleeps the burst spans depends on how fast the
    // producer runs against the loop (under ThreadSanitizer the loop drains
    // faster than the producer enqueues, and sleeps ~150 times), so the
    // absolute count is reported, not asserted. The busy-loop case above shows
    // the batching deterministically: zero wake-ups for 1,001 calls.
    CHECK(wakeups <= sleeps);
  });
}

TEST_CASE("a timer fires on time while a call_soon_threadsafe storm is in progress") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<bool> stop_storm{false};
    std::atomic<long> delivered{0};
    // On the loop's thread only: the most storm calls run in one iteration.
    std::uint64_t iteration = ~std::uint64_t{0};
    long in_iteration = 0, most_in_iteration = 0;
    std::vector<std::thread> storm;
    // A producer as fast as it can go, keeping up to 100,000 calls queued
    // (bounded so that memory stays bounded when it outruns the loop). One
    // producer thread: with two, three busy threads share the two cores here
    // and the measure becomes the kernel's time slice, not the loop.
    for (int t = 0; t < 1; ++t) {
      storm.emplace_back([&] {
        long sent = 0;
        while (!stop_storm.load(std::memory_order_relaxed)) {
          loop.call_soon_threadsafe([&] {
            delivered.fetch_add(1, std::memory_order_relaxed);
            if (loop.iterations() != iteration) {
              iteration = loop.iterations();
              in_iteration = 0;
            }
            most_in_iteration = std::max(most_in_iteration, ++in_iteration);
          });
          if (++sent % 1024 == 0) {
            while (sent - delivered.load(std::memory_order_relaxed) > 100'000 &&
                   !stop_storm.load(std::memory_order_relaxed)) {
              std::this_thread::yield();
            }
          }
        }
      });
    }
    std::vector<Duration> lateness;
    TimePoint start = Clock::now();
    for (int i = 1; i <= 20; ++i) {
      TimePoint due = start + i * 10ms;
      loop.call_at(due, [&lateness, due] { lateness.push_back(Clock::now() - due); });
    }
    loop.call_at(start + 220ms, [&] { loop.stop(); });
    loop.run_forever();
    stop_storm = true;
    for (auto& th : storm) th.join();
    // Drain what the storm left so the callbacks are freed.
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(lateness.size() == 20);
    std::sort(lateness.begin(), lateness.end());
    MESSAGE("storm delivered " << delivered.load() << " calls; median timer lateness "
                               << std::chrono::duration_cast<std::chrono::microseconds>(lateness[10]).count()
                               << " us, max "
                               << std::chrono::duration_cast<std::chrono::microseconds>(lateness.back()).count()
                               << " us; at most " << most_in_iteration << " calls in one iteration");
    CHECK(delivered.load() > 1000);
    // What keeps timers on time: each iteration runs a bounded batch of
    // cross-thread calls (EventLoop::kThreadsafeBatch), then its timers,
    // however fast the producer refills the queue. This holds on any machine.
    CHECK(most_in_iteration <= 1024);
    // And the timers did fire during the storm, not after it. Starved ones
    // would all fire at its end (220 ms): lateness from 20 to 210 ms, median
    // about 110 ms. The bounds stay well clear of both that and the kernel's
    // scheduling on a loaded 2-core machine (medians of 4-17 ms seen with two
    // busy loops on the test's core, more under ThreadSanitizer). Lateness
    // itself is measured in bench/ (threadsafe, timer_under_load).
    CHECK(lateness[10] < 60ms);
    CHECK(lateness.back() < 150ms);
  });
}

