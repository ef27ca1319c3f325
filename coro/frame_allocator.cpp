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
namespace {

constexpr std::size_t kGranule = 64;
constexpr std::size_t kClasses = 32;  // up to 2 KiB
constexpr std::size_t kMaxCachedBytes = 64u << 20;

thread_local bool tls_cache_dead = false;  // trivially destructible: safe to read late

struct FreeBlock {
  FreeBlock* next;
};

struct ThreadCache {
  FreeBlock* heads[kClasses] = {};
  std::size_t cached_bytes = 0;

  ~ThreadCache() {
    tls_cache_dead = true;
    for (auto*& head : heads) {
      while (head) {
        FreeBlock* b = head;
        head = b->next;
        ::operator delete(b);
      }
    }
  }
};

// Constructed on first use; its destructor runs at thread exit and frees the
// cached blocks. A frame freed after that (during later thread-local
// destruction) goes straight to ::operator delete.
thread_local ThreadCache tls_cache;

inline std::size_t class_of(std::size_t size) noexcept { return (size + kGranule - 1) / kGranule - 1; }

}  // namespace

void* frame_alloc(std::size_t size) {
#if CORIO_FRAME_CACHE
  std::size_t c = class_of(size);
  if (c < kClasses) {
    if (tls_cache_dead) return ::operator new((c + 1) * kGranule);
    ThreadCache& tc = tls_cache;
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
    if (!tls_cache_dead && tls_cache.cached_bytes + bytes <= kMaxCachedBytes) {
      ThreadCache& tc = tls_cache;
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
  return tls_cache_dead ? 0 : tls_cache.cached_bytes;
#else
  return 0;
#endif
}

}  // namespace corio::detail
