#pragma once
// The crawler's state in one SQLite file: the frontier (queued URLs), the
// seen-set and a record per fetched URL, so that a stopped crawl resumes
// without fetching a page twice and a user can query what was fetched
// (`sqlite3 crawl.db 'select url from urls where state = 1'`).
//
// SQLite calls block, so they never run on the loop: one writer thread owns
// the connection and is fed through a BridgeQueue (asyncio + janus's
// pattern). It applies whatever has accumulated in one transaction, so a busy
// crawl costs one fsync-free commit per batch, not per URL.
//
// Lifetime: open() and load() block (call them through corio::to_thread);
// queued()/done() only enqueue (awaiting room when the writer lags); close()
// flushes everything and stops the thread. Errors: StateError naming the file
// and SQLite's message, thrown by open/load, and by close() when a write
// failed in the writer thread.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "corio/corio.hpp"

struct sqlite3;

namespace crawler {

class StateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoadedState {
  struct Entry {
    std::string url;
    int depth;
  };
  std::vector<Entry> frontier;    // queued, never fetched: resume from here
  std::vector<std::string> done;  // fetched already: never again
  // How many of `done` were admitted (counted toward --max-pages): all but
  // the redirect targets fetched on another URL's behalf (done(…, false)).
  std::size_t done_admitted = 0;
};

class CrawlState {
 public:
  // Blocking. Creates the file and its tables if needed.
  static std::unique_ptr<CrawlState> open(const std::string& path);
  ~CrawlState();  // close()s if still open (blocking: prefer awaiting close())
  CrawlState(const CrawlState&) = delete;
  CrawlState& operator=(const CrawlState&) = delete;

  // Blocking: what a previous run left (frontier in the order it was queued).
  LoadedState load();

  // A URL entered the frontier (first time seen).
  corio::Task<void> queued(std::string url, int depth);
  // A URL was fetched (or failed for good); record is its JSON line.
  // admitted = false: a redirect target fetched on another URL's behalf,
  // which never entered the frontier (unless it was queued already, and
  // then it stays admitted).
  corio::Task<void> done(std::string url, std::string record, bool admitted = true);

  // Flushes and stops the writer thread; rethrows a writer failure. Awaitable
  // (the join runs on the executor). Idempotent.
  corio::Task<void> close();
  // Rows written by the writer so far (for tests and the summary).
  std::size_t rows_written() const noexcept { return written_.load(); }

 private:
  struct Op {
    std::string url;
    std::string record;  // empty: queued; else done
    int depth = 0;
    bool admitted = true;  // done ops: see done()
  };
  CrawlState(std::string path, sqlite3* db);
  corio::Task<void> put(Op op);
  void writer_main();
  void close_blocking();

  std::string path_;
  sqlite3* db_;
  corio::BridgeQueue<Op> ops_{10'000};
  std::thread writer_;
  std::string error_;  // set by the writer before it exits on a failure
  std::atomic<std::size_t> written_{0};
  bool closed_ = false;
};

}  // namespace crawler
