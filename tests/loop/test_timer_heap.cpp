#include "loop/timer_heap.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <vector>

using corio::TimePoint;
using corio::detail::TimerHeap;
using corio::detail::TimerNode;

TEST_CASE("the timer heap pops by deadline, FIFO among equals, and removes arbitrary nodes") {
  std::vector<TimerNode> nodes(2000);
  std::mt19937 rng(7);
  TimerHeap h;
  for (auto& n : nodes) {
    n.deadline = TimePoint(std::chrono::milliseconds(rng() % 100));
    h.push(n);
  }
  for (std::size_t i = 0; i < nodes.size(); i += 3) h.remove(nodes[i]);
  CHECK_FALSE(nodes[0].armed());
  std::vector<TimerNode*> out;
  while (!h.empty()) out.push_back(h.pop());
  CHECK(out.size() == nodes.size() - (nodes.size() + 2) / 3);
  bool ordered = std::is_sorted(out.begin(), out.end(), [](TimerNode* a, TimerNode* b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
  });
  CHECK(ordered);
  for (auto* n : out) CHECK_FALSE(n->armed());
}

TEST_CASE("re-arming an armed timer moves it") {
  TimerNode a, b;
  TimerHeap h;
  a.deadline = TimePoint(std::chrono::seconds(1));
  b.deadline = TimePoint(std::chrono::seconds(2));
  h.push(a);
  h.push(b);
  a.deadline = TimePoint(std::chrono::seconds(3));
  h.push(a);
  CHECK(h.size() == 2);
  CHECK(h.pop() == &b);
  CHECK(h.pop() == &a);
}

TEST_CASE("the timer heap agrees with a sorted reference under random pushes, re-arms, removals and pops") {
  std::vector<TimerNode> nodes(500);
  std::mt19937 rng(11);
  TimerHeap h;
  for (int step = 0; step < 20000; ++step) {
    TimerNode& n = nodes[rng() % nodes.size()];
    switch (rng() % 4) {
      case 0:
      case 1:  // arm, or re-arm with a new deadline (few distinct values: many ties)
        n.deadline = TimePoint(std::chrono::milliseconds(rng() % 50));
        h.push(n);
        break;
      case 2:
        h.remove(n);
        break;
      case 3:
        if (!h.empty()) {
          TimerNode* top = h.top();
          for (auto& o : nodes) {
            if (o.armed()) {
              REQUIRE_FALSE((o.deadline < top->deadline || (o.deadline == top->deadline && o.seq < top->seq)));
            }
          }
          REQUIRE(h.pop() == top);
          REQUIRE_FALSE(top->armed());
        }
        break;
    }
    if (step % 1000 == 0) {
      std::size_t armed = 0;
      for (auto& o : nodes) armed += o.armed();
      REQUIRE(armed == h.size());
    }
  }
}
