#pragma once
// detail::ByteBuffer: a stream's receive buffer, [begin_, end_) of data_.
//
// Invariant: while the kernel owns the free tail (a recv is in flight into
// data() + size()), the storage is never moved, reallocated or compacted:
// only consume() (which moves begin_ alone) and commit() (which the recv's
// completion calls) may run. Everything that moves bytes happens in
// prepare(), which the owner calls only with no recv in flight.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace corio::detail {

class ByteBuffer {
 public:
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return end_ == begin_; }
  std::size_t capacity() const noexcept { return cap_; }
  const char* data() const noexcept { return data_.get() + begin_; }
  std::string_view view() const noexcept { return {data(), size()}; }

  // Drops n bytes from the front (n <= size()).
  void consume(std::size_t n) noexcept { begin_ += n; }
  // Removes and returns the first n bytes (n <= size()).
  std::string take(std::size_t n) {
    std::string s(data(), n);
    consume(n);
    return s;
  }
  std::string take_all() { return take(size()); }

  // A tail of at least `want` free bytes to receive into. Compacts, grows, or
  // (when the buffer is empty and oversized) shrinks. No recv may be in flight.
  char* prepare(std::size_t want) {
    if (begin_ == end_) {
      begin_ = end_ = 0;
      // A buffer that once held a huge message goes back to a normal size.
      if (cap_ > kShrinkAbove && cap_ > 4 * want) reallocate(want);
    }
    if (cap_ - end_ < want) {
      std::size_t n = size();
      if (begin_ > 0 && cap_ - n >= want && n <= cap_ / 2) {
        std::memmove(data_.get(), data_.get() + begin_, n);  // cheap: little live data
        begin_ = 0;
        end_ = n;
      } else {
        std::size_t new_cap = cap_ ? cap_ : want;
        while (new_cap - n < want) new_cap *= 2;
        reallocate(new_cap);
      }
    }
    return data_.get() + end_;
  }
  std::size_t free_tail() const noexcept { return cap_ - end_; }
  // The kernel wrote n bytes at the tail prepare() returned.
  void commit(std::size_t n) noexcept { end_ += n; }
  // Gives the memory back (an idle stream with nothing buffered). No recv in flight.
  void release_memory() noexcept {
    if (begin_ == end_) {
      data_.reset();
      cap_ = begin_ = end_ = 0;
    }
  }

 private:
  static constexpr std::size_t kShrinkAbove = 1 << 20;

  void reallocate(std::size_t new_cap) {
    std::unique_ptr<char[]> d(new char[new_cap]);  // default-initialised: no zeroing
    std::size_t n = size();
    if (n) std::memcpy(d.get(), data_.get() + begin_, n);
    data_ = std::move(d);
    cap_ = new_cap;
    begin_ = 0;
    end_ = n;
  }

  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace corio::detail
