#include "net/byte_buffer.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

using corio::detail::ByteBuffer;

namespace {
void put(ByteBuffer& b, const char* s) {
  std::size_t n = std::strlen(s);
  char* tail = b.prepare(n);
  std::memcpy(tail, s, n);
  b.commit(n);
}
}  // namespace

TEST_CASE("a byte buffer appends at the tail and takes from the front") {
  ByteBuffer b;
  CHECK(b.empty());
  put(b, "hello ");
  put(b, "world");
  CHECK(b.view() == "hello world");
  CHECK(b.take(6) == "hello ");
  CHECK(b.size() == 5u);
  b.consume(1);
  CHECK(b.take_all() == "orld");
  CHECK(b.empty());
}

TEST_CASE("prepare compacts little live data, grows for more, and shrinks a huge empty buffer") {
  ByteBuffer b;
  b.prepare(1000);
  std::size_t cap = b.capacity();
  CHECK(cap >= 1000u);
  b.commit(cap);  // full
  b.consume(cap - 10);
  // 10 live bytes at the end: compacted to the front instead of growing.
  b.prepare(100);
  CHECK(b.capacity() == cap);
  CHECK(b.size() == 10u);
  CHECK(b.free_tail() >= 100u);
  // More than fits: grows and keeps the bytes.
  std::string before(b.view());
  b.prepare(cap * 3);
  CHECK(b.capacity() >= cap * 3 + 10);
  CHECK(b.view() == before);

  ByteBuffer big;
  big.prepare(16 << 20);
  big.commit(16 << 20);
  big.consume(16 << 20);
  big.prepare(8192);
  CHECK(big.capacity() < (1u << 20));
  big.release_memory();
  CHECK(big.capacity() == 0u);
}

TEST_CASE("prepend puts bytes back in front, in the room before the data or in a new block") {
  ByteBuffer b;
  b.prepend("xyz", 3);  // into an empty buffer
  CHECK(b.view() == "xyz");
  put(b, "abcdef");
  b.consume(5);  // "cdef" left, 5 bytes of room in front
  b.prepend("12", 2);
  CHECK(b.view() == "12cdef");
  b.prepend("0123456789", 10);  // more than the room in front: a new block
  CHECK(b.view() == "012345678912cdef");
  b.append("!", 1);
  CHECK(b.view() == "012345678912cdef!");
}

TEST_CASE("the capacity is the whole allocator block, and an emptied buffer reuses it") {
  ByteBuffer b;
  b.prepare(10);
  const std::size_t cap = b.capacity();
  CHECK(cap >= 10u);
  const std::string fill(cap, 'x');
  b.append(fill.data(), fill.size());  // fits without growing
  CHECK(b.capacity() == cap);
  b.consume(cap);
  b.prepare(cap);
  CHECK(b.capacity() == cap);
  CHECK(b.size() == 0u);
}
