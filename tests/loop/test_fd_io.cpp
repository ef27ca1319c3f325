#include "loop/fd_io.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) close_fd(r);
    if (w >= 0) close_fd(w);
  }
};
}  // namespace

TEST_CASE("a pipe carries data between two tasks, and EOF reads as 0") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::string> {
      Pipe p;
      auto writer = [](int fd) -> Task<void> {
        for (int i = 0; i < 100; ++i) {
          std::string s = "chunk" + std::to_string(i) + ";";
          co_await write_all(fd, s.data(), s.size());
          if (i % 10 == 0) co_await sleep(0s);
        }
        close_fd(fd);
      };
      auto w = create_task(writer(p.w));
      p.w = -1;
      std::string got;
      char buf[64];
      for (;;) {
        std::size_t n = co_await corio::read(p.r, buf, sizeof buf);
        if (n == 0) break;
        got.append(buf, n);
      }
      co_await w;
      co_return got;
    };
    std::string expect;
    for (int i = 0; i < 100; ++i) expect += "chunk" + std::to_string(i) + ";";
    CHECK(loop.run_until_complete(main()) == expect);
  });
}

TEST_CASE("a write larger than the pipe buffer completes as the reader drains it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::size_t> {
      Pipe p;
      std::vector<char> big(4 << 20, 'x');
      auto writer = [](int fd, const std::vector<char>& data) -> Task<void> {
        co_await write_all(fd, data.data(), data.size());
        close_fd(fd);
      };
      auto w = create_task(writer(p.w, big));
      p.w = -1;
      std::size_t total = 0;
      std::vector<char> buf(65536);
      for (;;) {
        std::size_t n = co_await corio::read(p.r, buf.data(), buf.size());
        if (n == 0) break;
        total += n;
      }
      co_await w;
      co_return total;
    };
    CHECK(loop.run_until_complete(main()) == (4u << 20));
  });
}

TEST_CASE("an eventfd wakes a task blocked reading it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& l) -> Task<std::uint64_t> {
      int efd = ::eventfd(0, EFD_CLOEXEC);
      l.call_later(5ms, [efd] {
        std::uint64_t v = 7;
        CHECK(::write(efd, &v, sizeof v) == sizeof v);
      });
      std::uint64_t v = 0;
      std::size_t n = co_await corio::read(efd, &v, sizeof v);
      CHECK(n == sizeof v);
      close_fd(efd);
      co_return v;
    };
    CHECK(loop.run_until_complete(main(loop)) == 7);
  });
}

TEST_CASE("cancelling a task blocked in a pipe read returns promptly and the fd stays usable") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Pipe p;
      auto reader = [](int fd) -> Task<std::size_t> {
        char buf[16];
        co_return co_await corio::read(fd, buf, sizeof buf);
      };
      auto t = create_task(reader(p.r));
      co_await sleep(5ms);
      auto t0 = Clock::now();
      t.cancel("give up");
      CHECK_THROWS_AS(co_await t, CancelledError);
      CHECK(Clock::now() - t0 < 500ms);
      // The fd is reusable: a new read sees data written now.
      co_await write_all(p.w, "hi", 2);
      char buf[4];
      std::size_t n = co_await corio::read(p.r, buf, sizeof buf);
      CHECK(n == 2);
      CHECK(std::string(buf, n) == "hi");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("reading a closed fd raises system_error naming the operation and fd") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      char buf[4];
      try {
        co_await corio::read(987654, buf, sizeof buf);
        FAIL("expected an error");
      } catch (const std::system_error& e) {
        CHECK(e.code().value() == EBADF);
        CHECK(std::string(e.what()).find("read fd 987654") != std::string::npos);
      }
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("regular files can be read and written through the loop") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::string> {
      char path[] = "/tmp/corio-fdio-XXXXXX";
      int fd = ::mkstemp(path);
      REQUIRE(fd >= 0);
      ::unlink(path);
      co_await write_all(fd, "hello file", 10);
      ::lseek(fd, 0, SEEK_SET);
      char buf[32];
      std::size_t n = co_await corio::read(fd, buf, sizeof buf);
      close_fd(fd);
      co_return std::string(buf, n);
    };
    CHECK(loop.run_until_complete(main()) == "hello file");
  });
}

TEST_CASE("an fd closed between two runs of the loop leaves nothing behind for the fd that reuses its number") {
  // close_fd() outside a running loop (a Socket or StreamWriter destroyed
  // after run_until_complete returned, as asyncio allows between runs) must
  // still make the loop forget the fd: otherwise epoll believes the number
  // that the next file gets is registered already, never adds it, and a
  // read on it waits for an edge that cannot come.
  test::on_each_backend([](EventLoop& loop) {
    int a[2];
    REQUIRE(::pipe2(a, O_CLOEXEC) == 0);
    // A read that has to wait: the read end is registered, its side not ready.
    loop.run_until_complete([](int fd) -> Task<void> {
      auto reader = [](int fd) -> Task<std::size_t> {
        char buf[4];
        co_return co_await corio::read(fd, buf, sizeof buf);
      };
      auto t = create_task(reader(fd));
      co_await sleep(5ms);
      t.cancel();
      CHECK_THROWS_AS(co_await t, CancelledError);
    }(a[0]));
    const int number = a[0];
    close_fd(a[0]);  // no loop runs now
    close_fd(a[1]);
    int b[2];
    REQUIRE(::pipe2(b, O_CLOEXEC) == 0);
    REQUIRE(b[0] == number);  // the lowest free number is reused
    REQUIRE(::write(b[1], "new", 3) == 3);
    std::string got = loop.run_until_complete([](int fd) -> Task<std::string> {
      auto reader = [](int fd) -> Task<std::string> {
        char buf[8];
        std::size_t n = co_await corio::read(fd, buf, sizeof buf);
        co_return std::string(buf, n);
      };
      auto t = create_task(reader(fd));
      for (int i = 0; i < 100 && !t.done(); ++i) co_await sleep(5ms);
      if (!t.done()) {
        t.cancel();
        co_return "(still waiting after 500 ms)";
      }
      co_return co_await t;
    }(b[0]));
    CHECK(got == "new");
    close_fd(b[0]);
    close_fd(b[1]);
  });
}
