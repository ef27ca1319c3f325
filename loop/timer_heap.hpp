#pragma once
// A binary min-heap of timer nodes ordered by (deadline, seq).
//
// Invariants: every node in the heap has heap_index equal to its position;
// nodes outside it have TimerNode::kNotArmed. seq grows with every push, so
// equal deadlines pop in the order they were armed (FIFO). Removal of an
// arbitrary node is O(log n) through its stored index.
#include <cstdint>
#include <vector>

#include "coro/scheduler.hpp"

namespace corio::detail {

class TimerHeap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  TimerNode* top() const noexcept { return heap_.front(); }

  void push(TimerNode& n) {
    if (n.armed()) remove(n);
    n.seq = next_seq_++;
    n.heap_index = heap_.size();
    heap_.push_back(&n);
    sift_up(n.heap_index);
  }

  TimerNode* pop() noexcept {
    TimerNode* n = heap_.front();
    remove_at(0);
    return n;
  }

  void remove(TimerNode& n) noexcept {
    if (n.armed()) remove_at(n.heap_index);
  }

 private:
  static bool less(const TimerNode* a, const TimerNode* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
  }

  void place(std::size_t i, TimerNode* n) noexcept {
    heap_[i] = n;
    n->heap_index = i;
  }

  void remove_at(std::size_t i) noexcept {
    TimerNode* gone = heap_[i];
    gone->heap_index = TimerNode::kNotArmed;
    TimerNode* last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    place(i, last);
    if (i > 0 && less(last, heap_[(i - 1) / 2])) sift_up(i);
    else sift_down(i);
  }

  void sift_up(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (!less(n, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, n);
  }

  void sift_down(std::size_t i) noexcept {
    TimerNode* n = heap_[i];
    const std::size_t size = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && less(heap_[child + 1], heap_[child])) ++child;
      if (!less(heap_[child], n)) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, n);
  }

  std::vector<TimerNode*> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace corio::detail
