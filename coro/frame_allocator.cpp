#include "coro/frame_allocator.hpp"

#include <new>

// Class c holds blocks of 16c + 24 bytes (frame_class_bytes): a glibc chunk of
// 16(c + 2) bytes less its 8-byte size header, i.e. exactly
// malloc_usable_size() of what ::operator new(16c + 24) returns.

namespace corio::detail {

std::size_t frame_block_size(std::size_t size) noexcept {
  std::size_t c = frame_class_of(size);
  return c < kFrameClasses ? frame_class_bytes(c) : size;
}

#if CORIO_FRAME_CACHE
// The cache is plain data with the initial-exec TLS model, so the hot path
// (inline, in the header) is one %fs-relative load. A thread_local with a
// destructor would instead go through a TLS wrapper and an init guard, and
// libcorio.so's default (global-dynamic) model through __tls_get_addr —
// together ~45% of the time of a create/await/free cycle of a trivial task
// (bench/bench_core, `tasks`). The list heads (1 KiB) live on the heap,
// allocated when the cache goes live: initial-exec TLS comes from the few
// hundred bytes glibc reserves for dlopen()ed libraries, and this keeps
// libcorio.so's share at a few words.
constinit thread_local FrameCache tls_frame_cache __attribute__((tls_model("initial-exec"))) = {};

namespace {

// Frees the cached blocks at thread exit. Touched once per thread (when the
// cache goes live) so that its destructor is registered; a frame freed after
// it ran (during later thread-local destruction) goes straight to
// ::operator delete.
struct CacheReaper {
  ~CacheReaper() {
    tls_frame_cache.state = kFrameCacheDead;
    if (FrameFreeBlock** heads = tls_frame_cache.heads) {
      for (std::size_t c = 0; c < kFrameClasses; ++c) {
        while (FrameFreeBlock* b = heads[c]) {
          heads[c] = b->next;
          ::operator delete(b);
        }
      }
      tls_frame_cache.heads = nullptr;
      ::operator delete(heads);
    }
    tls_frame_cache.cached_bytes = 0;
  }
  void arm() noexcept { tls_frame_cache.state = kFrameCacheLive; }
};
thread_local CacheReaper tls_reaper;

// First use on this thread: allocate the heads and register the reaper.
// False once the thread's thread-locals are being destroyed, or if the heads
// cannot be allocated (then blocks go straight to malloc).
[[gnu::noinline]] bool cache_start() noexcept {
  if (tls_frame_cache.state == kFrameCacheDead) return false;
  auto* heads = static_cast<FrameFreeBlock**>(::operator new(kFrameClasses * sizeof(FrameFreeBlock*), std::nothrow));
  if (!heads) return false;
  for (std::size_t c = 0; c < kFrameClasses; ++c) heads[c] = nullptr;
  tls_frame_cache.heads = heads;
  tls_reaper.arm();
  return true;
}

}  // namespace
#endif

void* frame_alloc_slow(std::size_t size) {
#if CORIO_FRAME_CACHE
  std::size_t c = frame_class_of(size);
  if (c < kFrameClasses) {
    FrameCache& tc = tls_frame_cache;
    if (tc.state != kFrameCacheLive && !cache_start()) return ::operator new(frame_class_bytes(c));
    if (FrameFreeBlock* b = tc.heads[c]) {
      tc.heads[c] = b->next;
      tc.cached_bytes -= frame_class_bytes(c);
      return b;
    }
    return ::operator new(frame_class_bytes(c));
  }
#endif
  return ::operator new(size);
}

void frame_free_slow(void* p, std::size_t size) noexcept {
#if CORIO_FRAME_CACHE
  std::size_t c = frame_class_of(size);
  if (c < kFrameClasses) {
    std::size_t bytes = frame_class_bytes(c);
    FrameCache& tc = tls_frame_cache;
    if ((tc.state == kFrameCacheLive || cache_start()) && tc.cached_bytes + bytes <= kFrameMaxCachedBytes) {
      auto* b = static_cast<FrameFreeBlock*>(p);
      b->next = tc.heads[c];
      tc.heads[c] = b;
      tc.cached_bytes += bytes;
      return;
    }
  }
#endif
  (void)size;
  ::operator delete(p);
}

std::size_t frame_cache_bytes() noexcept {
#if CORIO_FRAME_CACHE
  return tls_frame_cache.cached_bytes;
#else
  return 0;
#endif
}

}  // namespace corio::detail
