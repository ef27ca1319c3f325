#include "state.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/support.hpp"

using corio::Task;

namespace {

struct TempDb {
  std::string path;
  TempDb() {
    char tmpl[] = "/tmp/corio-crawl-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    unlink(tmpl);
    path = tmpl;
  }
  ~TempDb() {
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
  }
};

// GCC 12 destroys a lambda with captures twice when it is a temporary inside
// a co_await expression: name it first (see README, "Known compiler issues").
Task<void> first_run(const std::string* path) {
  auto open = [path] { return crawler::CrawlState::open(*path); };
  auto st = co_await corio::to_thread(open);
  for (int i = 0; i < 3000; ++i) co_await st->queued("http://h/" + std::to_string(i), i % 5);
  co_await st->queued("http://h/1", 4);  // seen already: ignored
  for (int i = 0; i < 1000; ++i) co_await st->done("http://h/" + std::to_string(i), "{\"i\":" + std::to_string(i) + "}");
  // Redirect targets: one never queued (not admitted), one queued before (admitted).
  co_await st->done("http://h/target", "{}", false);
  co_await st->done("http://h/2999", "{}", false);
  co_await st->close();
  CHECK(st->rows_written() == 4003);
  co_await st->close();  // idempotent
}

Task<void> second_run(const std::string* path) {
  auto open = [path] { return crawler::CrawlState::open(*path); };
  auto st = co_await corio::to_thread(open);
  crawler::LoadedState s = co_await corio::to_thread([&st] { return st->load(); });
  CHECK(s.done.size() == 1002);
  CHECK(s.done_admitted == 1001);  // all but http://h/target
  REQUIRE(s.frontier.size() == 1999);
  CHECK(s.frontier.front().url == "http://h/1000");  // queue order kept
  CHECK(s.frontier.front().depth == 0);
  CHECK(s.frontier.back().url == "http://h/2998");
  CHECK(s.frontier.back().depth == 3);
  co_await st->close();
}

}  // namespace

TEST_CASE("a crawl state reloads its frontier and done set in queue order") {
  corio::test::on_each_backend([](corio::EventLoop& loop) {
    TempDb db;
    loop.run_until_complete(first_run(&db.path));
    loop.run_until_complete(second_run(&db.path));
  });
}

TEST_CASE("opening a state file in a missing directory names the file") {
  try {
    crawler::CrawlState::open("/nonexistent-dir/x/state.db");
    FAIL("opened");
  } catch (const crawler::StateError& e) {
    CHECK(std::string(e.what()).find("/nonexistent-dir/x/state.db") != std::string::npos);
  }
}

TEST_CASE("a state file that is not a database is refused") {
  TempDb db;
  FILE* f = fopen(db.path.c_str(), "w");
  REQUIRE(f);
  fputs("this is not an sqlite database, just some text that is long enough to have a header......\n", f);
  fclose(f);
  CHECK_THROWS_AS(crawler::CrawlState::open(db.path), crawler::StateError);
}
