#include "coro/frame_allocator.hpp"

#include <new>

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
#if CORIO_FRAME_CACHE
namespace {

constexpr std::size_t kGranule = 64;
constexpr std::size_t kClasses = 32;  // up to 2 KiB
constexpr std::size_t kMaxCachedBytes = 64u << 20;

struct FreeBlock {
  FreeBlock* next;
};

enum : unsigned char { kCacheUnused = 0, kCacheLive = 1, kCacheDead = 2 };

// The cache is plain data with the initial-exec TLS model, so the hot path is
// one %fs-relative load. A thread_local with a destructor would instead go
// through a TLS wrapper and an init guard, and libcorio.so's default
// (global-dynamic) model through __tls_get_addr — together ~45% of the time of
// a create/await/free cycle of a trivial task (bench/bench_core, `tasks`).
// initial-exec costs ~0.3 KiB of static TLS, which glibc reserves even for a
// dlopen()ed library.
struct ThreadCache {
  FreeBlock* heads[kClasses];
  std::size_t cached_bytes;
  unsigned char state;  // kCache*
};
constinit thread_local ThreadCache tls_cache __attribute__((tls_model("initial-exec"))) = {};

// Frees the cached blocks at thread exit. Touched once per thread (when the
// cache goes live) so that its destructor is registered; a frame freed after
// it ran (during later thread-local destruction) goes straight to
// ::operator delete.
struct CacheReaper {
  ~CacheReaper() {
    tls_cache.state = kCacheDead;
    for (auto*& head : tls_cache.heads) {
      while (head) {
        FreeBlock* b = head;
        head = b->next;
        ::operator delete(b);
      }
    }
    tls_cache.cached_bytes = 0;
  }
  void arm() noexcept { tls_cache.state = kCacheLive; }
};
thread_local CacheReaper tls_reaper;

// First use on this thread: register the reaper. False once the thread's
// thread-locals are being destroyed.
[[gnu::noinline]] bool cache_start() noexcept {
  if (tls_cache.state == kCacheDead) return false;
  tls_reaper.arm();
  return true;
}

inline std::size_t class_of(std::size_t size) noexcept { return (size + kGranule - 1) / kGranule - 1; }

}  // namespace
#endif

void* frame_alloc(std::size_t size) {
#if CORIO_FRAME_CACHE
  std::size_t c = class_of(size);
  if (c < kClasses) {
    ThreadCache& tc = tls_cache;
    if (tc.state != kCacheLive && !cache_start()) return ::operator new((c + 1) * kGranule);
    if (FreeBlock* b = tc.heads[c]) {
      tc.heads[c] = b->next;
      tc.cached_bytes -= (c + 1) * kGranule;
      return b;
    }
    return ::operator new((c + 1) * kGranule);
  }
#endif
  return ::operator new(size);
}

void frame_free(void* p, std::size_t size) noexcept {
#if CORIO_FRAME_CACHE
  std::size_t c = class_of(size);
  if (c < kClasses) {
    std::size_t bytes = (c + 1) * kGranule;
    ThreadCache& tc = tls_cache;
    if ((tc.state == kCacheLive || cache_start()) && tc.cached_bytes + bytes <= kMaxCachedBytes) {
      auto* b = static_cast<FreeBlock*>(p);
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
  return tls_cache.cached_bytes;
#else
  return 0;
#endif
}

}  // namespace corio::detail
