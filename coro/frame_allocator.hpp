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
#include <cstddef>

namespace corio::detail {

void* frame_alloc(std::size_t size);
void frame_free(void* p, std::size_t size) noexcept;

// The size of the block frame_alloc(size) hands out (its size class; `size`
// itself above the largest class).
std::size_t frame_block_size(std::size_t size) noexcept;

// Bytes currently cached by this thread's free lists (for tests/benchmarks).
std::size_t frame_cache_bytes() noexcept;

}  // namespace corio::detail
