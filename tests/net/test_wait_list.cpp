#include "net/wait_list.hpp"

#include <doctest/doctest.h>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {
struct Shared {
  detail::ParkList list;
  int woken = 0;
  bool flag = false;
};

Task<void> wait_for_flag(Shared& s) {
  while (!s.flag) co_await s.list.wait("test flag");
  ++s.woken;
}
}  // namespace

TEST_CASE("wake_all wakes every waiter, which re-checks its condition") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Shared s;
      auto a = create_task(wait_for_flag(s));
      auto b = create_task(wait_for_flag(s));
      co_await sleep(1ms);
      CHECK_FALSE(s.list.empty());
      s.list.wake_all();  // spurious: the flag is still false, both wait again
      co_await sleep(1ms);
      CHECK(s.woken == 0);
      CHECK_FALSE(s.list.empty());
      s.flag = true;
      s.list.wake_all();
      co_await a;
      co_await b;
      CHECK(s.woken == 2);
      CHECK(s.list.empty());
      // A ready waiter does not suspend.
      co_await s.list.wait("ready", true);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a cancelled waiter leaves the list at once, and a cancel after the wake-up is still delivered") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Shared s;
      auto a = create_task(wait_for_flag(s));
      co_await sleep(1ms);
      a.cancel("stop");
      CHECK(s.list.empty());
      bool cancelled = false;
      try {
        co_await a;
      } catch (const CancelledError& e) {
        cancelled = std::string(e.what()) == "stop";
      }
      CHECK(cancelled);

      auto b = create_task(wait_for_flag(s));
      co_await sleep(1ms);
      s.flag = true;
      s.list.wake_all();
      b.cancel();  // woken but not yet run: delivered by the waiter
      CHECK_THROWS_AS(co_await b, CancelledError);
      CHECK(s.woken == 0);
    };
    test::run_bounded(loop, main());
  });
}

namespace {
struct Node : detail::WaitNode {
  explicit Node(int v) : value(v) {}
  int value;
};

std::string order(detail::WaitList<Node>& l) {
  // Drains the list: its FIFO order as text.
  std::string out;
  while (Node* n = l.pop_front()) out += std::to_string(n->value);
  return out;
}
}  // namespace

TEST_CASE("the one-pointer wait list keeps FIFO order when nodes leave from the front, middle or back") {
  CHECK(sizeof(detail::WaitList<Node>) == sizeof(void*));
  Node a(1), b(2), c(3), d(4);
  detail::WaitList<Node> l;
  CHECK(l.empty());
  CHECK(l.size() == 0u);
  for (Node* n : {&a, &b, &c, &d}) l.push_back(*n);
  CHECK(l.size() == 4u);
  CHECK(l.front() == &a);
  l.remove(d);  // the last: the new last is c
  l.push_back(d);
  l.remove(b);  // the middle
  CHECK_FALSE(b.linked());
  CHECK(l.size() == 3u);
  l.remove(a);  // the first: c stays the front's "last"
  CHECK(l.front() == &c);
  l.push_back(a);
  CHECK(order(l) == "341");
  CHECK(l.empty());
  CHECK_FALSE(a.linked());

  l.push_back(b);  // a single node is both first and last
  l.remove(b);
  CHECK(l.empty());
  l.push_back(c);
  l.push_back(b);
  CHECK(order(l) == "32");
}
