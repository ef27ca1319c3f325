#include "state.hpp"

#include <sqlite3.h>

namespace crawler {

namespace {

[[noreturn]] void fail(const std::string& path, sqlite3* db, const char* what) {
  throw StateError("crawl state " + path + ": " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(const std::string& path, sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "error";
    sqlite3_free(err);
    throw StateError("crawl state " + path + ": " + msg);
  }
}

// A prepared statement, finalized on scope exit.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(const std::string& path, sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) fail(path, db, "prepare");
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
};

}  // namespace

std::unique_ptr<CrawlState> CrawlState::open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw StateError("crawl state " + path + ": cannot open: " + msg);
  }
  try {
    // WAL: readers (a user's sqlite3 shell) do not block the writer; NORMAL
    // sync: a power cut may lose the last batch, never corrupt the file.
    exec(path, db,
         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
         "CREATE TABLE IF NOT EXISTS urls (url TEXT PRIMARY KEY, depth INTEGER NOT NULL,"
         " state INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, record TEXT);"
         "CREATE INDEX IF NOT EXISTS urls_state ON urls(state, seq);");
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  return std::unique_ptr<CrawlState>(new CrawlState(path, db));
}

CrawlState::CrawlState(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {
  writer_ = std::thread([this] { writer_main(); });
}

CrawlState::~CrawlState() {
  close_blocking();
  sqlite3_close(db_);
}

LoadedState CrawlState::load() {
  LoadedState out;
  // The writer thread owns db_ once started; reading through a second
  // connection keeps the two threads from sharing one handle.
  sqlite3* rd = nullptr;
  if (sqlite3_open_v2(path_.c_str(), &rd, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = rd ? sqlite3_errmsg(rd) : "out of memory";
    sqlite3_close(rd);
    throw StateError("crawl state " + path_ + ": cannot open: " + msg);
  }
  try {
    Stmt q(path_, rd, "SELECT url, depth, state FROM urls ORDER BY seq");
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
      std::string url(reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0)));
      // state: 0 queued, 1 fetched, 2 fetched as a redirect target only.
      const int state = sqlite3_column_int(q.s, 2);
      if (state == 0) {
        out.frontier.push_back({std::move(url), sqlite3_column_int(q.s, 1)});
      } else {
        out.done.push_back(std::move(url));
        if (state != 2) ++out.done_admitted;
      }
    }
    if (rc != SQLITE_DONE) fail(path_, rd, "load");
  } catch (...) {
    sqlite3_close(rd);
    throw;
  }
  sqlite3_close(rd);
  return out;
}

// (The Op is a named local, not a braced temporary in the co_await: GCC 12
// destroys those twice.)
corio::Task<void> CrawlState::queued(std::string url, int depth) {
  Op op{std::move(url), {}, depth};
  co_await put(std::move(op));
}

corio::Task<void> CrawlState::done(std::string url, std::string record, bool admitted) {
  if (record.empty()) record = "{}";
  Op op{std::move(url), std::move(record), 0, admitted};
  co_await put(std::move(op));
}

corio::Task<void> CrawlState::put(Op op) {
  try {
    co_await ops_.async_put(std::move(op));
  } catch (const corio::QueueClosed&) {
    // The writer stopped on an error (close() reports which) or we were closed.
    throw StateError("crawl state " + path_ + ": not accepting writes (closed, or its writer failed)");
  }
}

void CrawlState::writer_main() {
  try {
    Stmt ins(path_, db_,
             "INSERT OR IGNORE INTO urls(url, depth, state, seq) VALUES(?1, ?2, 0, ?3)");
    Stmt fin(path_, db_,
             // A URL already in the table was queued, so admitted: state 1
             // whatever ?4 says.
             "INSERT INTO urls(url, depth, state, seq, record) VALUES(?1, 0, ?4, ?3, ?2)"
             " ON CONFLICT(url) DO UPDATE SET state = 1, record = ?2");
    // seq orders the frontier for a resumed crawl; counted here, not by a
    // MAX() per insert (that scans the table).
    sqlite3_int64 seq = 0;
    {
      Stmt mx(path_, db_, "SELECT IFNULL(MAX(seq), 0) FROM urls");
      if (sqlite3_step(mx.s) == SQLITE_ROW) seq = sqlite3_column_int64(mx.s, 0);
    }
    bool open = true;
    while (open) {
      std::optional<Op> op;
      try {
        op = ops_.get();  // blocks
      } catch (const corio::QueueClosed&) {
        break;  // closed and drained: every op was written
      }
      exec(path_, db_, "BEGIN");
      std::size_t n = 0;
      while (op) {
        sqlite3_stmt* s = op->record.empty() ? ins.s : fin.s;
        sqlite3_bind_text(s, 1, op->url.data(), static_cast<int>(op->url.size()), SQLITE_TRANSIENT);
        if (op->record.empty()) {
          sqlite3_bind_int(s, 2, op->depth);
        } else {
          sqlite3_bind_text(s, 2, op->record.data(), static_cast<int>(op->record.size()), SQLITE_TRANSIENT);
          sqlite3_bind_int(s, 4, op->admitted ? 1 : 2);
        }
        sqlite3_bind_int64(s, 3, ++seq);
        if (sqlite3_step(s) != SQLITE_DONE) fail(path_, db_, "write");
        sqlite3_reset(s);
        ++n;
        op.reset();
        if (n == 5000) break;  // bound a transaction
        try {
          op = ops_.try_get();  // whatever else is ready joins this batch
        } catch (const corio::QueueClosed&) {
          open = false;
        }
      }
      exec(path_, db_, "COMMIT");
      written_ += n;
    }
  } catch (const std::exception& e) {
    error_ = e.what();
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    ops_.close();  // producers stop waiting for room
  }
}

void CrawlState::close_blocking() {
  closed_ = true;
  ops_.close();
  if (writer_.joinable()) writer_.join();
}

corio::Task<void> CrawlState::close() {
  if (!closed_) {
    closed_ = true;
    ops_.close();
    // The writer may still be committing its last batch: join off the loop.
    co_await corio::to_thread([this] { writer_.join(); });
  }
  if (!error_.empty()) throw StateError(error_);
}

}  // namespace crawler
