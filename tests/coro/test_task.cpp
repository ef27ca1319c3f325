#include "coro/task.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "coro/frame_allocator.hpp"
#include "loop/event_loop.hpp"
#include "tests/support.hpp"

using namespace corio;

namespace {

Task<int> answer() { co_return 42; }
Task<void> nothing(bool& ran) {
  ran = true;
  co_return;
}
Task<int> add_one(Task<int> inner) { co_return co_await std::move(inner) + 1; }
Task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}
Task<int> catches() {
  try {
    co_return co_await thrower();
  } catch (const std::runtime_error& e) {
    co_return std::string(e.what()) == "boom" ? 7 : -1;
  }
}
Task<std::unique_ptr<int>> move_only() { co_return std::make_unique<int>(5); }
Task<int> deep(int n) {
  if (n == 0) co_return 0;
  co_return co_await deep(n - 1) + 1;
}

}  // namespace

TEST_CASE("a task is lazy: its body runs only when awaited") {
  bool ran = false;
  {
    Task<void> t = nothing(ran);
    CHECK(t.valid());
    CHECK_FALSE(ran);
  }  // destroyed without running: the frame is freed, the body never ran
  CHECK_FALSE(ran);
  EventLoop loop;
  loop.run_until_complete(nothing(ran));
  CHECK(ran);
}

TEST_CASE("awaiting tasks yields their values, void included") {
  EventLoop loop;
  CHECK(loop.run_until_complete(answer()) == 42);
  CHECK(loop.run_until_complete(add_one(add_one(answer()))) == 44);
  auto p = loop.run_until_complete(move_only());
  REQUIRE(p);
  CHECK(*p == 5);
}

TEST_CASE("exceptions propagate through co_await and can be caught") {
  EventLoop loop;
  CHECK(loop.run_until_complete(catches()) == 7);
  CHECK_THROWS_WITH_AS(loop.run_until_complete(add_one(thrower())), "boom", std::runtime_error);
}

TEST_CASE("tasks are move-only and moving transfers the frame") {
  static_assert(!std::is_copy_constructible_v<Task<int>>);
  static_assert(std::is_nothrow_move_constructible_v<Task<int>>);
  Task<int> a = answer();
  Task<int> b = std::move(a);
  CHECK_FALSE(a.valid());
  CHECK(b.valid());
  EventLoop loop;
  CHECK(loop.run_until_complete(std::move(b)) == 42);
}

TEST_CASE("a chain of a million nested awaits completes without overflowing the stack") {
  EventLoop loop;
  CHECK(loop.run_until_complete(deep(1'000'000)) == 1'000'000);
}

TEST_CASE("coroutine frames are recycled by the per-thread allocator") {
  // In a fresh thread, so the cache starts empty whatever ran before.
  void* a = nullptr;
  void* b = nullptr;
  std::size_t cached = 0;
  std::thread([&] {
    a = detail::frame_alloc(201);
    detail::frame_free(a, 201);
    cached = detail::frame_cache_bytes();
    b = detail::frame_alloc(216);  // same 216-byte class
    detail::frame_free(b, 216);
  }).join();
#if defined(__SANITIZE_ADDRESS__)
  CHECK(cached == 0);  // disabled under ASan to expose use-after-free
#else
  CHECK(cached == 216);
  CHECK(a == b);
#endif
}

TEST_CASE("frame size classes are what malloc hands out anyway: 16 bytes apart, less its header") {
  CHECK(detail::frame_block_size(1) == 24);
  CHECK(detail::frame_block_size(24) == 24);
  CHECK(detail::frame_block_size(25) == 40);
  CHECK(detail::frame_block_size(200) == 200);
  CHECK(detail::frame_block_size(201) == 216);
  CHECK(detail::frame_block_size(2040) == 2040);
  CHECK(detail::frame_block_size(2041) == 2041);  // above the largest class: as asked
}
