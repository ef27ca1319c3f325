// A min-heap of timer nodes ordered by (deadline, seq).
//
// Invariants: every node in the heap has heap_index equal to its position;
// nodes outside it have TimerNode::kNotArmed. seq grows with every push, so
// equal deadlines pop in the order they were armed (FIFO). Removal of an
// arbitrary node is O(log n) through its stored index. Each slot keeps a copy
// of its node's (deadline, seq), equal to the node's while it is armed.
//
// Why the keys are copied into the slots and the heap is 4-ary: with a
// million armed timers, the nodes live in a million different frames and
// callback records, so a comparison that dereferences a node is a cache miss.
// Sifting now compares slots that sit side by side (four children share one or
// two cache lines) and touches a node only to update the index of one that
// moves; a 4-ary tree is half as deep. bench_core with 1M timers, per timer:
// call_later firing ~770 -> ~380 ns, sleep_tasks ~1300 -> ~720 ns (inline keys
// alone, binary: ~450 and ~830 ns).
#include <cstdint>
#include <vector>

#include "coro/scheduler.hpp"

namespace corio::detail {

class TimerHeap {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  TimerNode* top() const noexcept { return heap_.front().node; }

  void push(TimerNode& n) {
    if (n.armed()) remove(n);
    n.seq = next_seq_++;
    n.heap_index = heap_.size();
    heap_.push_back(Slot{n.deadline, n.seq, &n});
    sift_up(n.heap_index);
  }

  TimerNode* pop() noexcept {
    TimerNode* n = heap_.front().node;
    remove_at(0);
    return n;
  }

  void remove(TimerNode& n) noexcept {
    if (n.armed()) remove_at(n.heap_index);
  }

 private:
  static constexpr std::size_t kArity = 4;

  struct Slot {
    TimePoint deadline;
    std::uint64_t seq;
    TimerNode* node;
  };

  static bool less(const Slot& a, const Slot& b) noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }

  void place(std::size_t i, const Slot& s) noexcept {
    heap_[i] = s;
    s.node->heap_index = i;
  }

  void remove_at(std::size_t i) noexcept {
    heap_[i].node->heap_index = TimerNode::kNotArmed;
    Slot last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    place(i, last);
    if (i > 0 && less(last, heap_[(i - 1) / kArity])) sift_up(i);
    else sift_down(i);
  }

  void sift_up(std::size_t i) noexcept {
    Slot s = heap_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / kArity;
      if (!less(s, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, s);
  }

  void sift_down(std::size_t i) noexcept {
    Slot s = heap_[i];
    const std::size_t size = heap_.size();
    for (;;) {
      std::size_t first = kArity * i + 1;
      if (first >= size) break;
      std::size_t best = first;
      const std::size_t end = first + kArity < size ? first + kArity : size;
      for (std::size_t c = first + 1; c < end; ++c) {
        if (less(heap_[c], heap_[best])) best = c;
      }
      if (!less(heap_[best], s)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, s);
  }

  std::vector<Slot> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace corio::detail
