#pragma once
// detail::ByteBuffer: a stream's receive buffer, [begin, end) of its storage.
//
// Invariant: while the kernel owns the free tail (a recv is in flight into
// data() + size()), the storage is never moved, reallocated or compacted:
// only consume() (which moves begin alone) and commit() (which the recv's
// completion calls) may run. Everything that moves bytes happens in
// prepare(), which the owner calls only with no recv in flight.
//
// One pointer wide: the sizes live in a header in front of the bytes, so an
// empty buffer (every idle connection's) costs 8 bytes and no allocation.
// The storage comes from the thread's frame allocator (size classes with a
// per-thread free list): a connection that gives its buffer back after
// every message (an idle stream owns none) and takes one for the next costs
// no malloc and free per message, and the capacity is the whole block.
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "coro/frame_allocator.hpp"

namespace corio::detail {

class ByteBuffer {
 public:
  ByteBuffer() noexcept = default;
  ByteBuffer(ByteBuffer&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { free_block(h_); }

  std::size_t size() const noexcept { return h_ ? h_->end - h_->begin : 0; }
  bool empty() const noexcept { return !h_ || h_->end == h_->begin; }
  std::size_t capacity() const noexcept { return h_ ? h_->cap : 0; }
  const char* data() const noexcept { return h_ ? h_->bytes() + h_->begin : nullptr; }
  std::string_view view() const noexcept { return {data(), size()}; }

  // Drops n bytes from the front (n <= size()).
  void consume(std::size_t n) noexcept {
    if (n) h_->begin += n;
  }
  // Drops everything buffered (the storage stays).
  void clear() noexcept { consume(size()); }
  // Removes and returns the first n bytes (n <= size()).
  std::string take(std::size_t n) {
    std::string s(data(), n);
    consume(n);
    return s;
  }
  std::string take_all() { return take(size()); }
  // Puts n bytes back in front of the data (a read cancelled after its bytes
  // were copied out). No recv may be in flight into this buffer.
  void prepend(const char* p, std::size_t n) {
    if (n == 0) return;
    if (h_ && h_->begin >= n) {
      h_->begin -= n;
      std::memcpy(h_->bytes() + h_->begin, p, n);
      return;
    }
    ByteBuffer b;
    const std::size_t old = size();
    char* t = b.prepare(n + old);
    std::memcpy(t, p, n);
    if (old) std::memcpy(t + n, data(), old);
    b.commit(n + old);
    std::swap(h_, b.h_);
  }
  // Appends n bytes (growing as prepare() does).
  void append(const char* p, std::size_t n) {
    if (n == 0) return;
    std::memcpy(prepare(n), p, n);
    commit(n);
  }

  // A tail of at least `want` free bytes to receive into. Compacts, grows, or
  // (when the buffer is empty and oversized) shrinks. No recv may be in flight.
  char* prepare(std::size_t want) {
    // Inline, the same as prepare_slow() gives there: an empty block of a
    // normal size that is large enough (a connection's next message), or
    // room after the bytes buffered (a response being built).
    if (h_) {
      Header& h = *h_;
      if (h.begin == h.end) {
        if (want <= h.cap && h.cap <= kShrinkAbove) {
          h.begin = h.end = 0;
          return h.bytes();
        }
      } else if (h.cap - h.end >= want) {
        return h.bytes() + h.end;
      }
    }
    return prepare_slow(want);
  }
  std::size_t free_tail() const noexcept { return h_ ? h_->cap - h_->end : 0; }
  // The kernel wrote n bytes at the tail prepare() returned.
  void commit(std::size_t n) noexcept {
    if (n) h_->end += n;
  }
  // Gives the memory back (an idle stream with nothing buffered). No recv in flight.
  void release_memory() noexcept {
    if (h_ && h_->begin == h_->end) {
      free_block(h_);
      h_ = nullptr;
    }
  }

 private:
  [[gnu::noinline]] char* prepare_slow(std::size_t want) {
    if (!h_) {
      reallocate(want);
      return h_->bytes();
    }
    Header& h = *h_;
    if (h.begin == h.end) {
      h.begin = h.end = 0;
      // A buffer that once held a huge message goes back to a normal size.
      if (h.cap > kShrinkAbove && h.cap > 4 * want) {
        reallocate(want);
        return h_->bytes();
      }
    }
    if (h.cap - h.end < want) {
      std::size_t n = h.end - h.begin;
      if (h.begin > 0 && h.cap - n >= want && n <= h.cap / 2) {
        std::memmove(h.bytes(), h.bytes() + h.begin, n);  // cheap: little live data
        h.begin = 0;
        h.end = n;
      } else {
        std::size_t new_cap = h.cap ? h.cap : want;
        while (new_cap - n < want) new_cap *= 2;
        reallocate(new_cap);
      }
    }
    return h_->bytes() + h_->end;
  }

  static constexpr std::size_t kShrinkAbove = 1 << 20;

  struct Header {
    std::size_t cap;
    std::size_t begin;
    std::size_t end;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
    const char* bytes() const noexcept { return reinterpret_cast<const char*>(this + 1); }
  };

  void reallocate(std::size_t new_cap) {
    // Not zeroed: the kernel or a memcpy fills what is used. The capacity is
    // what the block really has (its size class), not just what was asked.
    const std::size_t block = frame_block_size(sizeof(Header) + new_cap);
    auto* h = static_cast<Header*>(frame_alloc(block));
    std::size_t n = size();
    if (n) std::memcpy(h->bytes(), data(), n);
    h->cap = block - sizeof(Header);
    h->begin = 0;
    h->end = n;
    free_block(h_);
    h_ = h;
  }
  static void free_block(Header* h) noexcept {
    if (h) frame_free(h, sizeof(Header) + h->cap);
  }

  Header* h_ = nullptr;
};

}  // namespace corio::detail
