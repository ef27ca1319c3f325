#pragma once
// Per-thread free-list allocator for coroutine frames and task records.
//
// Invariants:
// - Every block comes from ::operator new and may be returned on any thread:
//   a block freed on another thread simply joins that thread's free list.
//   This keeps frames that migrate (run_coroutine_threadsafe) safe.
// - Blocks are grouped in size classes of 64 bytes up to 2 KiB; larger blocks
//   go straight to ::operator new/delete.
// - Each thread caches at most kMaxCachedBytes; the rest is released, so a
//   burst of a million tasks does not pin its peak memory forever.
// - Under AddressSanitizer the cache is disabled so that use-after-free of a
//   frame is reported instead of hidden by reuse.
#include <cstddef>

namespace corio::detail {

void* frame_alloc(std::size_t size);
void frame_free(void* p, std::size_t size) noexcept;

// Bytes currently cached by this thread's free lists (for tests/benchmarks).
std::size_t frame_cache_bytes() noexcept;

}  // namespace corio::detail
