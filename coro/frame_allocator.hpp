#pragma once
// Per-thread free-list allocator for coroutine frames and task records.
//
// Invariants:
// - Every block comes from ::operator new and may be returned on any thread:
//   a block freed on another thread simply joins that thread's free list.
//   This keeps frames that migrate (run_coroutine_threadsafe) safe.
// - Size classes are 16 bytes apart and sized to what malloc really hands
//   out for them (a multiple of 16 minus malloc's 8-byte header: 24, 40, 56,
//   …, 2040), so rounding a frame up to its class never costs a byte of heap
//   that malloc would not have used anyway — what a frame costs matters when
//   tens of thousands of connections each keep one suspended. Larger blocks
//   go straight to ::operator new/delete.
// - Each thread caches at most kMaxCachedBytes; the rest is released, so a
//   burst of a million tasks does not pin its peak memory forever.
// - Under AddressSanitizer the cache is disabled so that use-after-free of a
//   frame is reported instead of hidden by reuse.
// - The common case, a block of a cached class taken from or given back to
//   a live cache, is inline (every coroutine call and every stream buffer
//   does one); the rest (first use on a thread, an empty list, a full
//   cache, large blocks, a thread that is exiting) is out of line.
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_FRAME_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_FRAME_CACHE 0
#endif
#endif
#ifndef CORIO_FRAME_CACHE
#define CORIO_FRAME_CACHE 1
#endif

namespace corio::detail {

void* frame_alloc_slow(std::size_t size);
void frame_free_slow(void* p, std::size_t size) noexcept;

inline constexpr std::size_t kFrameClasses = 127;  // up to 2040 bytes
constexpr std::size_t frame_class_of(std::size_t size) noexcept { return size <= 24 ? 0 : (size - 24 + 15) / 16; }
constexpr std::size_t frame_class_bytes(std::size_t c) noexcept { return 16 * c + 24; }
static_assert(frame_class_bytes(kFrameClasses - 1) == 2040);
inline constexpr std::size_t kFrameMaxCachedBytes = 64u << 20;

#if CORIO_FRAME_CACHE
struct FrameFreeBlock {
  FrameFreeBlock* next;
};
enum : unsigned char { kFrameCacheUnused = 0, kFrameCacheLive = 1, kFrameCacheDead = 2 };
struct FrameCache {
  FrameFreeBlock** heads;  // kFrameClasses lists, allocated on first use
  std::size_t cached_bytes;
  unsigned char state;  // kFrameCache*
};
extern constinit thread_local FrameCache tls_frame_cache __attribute__((tls_model("initial-exec")));

[[gnu::always_inline]] inline void* frame_alloc(std::size_t size) {
  const std::size_t c = frame_class_of(size);
  FrameCache& tc = tls_frame_cache;
  if (c < kFrameClasses && tc.state == kFrameCacheLive) {
    if (FrameFreeBlock* b = tc.heads[c]) {
      tc.heads[c] = b->next;
      tc.cached_bytes -= frame_class_bytes(c);
      return b;
    }
  }
  return frame_alloc_slow(size);
}

[[gnu::always_inline]] inline void frame_free(void* p, std::size_t size) noexcept {
  const std::size_t c = frame_class_of(size);
  FrameCache& tc = tls_frame_cache;
  if (c < kFrameClasses && tc.state == kFrameCacheLive &&
      tc.cached_bytes + frame_class_bytes(c) <= kFrameMaxCachedBytes) {
    auto* b = static_cast<FrameFreeBlock*>(p);
    b->next = tc.heads[c];
    tc.heads[c] = b;
    tc.cached_bytes += frame_class_bytes(c);
    return;
  }
  frame_free_slow(p, size);
}
#else
inline void* frame_alloc(std::size_t size) { return frame_alloc_slow(size); }
inline void frame_free(void* p, std::size_t size) noexcept { frame_free_slow(p, size); }
#endif

// The size of the block frame_alloc(size) hands out (its size class; `size`
// itself above the largest class).
std::size_t frame_block_size(std::size_t size) noexcept;

// Bytes currently cached by this thread's free lists (for tests/benchmarks).
std::size_t frame_cache_bytes() noexcept;

}  // namespace corio::detail
