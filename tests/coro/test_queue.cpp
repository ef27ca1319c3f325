#include "coro/queue.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "coro/task_handle.hpp"
#include "coro/semaphore.hpp"
#include "coro/lock.hpp"
#include "coro/event.hpp"
#include "coro/gather.hpp"
#include "coro/timeout.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/sync_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using test::ticks;

namespace {

Task<int> get_one(Queue<int>& q) { co_return co_await q.get(); }
Task<void> put_one(Queue<int>& q, int v) { co_await q.put(v); }
Task<std::string> get_str(Queue<std::string>& q) { co_return co_await q.get(); }
Task<void> put_str(Queue<std::string>& q, std::string v) { co_await q.put(std::move(v)); }

template <class Q>
Task<std::vector<int>> put_then_get_all(Q& q, std::vector<int> in) {
  for (int v : in) co_await q.put(v);
  std::vector<int> out;
  while (!q.empty()) out.push_back(co_await q.get());
  co_return out;
}

}  // namespace

TEST_CASE("qsize, empty, full and maxsize track puts and gets") {
  // asyncio test_empty, test_full, test_maxsize's accessor.
  Queue<int> unbounded;
  CHECK(unbounded.maxsize() == 0);
  CHECK(unbounded.empty());
  CHECK_FALSE(unbounded.full());
  for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
  CHECK_FALSE(unbounded.full());  // maxsize 0 is never full
  CHECK(unbounded.qsize() == 1000);

  Queue<int> q(2);
  CHECK(q.maxsize() == 2);
  q.put_nowait(1);
  CHECK_FALSE(q.empty());
  CHECK_FALSE(q.full());
  q.put_nowait(2);
  CHECK(q.full());
  CHECK(q.qsize() == 2);
  CHECK(q.get_nowait() == 1);
  CHECK_FALSE(q.full());
  CHECK(q.get_nowait() == 2);
  CHECK(q.empty());
}

TEST_CASE("Queue is FIFO, LifoQueue is LIFO, PriorityQueue returns the smallest first") {
  // asyncio's three test_order cases, plus a custom comparator.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> fifo;
      LifoQueue<int> lifo;
      PriorityQueue<int> prio;
      PriorityQueue<int, std::greater<int>> maxfirst;
      // (Named vectors: g++ 12 rejects a braced list as a co_await operand's argument.)
      const std::vector<int> in{1, 3, 2};
      const std::vector<int> in6{1, 3, 2, 5, 0, 4};
      const std::vector<int> fifo_out{1, 3, 2}, lifo_out{2, 3, 1}, prio_out{0, 1, 2, 3, 4, 5}, max_out{3, 2, 1};
      CHECK(co_await put_then_get_all(fifo, in) == fifo_out);
      CHECK(co_await put_then_get_all(lifo, in) == lifo_out);
      CHECK(co_await put_then_get_all(prio, in6) == prio_out);
      CHECK(co_await put_then_get_all(maxfirst, in) == max_out);

      PriorityQueue<std::pair<int, std::string>> jobs;
      jobs.put_nowait({2, "later"});
      jobs.put_nowait({1, "first"});
      jobs.put_nowait({3, "last"});
      CHECK(jobs.get_nowait().second == "first");
      CHECK(jobs.get_nowait().second == "later");
      CHECK(jobs.get_nowait().second == "last");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("put_nowait on a full queue raises QueueFull and get_nowait on an empty one raises QueueEmpty") {
  Queue<int> q(1);
  CHECK_THROWS_AS(q.get_nowait(), QueueEmpty);
  q.put_nowait(1);
  CHECK_THROWS_AS(q.put_nowait(2), QueueFull);
  CHECK(q.qsize() == 1);
  CHECK(q.get_nowait() == 1);
  CHECK_THROWS_AS(q.get_nowait(), QueueEmpty);
}

TEST_CASE("a putter waits while the queue is full and resumes when a get frees a slot") {
  // asyncio test_maxsize and test_blocking_put_wait.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q(2);
      std::vector<int> have_been_put;
      auto putter = [](Queue<int>& qq, std::vector<int>& put) -> Task<void> {
        for (int i = 0; i < 3; ++i) {
          co_await qq.put(i);
          put.push_back(i);
        }
      };
      auto t = create_task(putter(q, have_been_put));
      co_await ticks(2);
      CHECK(have_been_put == std::vector<int>{0, 1});
      CHECK(q.n_putters() == 1);
      CHECK(co_await q.get() == 0);
      co_await ticks();
      CHECK(have_been_put == std::vector<int>{0, 1, 2});
      CHECK(co_await q.get() == 1);
      CHECK(co_await q.get() == 2);
      CHECK(t.done());
      CHECK(q.n_putters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("waiting getters are served in the order they started waiting") {
  // asyncio test_put_with_waiting_getters and test_blocking_get_wait.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      std::vector<TaskHandle<int>> getters;
      for (int i = 0; i < 4; ++i) getters.push_back(create_task(get_one(q)));
      co_await ticks();
      CHECK(q.n_getters() == 4);
      for (int v = 10; v < 14; ++v) co_await q.put(v);
      CHECK(q.n_getters() == 0);
      CHECK(q.qsize() == 0);  // each item is promised to a woken getter
      for (int i = 0; i < 4; ++i) CHECK(co_await getters[i] == 10 + i);
      CHECK(q.empty());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a get cancelled after an item was promised to it does not lose the item") {
  // asyncio test_get_cancel_drop_one_pending_reader.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      auto reader = create_task(get_one(q));
      co_await ticks();
      q.put_nowait(1);  // promised to reader, which has not resumed yet
      q.put_nowait(2);
      CHECK(q.qsize() == 1);
      reader.cancel();
      CHECK(co_await test::ends_cancelled(reader));
      CHECK(q.qsize() == 2);  // 1 is back on offer, in front
      auto again = create_task(get_one(q));
      CHECK(co_await again == 1);  // if this were 2, item 1 would have been dropped
      CHECK(q.get_nowait() == 2);
      CHECK(q.empty());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("with several readers pending, cancelling one hands its item to the next reader") {
  // asyncio test_get_cancel_drop_many_pending_readers.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      auto r1 = create_task(get_one(q));
      auto r2 = create_task(get_one(q));
      auto r3 = create_task(get_one(q));
      co_await ticks();
      q.put_nowait(1);
      q.put_nowait(2);
      r1.cancel();
      CHECK(co_await test::ends_cancelled(r1));
      int a = co_await r2;
      int b = co_await r3;
      CHECK(std::min(a, b) == 1);
      CHECK(std::max(a, b) == 2);
      CHECK(q.empty());
      CHECK(q.n_getters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a getter cancelled while waiting leaves no trace; the next put goes to the next getter") {
  // asyncio test_get_cancelled_race and test_cancelled_getters_not_being_held_in_self_getters.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<std::string> q;
      auto t1 = create_task(get_str(q));
      auto t2 = create_task(get_str(q));
      co_await ticks();
      t1.cancel();
      CHECK(q.n_getters() == 1);
      co_await ticks();
      CHECK(t1.done());
      co_await q.put("a");
      CHECK(co_await t2 == "a");
      CHECK(q.empty());
      CHECK(q.n_getters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a putter cancelled after a slot was promised to it inserts nothing") {
  // asyncio test_put_cancel_drop and test_cancelled_put_silence_value_error_exception.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q(1);
      q.put_nowait(1);
      auto writer = create_task(put_one(q, 2));
      co_await ticks();
      CHECK(q.n_putters() == 1);
      CHECK(q.get_nowait() == 1);  // the freed slot is promised to writer
      CHECK(q.full());
      writer.cancel();
      CHECK(co_await test::ends_cancelled(writer));
      CHECK(q.qsize() == 0);  // 2 was not inserted
      CHECK_FALSE(q.full());
      co_await q.put(2);
      CHECK(q.get_nowait() == 2);
      CHECK(q.qsize() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a putter cancelled while waiting leaves the queue; the others insert in order") {
  // asyncio test_put_cancelled_race and test_cancelled_puts_not_being_held_in_self_putters.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<std::string> q(1);
      auto put_a = create_task(put_str(q, "a"));
      auto put_b = create_task(put_str(q, "b"));
      auto put_x = create_task(put_str(q, "X"));
      co_await ticks();
      CHECK(put_a.done());
      CHECK_FALSE(put_b.done());
      CHECK(q.n_putters() == 2);
      put_x.cancel();
      CHECK(q.n_putters() == 1);
      co_await ticks();
      CHECK(put_x.done());
      CHECK(q.get_nowait() == "a");
      co_await ticks();
      CHECK(q.get_nowait() == "b");
      co_await put_b;
      CHECK(q.empty());
      CHECK(q.n_putters() == 0);
      CHECK(co_await test::ends_cancelled(put_x));
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a bounded queue carries every item from producers to consumers in order") {
  // asyncio test_why_are_getters_waiting, test_why_are_putters_waiting and
  // test_get_with_waiting_putters.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q(1);
      std::vector<int> got;
      auto producer = [](Queue<int>& qq, int n) -> Task<void> {
        for (int i = 0; i < n; ++i) co_await qq.put(i);
      };
      auto consumer = [](Queue<int>& qq, std::vector<int>& g, int n) -> Task<void> {
        for (int i = 0; i < n; ++i) g.push_back(co_await qq.get());
      };
      auto p = create_task(producer(q, 50));
      auto c = create_task(consumer(q, got, 50));
      co_await p;
      co_await c;
      std::vector<int> expected(50);
      std::iota(expected.begin(), expected.end(), 0);
      CHECK(got == expected);

      // Four blocked putters on a queue of two, drained by one getter.
      Queue<int> q2(2);
      std::vector<TaskHandle<void>> putters;
      for (int v = 0; v < 4; ++v) putters.push_back(create_task(put_one(q2, v)));
      co_await ticks();
      CHECK(q2.n_putters() == 2);
      std::vector<int> drained;
      while (drained.size() < 4) {
        while (!q2.empty()) drained.push_back(q2.get_nowait());
        co_await ticks();
      }
      for (auto& t : putters) co_await t;
      CHECK(drained == std::vector<int>{0, 1, 2, 3});
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("task_done raises ValueError when called too often; join waits for every task_done") {
  // asyncio test_task_done_underflow, test_task_done, test_join_empty_queue.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      CHECK_THROWS_WITH_AS(q.task_done(), "Queue.task_done() called too many times", ValueError);
      co_await q.join();  // nothing unfinished: returns at once
      co_await q.join();

      for (int i = 0; i < 100; ++i) q.put_nowait(i);
      int sum = 0;
      bool running = true;
      auto worker = [](Queue<int>& qq, int& acc, bool& run) -> Task<void> {
        while (run) {
          int item = co_await qq.get();
          acc += item;
          co_await ticks();
          qq.task_done();
        }
      };
      auto w1 = create_task(worker(q, sum, running));
      auto w2 = create_task(worker(q, sum, running));
      co_await q.join();
      CHECK(sum == 4950);
      CHECK(q.empty());
      running = false;
      q.put_nowait(0);
      q.put_nowait(0);
      co_await w1;
      co_await w2;
      co_await q.join();
      CHECK_THROWS_AS(q.task_done(), ValueError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("join blocks while items are unfinished, and a cancelled join leaves the queue alone") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      q.put_nowait(1);
      auto joiner = [](Queue<int>& qq) -> Task<void> { co_await qq.join(); };
      auto j1 = create_task(joiner(q));
      auto j2 = create_task(joiner(q));
      co_await ticks(2);
      CHECK_FALSE(j1.done());
      j1.cancel();
      CHECK(co_await test::ends_cancelled(j1));
      CHECK(q.get_nowait() == 1);
      co_await ticks();
      CHECK_FALSE(j2.done());  // got, but not yet task_done
      q.task_done();
      co_await j2;
      CHECK_FALSE(j2.cancelled());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("shutdown of an empty queue fails waiting getters; later put and get raise QueueShutDown") {
  // asyncio test_shutdown_empty.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      auto getter = create_task(get_one(q));
      co_await ticks();
      q.shutdown();
      CHECK(q.qsize() == 0);
      co_await q.join();
      co_await ticks();
      CHECK(getter.done());
      CHECK_THROWS_AS(co_await getter, QueueShutDown);
      CHECK_THROWS_AS(co_await q.put(1), QueueShutDown);
      CHECK_THROWS_AS(q.put_nowait(1), QueueShutDown);
      CHECK_THROWS_AS(co_await q.get(), QueueShutDown);
      CHECK_THROWS_AS(q.get_nowait(), QueueShutDown);
      CHECK(q.n_getters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("shutdown of a non-empty queue fails waiting putters and lets gets drain the rest") {
  // asyncio test_shutdown_nonempty.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<std::string> q(1);
      q.put_nowait("data");
      auto joiner = [](Queue<std::string>& qq) -> Task<void> { co_await qq.join(); };
      auto join_task = create_task(joiner(q));
      auto put_task = create_task(put_str(q, "data2"));
      co_await ticks();
      CHECK_FALSE(put_task.done());

      q.shutdown();
      CHECK(q.qsize() == 1);
      co_await ticks();
      CHECK(put_task.done());
      CHECK_THROWS_AS(co_await put_task, QueueShutDown);

      CHECK(co_await q.get() == "data");
      co_await ticks();
      CHECK_FALSE(join_task.done());

      CHECK_THROWS_AS(co_await q.put("data"), QueueShutDown);
      CHECK_THROWS_AS(q.put_nowait("data"), QueueShutDown);
      CHECK_THROWS_AS(co_await q.get(), QueueShutDown);
      CHECK_THROWS_AS(q.get_nowait(), QueueShutDown);

      q.task_done();
      co_await ticks();
      CHECK(join_task.done());
      co_await join_task;
      CHECK_THROWS_AS(q.task_done(), ValueError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("immediate shutdown drops the items, counts them done and releases join") {
  // asyncio test_shutdown_immediate.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      LifoQueue<std::string> q;
      q.put_nowait("data");
      auto joiner = [](LifoQueue<std::string>& qq) -> Task<void> { co_await qq.join(); };
      auto join_task = create_task(joiner(q));
      co_await ticks();
      q.shutdown(true);
      CHECK(q.qsize() == 0);
      co_await ticks();
      CHECK(join_task.done());
      co_await join_task;
      CHECK_THROWS_AS(co_await q.put("data"), QueueShutDown);
      CHECK_THROWS_AS(q.put_nowait("data"), QueueShutDown);
      CHECK_THROWS_AS(co_await q.get(), QueueShutDown);
      CHECK_THROWS_AS(q.get_nowait(), QueueShutDown);
      CHECK_THROWS_AS(q.task_done(), ValueError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("immediate shutdown with an item still being processed keeps join waiting for its task_done") {
  // asyncio test_shutdown_immediate_with_unfinished.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      PriorityQueue<int> q;
      q.put_nowait(2);
      q.put_nowait(1);
      auto joiner = [](PriorityQueue<int>& qq) -> Task<void> { co_await qq.join(); };
      auto join_task = create_task(joiner(q));
      CHECK(co_await q.get() == 1);
      q.shutdown(true);  // unfinished: 2 -> 1
      CHECK(q.qsize() == 0);
      co_await ticks();
      CHECK_FALSE(join_task.done());
      CHECK_THROWS_AS(co_await q.get(), QueueShutDown);
      CHECK_THROWS_AS(q.put_nowait(3), QueueShutDown);
      q.task_done();
      CHECK_THROWS_AS(q.task_done(), ValueError);
      co_await ticks();
      CHECK(join_task.done());
      co_await join_task;
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("shutdown and woken getters: a normal shutdown still delivers a promised item, an immediate one does not") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      auto g1 = create_task(get_one(q));
      auto g2 = create_task(get_one(q));
      co_await ticks();
      q.put_nowait(7);  // promised to g1
      q.shutdown();     // g2 has nothing coming
      CHECK(co_await g1 == 7);
      CHECK_THROWS_AS(co_await g2, QueueShutDown);

      Queue<int> r;
      auto h = create_task(get_one(r));
      co_await ticks();
      r.put_nowait(8);    // promised to h
      r.shutdown(true);   // ...then dropped
      CHECK_THROWS_AS(co_await h, QueueShutDown);
      CHECK(r.qsize() == 0);
      co_await r.join();  // the dropped item counted as done
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("move-only items pass through put and get") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<std::unique_ptr<int>> q(1);
      co_await q.put(std::make_unique<int>(1));
      auto producer = [](Queue<std::unique_ptr<int>>& qq) -> Task<void> {
        co_await qq.put(std::make_unique<int>(2));  // waits for room
      };
      auto p = create_task(producer(q));
      co_await ticks();
      auto a = co_await q.get();
      auto b = co_await q.get();
      co_await p;
      CHECK(*a == 1);
      CHECK(*b == 2);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("random cancellations of producers and consumers neither lose nor duplicate an item") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q(3);
      std::vector<int> put_ok;
      std::vector<int> got;
      auto producer = [](Queue<int>& qq, std::vector<int>& ok, int base) -> Task<void> {
        for (int i = 0; i < 20; ++i) {
          co_await qq.put(base + i);
          ok.push_back(base + i);  // recorded before any later suspension point
        }
      };
      auto consumer = [](Queue<int>& qq, std::vector<int>& g, int pace) -> Task<void> {
        for (;;) {
          int v = co_await qq.get();
          g.push_back(v);
          co_await ticks(pace);
        }
      };
      std::vector<TaskHandle<void>> producers, consumers;
      for (int p = 0; p < 4; ++p) producers.push_back(create_task(producer(q, put_ok, p * 1000)));
      for (int c = 0; c < 4; ++c) consumers.push_back(create_task(consumer(q, got, 1 + c % 2)));
      // Cancel at many different moments: some waiting, some just woken.
      for (int round = 0; round < 6; ++round) {
        co_await ticks(1 + round % 3);
        if (round % 2 == 0) producers[round / 2].cancel();
        else consumers[round / 2].cancel();
        if (round == 3) consumers.push_back(create_task(consumer(q, got, 1)));
      }
      co_await producers[3];
      for (auto& p : producers) (void)co_await test::ends_cancelled(p);
      while (q.qsize() > 0 || q.n_putters() > 0) co_await ticks();
      for (auto& c : consumers) {
        c.cancel();
        (void)co_await test::ends_cancelled(c);
      }
      while (!q.empty()) got.push_back(q.get_nowait());

      std::sort(put_ok.begin(), put_ok.end());
      std::sort(got.begin(), got.end());
      CHECK(got == put_ok);  // every item put was got exactly once
      CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());
      CHECK(put_ok.size() > 20);
      CHECK(q.n_getters() == 0);
      CHECK(q.n_putters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with getters and putters waiting or just woken leaves the queue consistent") {
  // The frames die with the loop; their awaiters unlink themselves and give
  // back what was reserved for them.
  test::on_each_backend([](EventLoop& loop) {
    auto leave_waiters = [](Queue<int>& in, Queue<int>& out) -> Task<void> {
      (void)create_task(get_one(in));
      (void)create_task(get_one(in));
      out.put_nowait(0);
      (void)create_task(put_one(out, 5));
      (void)create_task(put_one(out, 6));
      co_await ticks();
      CHECK(out.get_nowait() == 0);  // the first putter is granted the slot...
      in.put_nowait(1);              // ...and the first getter the item; neither resumes
    };
    Queue<int> in;
    Queue<int> out(1);
    {
      EventLoop inner(test::options_for(loop.backend_kind()));
      inner.run_until_complete(leave_waiters(in, out));
      CHECK(in.qsize() == 0);
      CHECK(out.full());
    }
    CHECK(in.qsize() == 1);  // no longer promised to anyone
    CHECK(in.n_getters() == 0);
    CHECK_FALSE(out.full());
    CHECK(out.n_putters() == 0);
    CHECK(in.get_nowait() == 1);

    // And a queue that dies before the loop: its waiters must not touch it.
    auto owns_queue = []() -> Task<void> {
      Queue<int> q(1);
      (void)create_task(get_one(q));
      (void)create_task(get_one(q));
      co_await ticks();
      q.put_nowait(1);
    };
    loop.run_until_complete(owns_queue());
  });
}

// The sync primitives' awaiters are movable until awaited, so they go to
// wait_for, gather and create_task as asyncio's coroutines do:
// `await asyncio.wait_for(q.get(), 1)`.
TEST_CASE("Queue.get/put, Event.wait, Lock.acquire and Semaphore.acquire work under wait_for, gather and create_task") {
  using namespace std::chrono_literals;
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Queue<int> q;
      q.put_nowait(1);
      CHECK(co_await wait_for(q.get(), 1s) == 1);
      bool timed_out = false;
      try {
        (void)co_await wait_for(q.get(), 20ms);  // empty: no item is lost to the timeout
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      CHECK(timed_out);
      co_await wait_for(q.put(2), 1s);
      q.put_nowait(3);
      auto [first, second] = co_await gather(q.get(), q.get());
      CHECK(first == 2);
      CHECK(second == 3);
      TaskHandle<int> later = create_task(q.get());
      q.put_nowait(4);
      CHECK(co_await later == 4);

      Event ev;
      TaskHandle<void> waiter = create_task(ev.wait());
      ev.set();
      co_await wait_for(waiter, 1s);
      co_await wait_for(ev.wait(), 1s);

      Lock lock;
      co_await wait_for(lock.acquire(), 1s);
      CHECK(lock.locked());
      timed_out = false;
      try {
        co_await wait_for(lock.acquire(), 20ms);  // held: the timed-out waiter leaves no trace
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      CHECK(timed_out);
      lock.release();
      CHECK_FALSE(lock.locked());

      Semaphore sem(1);
      co_await wait_for(sem.acquire(), 1s);
      CHECK(sem.locked());
      sem.release();
    };
    test::run_bounded(loop, main());
  });
}
