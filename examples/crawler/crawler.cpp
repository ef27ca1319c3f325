// crawler: corio's flagship example. Crawls from start URLs, politely, and
// writes one JSON line per URL.
//
//   crawler http://127.0.0.1:8080/ --concurrency 32 --per-host 8 --output pages.jsonl
//   crawler http://127.0.0.1:8080/ --state crawl.db      # Ctrl+C, then the same command resumes
//
// What it shows: a bounded set of worker tasks fed by a corio::Queue; per-host
// Semaphores and politeness delays; robots.txt fetched once per host while
// the other workers wait on an Event; redirects followed hop by hop (each
// target checked like a link) and retries with backoff; pages parsed on the
// thread pool (to_thread) so the loop never stalls;
// the crawl state in SQLite written by a thread fed through a BridgeQueue;
// Ctrl+C handled as a graceful shutdown (RunOptions::request_shutdown):
// no new fetches, the ones in flight finish and are written, then exit 130.
#include <corio/corio.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <typeinfo>
#include <unordered_set>
#include <vector>

#include "links.hpp"
#include "options.hpp"
#include "robots.hpp"
#include "state.hpp"

namespace http = corio::http;
using corio::Task;
using crawler::Options;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Whether a Content-Type names an HTML page. Media types are
// case-insensitive (RFC 9110 §8.3.1): "Text/HTML; charset=UTF-8" is one.
bool is_html(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  std::size_t start = type.find_first_not_of(" \t");
  type.erase(0, start == std::string::npos ? type.size() : start);
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type == "text/html" || type == "application/xhtml+xml";
}

// extract_links over owned arguments, for to_thread: an abandoned call keeps
// its copies alive, never the caller's frame.
crawler::PageLinks parse_links(const http::Url& page, const std::string& html) {
  return crawler::extract_links(page, html);
}

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC
// 3629: no overlong forms, no surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < s.size() && b(i) >= lo && b(i) <= hi;
  };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    // JSON text is UTF-8 (RFC 8259 §8.1): a byte from the network (a header
    // value's obs-text, a Location in an error) that is not part of a
    // well-formed sequence is written as the Latin-1 character it would be.
    if (c >= 0x80) {
      if (const std::size_t n = utf8_sequence(s.substr(i))) {
        out.append(s.substr(i, n));
        i += n - 1;
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

struct Item {
  std::string url;
  int depth = 0;
};

// What fetch_following did besides returning the last response.
struct Hops {
  std::vector<std::string> redirects;  // the URLs that redirected, in order
  // The redirect targets it followed, which it marked seen: fetched as this
  // item's hops, they are never fetched again from a link (see
  // fetch_following). Kept across an item's retries.
  std::vector<std::string> claimed;
  std::string error;  // why the last redirect was not followed, if that was an error
  bool deferred = false;  // not followed: the target's robots.txt is unavailable
  // When the last hop's exchange (head and body) must be over: --timeout
  // after its request started.
  Clock::time_point deadline;
};

// `work` if it ends by `deadline`, else TimeoutError ("request timed out"): at
// the deadline it is cancelled, which closes the response's connection.
template <class T>
Task<T> within(Clock::time_point deadline, Task<T> work) {
  try {
    co_return co_await corio::timeout(deadline - Clock::now()).run(std::move(work));
  } catch (const corio::TimeoutError& e) {
    if (typeid(e) != typeid(corio::TimeoutError)) throw;  // the client's own ReadTimeout says more
  }
  throw corio::TimeoutError("request timed out");
}

// The pause before retry `attempt + 1`: 0.25 s, doubled each time.
std::chrono::duration<double> backoff(int attempt) {
  return std::chrono::duration<double>(0.25 * std::pow(2.0, attempt));
}

// What robots.txt says of a URL.
enum class Robots {
  allowed,
  disallowed,
  // robots.txt could not be read (a 5xx, a timeout, a connection error):
  // RFC 9309 §2.3.1.4 says to assume complete disallow, but that is the
  // state of the server now, not its rules, so it is no final verdict on a
  // page (Crawler::crawl_one).
  unavailable,
};

struct Host {
  std::unique_ptr<corio::Semaphore> slots;
  Clock::time_point next_allowed{};
  double delay = 0;
  std::optional<crawler::RobotsRules> robots;
  std::string robots_unavailable;  // why robots.txt could not be read, if it could not
  bool robots_started = false;
  std::unique_ptr<corio::Event> robots_ready = std::make_unique<corio::Event>();
  int active = 0;
};

// A request's place on its host: one of the host's --per-host slots, taken
// after the host's politeness delay and held until the response's body is
// read. Every request takes one, a redirect's hops included: each hop is a
// request to its own host. The destructor releases it, so a fetch that
// throws or is cancelled gives its slot back.
class HostSlot {
 public:
  HostSlot() = default;
  HostSlot(const HostSlot&) = delete;
  HostSlot& operator=(const HostSlot&) = delete;
  ~HostSlot() { release(); }
  void release() noexcept {
    if (!host_) return;
    --host_->active;
    host_->slots->release();
    host_ = nullptr;
  }
  // Held, after a completed take (Crawler::take_slot).
  void hold(Host& h) noexcept {
    host_ = &h;
    ++h.active;
  }

 private:
  Host* host_ = nullptr;
};

class Crawler {
 public:
  explicit Crawler(const Options& o) : o_(o), queue_() {
    http::ClientOptions co;
    co.max_connections_per_host = static_cast<std::size_t>(o.per_host);
    co.max_connections = static_cast<std::size_t>(o.concurrency) + 8;
    co.read_timeout = std::chrono::duration_cast<corio::Duration>(std::chrono::duration<double>(o.timeout));
    co.connect_timeout = co.read_timeout;
    co.max_redirects = 5;  // robots.txt: RFC 9309 asks for at least five
    co.user_agent = o.user_agent;
    client_ = std::make_unique<http::Client>(co);
    // Pages: crawl_one follows redirects itself, so that every hop passes
    // the host list and robots.txt, as a link would.
    co.follow_redirects = false;
    pages_ = std::make_unique<http::Client>(co);
  }

  Task<int> run();

 private:
  Task<void> open_output_and_state();
  Task<void> enqueue(std::string url, int depth);
  Task<void> worker();
  Task<void> crawl_one(Item item);
  Task<Robots> robots_check(Host& h, const http::Url& u);
  Task<void> take_slot(Host& h, HostSlot& slot);
  Task<void> progress();
  Task<void> emit(const std::string& url, std::string record, const std::vector<std::string>& also_done);
  Task<http::ClientResponse> fetch_following(const std::string& start, HostSlot& slot, Hops& hops);
  void output_failed(int err);
  Host& host_for(const http::Url& u);
  bool follows(const http::Url& u) const { return allowed_hosts_.count(u.host_header()) > 0; }

  const Options& o_;
  std::unique_ptr<http::Client> client_;  // robots.txt
  std::unique_ptr<http::Client> pages_;   // everything else (no automatic redirects)
  corio::Queue<Item> queue_;
  std::unordered_set<std::string> seen_;
  std::unordered_map<std::string, Host> hosts_;
  std::set<std::string> allowed_hosts_;
  std::unique_ptr<crawler::CrawlState> state_;
  FILE* out_ = stdout;
  std::string write_error_;  // the first failed write to out_, if any
  long scheduled_ = 0;  // URLs admitted (counts toward --max-pages)
  long done_ = 0, errors_ = 0, in_flight_ = 0, resumed_done_ = 0;
  long deferred_ = 0;  // left queued in --state: their robots.txt was unavailable
  std::uint64_t bytes_ = 0;
  std::map<int, long> by_status_;
  Clock::time_point started_ = Clock::now();
  bool stopping_ = false;
};

Host& Crawler::host_for(const http::Url& u) {
  Host& h = hosts_[u.origin()];
  if (!h.slots) {
    h.slots = std::make_unique<corio::Semaphore>(o_.per_host);
    h.delay = o_.delay;
  }
  return h;
}

Task<void> Crawler::enqueue(std::string url, int depth) {
  if (scheduled_ >= o_.max_pages || !seen_.insert(url).second) co_return;
  ++scheduled_;
  if (state_) co_await state_->queued(url, depth);
  Item it{std::move(url), depth};
  queue_.put_nowait(std::move(it));
}

// robots.txt is fetched once per host per run, retried like a page (--retries,
// with backoff) after a timeout, a connection error or a 5xx; the host's
// other workers wait for it meanwhile. An answer is final for the run: a 2xx
// gives its rules, a 4xx none (RFC 9309 §2.3.1.3). No answer -- a 5xx or a
// failure after the retries, or a malformed answer -- makes every URL of the
// host `unavailable` for this run (§2.3.1.4: assume complete disallow), and
// for this run only: crawl_one leaves such pages to a later run.
Task<Robots> Crawler::robots_check(Host& h, const http::Url& u) {
  if (!o_.robots) co_return Robots::allowed;
  if (!h.robots_started) {
    h.robots_started = true;
    const std::string robots_url = u.origin() + "/robots.txt";
    crawler::RobotsRules rules = crawler::RobotsRules::allow_all();
    std::string unavailable;
    for (int attempt = 0;; ++attempt) {
      bool retry = false;
      unavailable.clear();
      try {
        auto r = co_await client_->get(robots_url);
        if (r.status >= 200 && r.status < 300) {
          rules = crawler::RobotsRules::parse(r.body, o_.user_agent);
        } else if (r.status >= 500) {
          unavailable = robots_url + " answered " + std::to_string(r.status);
          retry = true;
        }  // 4xx: no rules
      } catch (const corio::TimeoutError& e) {
        unavailable = e.what();
        retry = true;
      } catch (const corio::ConnectionError& e) {
        unavailable = e.what();
        retry = true;
      } catch (const std::exception& e) {
        unavailable = e.what();  // malformed, too many redirects: a retry would not help
      }
      if (!retry || attempt >= o_.retries || stopping_) break;
      co_await corio::sleep(backoff(attempt));
    }
    if (!unavailable.empty()) rules = crawler::RobotsRules::disallow_all();
    if (rules.crawl_delay()) h.delay = std::max(h.delay, *rules.crawl_delay());
    h.robots = std::move(rules);
    h.robots_unavailable = std::move(unavailable);
    h.robots_ready->set();
  }
  co_await h.robots_ready->wait();
  if (!h.robots_unavailable.empty()) co_return Robots::unavailable;
  co_return h.robots->allowed(u.target()) ? Robots::allowed : Robots::disallowed;
}

// Releases what `slot` held, then takes a slot on `h` and waits out the
// host's politeness delay: at most one request per host per `delay` seconds.
// One slot at a time: a redirect from a host to itself would otherwise wait
// for its own slot (with --per-host 1, forever).
Task<void> Crawler::take_slot(Host& h, HostSlot& slot) {
  slot.release();
  co_await h.slots->acquire();
  slot.hold(h);
  if (h.delay > 0) {
    auto now = Clock::now();
    auto when = std::max(now, h.next_allowed);
    h.next_allowed = when + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(h.delay));
    if (when > now) co_await corio::sleep(when - now);
  }
}

// Writes the page's record. A failed write (a full disk, a closed pipe) stops
// the crawl, and the run ends with exit status 1 naming it. With --state the
// record is flushed before the page is marked done there, so a resume
// fetches again every page whose record did not reach the output. The
// redirect targets it fetched (`also_done`) are marked done there with the
// same record, so a resume does not fetch them from a link either.
Task<void> Crawler::emit(const std::string& url, std::string record, const std::vector<std::string>& also_done) {
  if (!write_error_.empty()) co_return;  // the output failed: nothing more is recorded
  errno = 0;
  const bool ok = std::fputs(record.c_str(), out_) >= 0 && std::fputc('\n', out_) != EOF &&
                  (!state_ || std::fflush(out_) == 0) && !std::ferror(out_);
  if (!ok) {
    output_failed(errno);
    co_return;
  }
  if (!state_) co_return;
  for (const std::string& target : also_done) {
    std::string copy = record;
    co_await state_->done(target, std::move(copy), /*admitted=*/false);
  }
  co_await state_->done(url, std::move(record));
}

void Crawler::output_failed(int err) {
  if (!write_error_.empty()) return;
  write_error_ = "cannot write " + (o_.output.empty() ? std::string("the output") : o_.output) + ": " +
                 std::strerror(err ? err : EIO);
  stopping_ = true;  // the workers drop what is queued, so the run ends
}

// GETs `start`, following up to kMaxRedirects redirects. Each target must be
// on a followed host and allowed by its robots.txt, like a link: otherwise
// the redirect itself is the answer and `hops.error` says why. Each hop
// takes its host's slot and politeness delay (take_slot), like any fetch;
// `slot` holds the last hop's when this returns, until the caller has read
// the body. The URLs that redirected go to `hops.redirects`. Throws what the
// client throws, and TooManyRedirects.
//
// Every URL is fetched once, whether a link or a redirect leads to it:
// - a target seen already (queued, in flight or done) is not followed: it
//   has, or will have, a record of its own, and the redirect is this URL's
//   answer (its status, no error);
// - a target not seen yet is marked seen and goes to `hops.claimed`: a link
//   to it found later is not queued, and its content is in this URL's record
//   (its "final_url"). This item's own chain (`start`, its claims, which a
//   retry meets again) is followed, so a loop still ends in TooManyRedirects.
Task<http::ClientResponse> Crawler::fetch_following(const std::string& start, HostSlot& slot, Hops& hops) {
  constexpr int kMaxRedirects = 10;
  std::string at = start;
  for (int hop = 0;; ++hop) {
    {
      const http::Url here = http::Url::parse(at);
      co_await take_slot(host_for(here), slot);
    }
    // --timeout bounds the whole exchange, not only each read: a server that
    // trickles its head or body, a byte within every read timeout, would
    // otherwise hold the worker for as long as it likes.
    hops.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.timeout));
    http::ClientResponse r = co_await within(hops.deadline, pages_->stream("GET", at));
    const int st = r.status;
    const std::string location(r.header("Location"));
    if (!http::is_redirect(st) || location.empty()) co_return r;
    std::optional<http::Url> next;
    try {
      next = r.url.resolve(location).without_fragment();
    } catch (const std::exception&) {
    }
    if (!next || (next->scheme() != "http" && next->scheme() != "https")) {
      hops.error = "invalid Location '" + location + "' in a " + std::to_string(st);
      co_return r;
    }
    const std::string target = next->str();
    hops.redirects.push_back(at);
    if (hop == kMaxRedirects) {
      r.close();
      throw http::TooManyRedirects(st, http::too_many_redirects_message(kMaxRedirects, hops.redirects, target));
    }
    const bool own = target == start ||
                     std::find(hops.claimed.begin(), hops.claimed.end(), target) != hops.claimed.end();
    std::string why;
    bool seen_elsewhere = false;
    if (!follows(*next)) {
      why = "redirect to " + target + ": host not followed";
    } else if (!own && seen_.count(target)) {
      seen_elsewhere = true;
    } else {
      Host& to = host_for(*next);
      const Robots verdict = co_await robots_check(to, *next);
      if (verdict == Robots::disallowed) {
        why = "redirect to " + target + " disallowed by robots.txt";
      } else if (verdict == Robots::unavailable) {
        why = "redirect to " + target + ": robots.txt unavailable (" + to.robots_unavailable + ")";
        hops.deferred = true;
      }
    }
    if (!why.empty() || seen_elsewhere) {
      hops.redirects.pop_back();  // not followed: this response is the answer
      hops.error = std::move(why);
      co_return r;
    }
    // Checked again after the robots.txt wait: another item may have seen it meanwhile.
    if (!own && !seen_.insert(target).second) {
      hops.redirects.pop_back();
      co_return r;
    }
    if (!own) hops.claimed.push_back(target);
    try {
      co_await within(hops.deadline, r.read_body(64 * 1024));  // a small redirect body: the connection can be reused
    } catch (const http::BodyTooLarge&) {
    }
    at = target;
  }
}

Task<void> Crawler::crawl_one(Item item) {
  const auto t0 = Clock::now();
  http::Url url = http::Url::parse(item.url);
  Host& host = host_for(url);
  int status = 0;
  std::string final_url = item.url, content_type, error;
  Hops hops;
  std::size_t links = 0, bytes = 0;
  bool unfinished = false;
  // Kept from this page only by an unreadable robots.txt (its own host's,
  // or a redirect target's): RFC 9309's complete disallow, for now.
  bool deferred = false;
  const Robots verdict = co_await robots_check(host, url);
  if (verdict == Robots::disallowed) {
    error = "disallowed by robots.txt";
  } else if (verdict == Robots::unavailable) {
    error = "robots.txt unavailable (" + host.robots_unavailable + "): not fetched";
    deferred = true;
  } else {
    for (int attempt = 0;; ++attempt) {
      bool retry = false;
      error.clear();
      // Released once the body is read, and before a retry's backoff.
      HostSlot slot;
      try {
        hops.redirects.clear();
        hops.error.clear();
        hops.deferred = false;
        http::ClientResponse r = co_await fetch_following(item.url, slot, hops);
        error = hops.error;
        deferred = hops.deferred;
        status = r.status;
        final_url = r.url.str();
        content_type = std::string(r.header("Content-Type"));
        const bool html = is_html(content_type);
        std::string body;
        bool too_big = false;
        try {
          body = co_await within(hops.deadline, r.read_body(o_.max_bytes));
        } catch (const http::BodyTooLarge&) {
          too_big = true;
        }
        slot.release();  // the host's part is over: the parse below does not hold its slot
        bytes = body.size();
        if (too_big) {
          error = "body larger than " + std::to_string(o_.max_bytes) + " bytes (not parsed)";
        } else if (status >= 500 && attempt < o_.retries) {
          retry = true;
        } else if (status >= 200 && status < 300 && html) {
          // Parsed off the loop, whatever the size: gumbo's cost grows
          // faster than the page (a 200 KB page of nested tags takes
          // seconds), and a stalled loop times out every other fetch. The
          // call owns copies of its arguments: if the shutdown grace ends
          // during the parse, this frame goes while the thread still runs.
          crawler::PageLinks found =
              co_await corio::to_thread(parse_links, r.url, std::move(body));
          links = found.urls.size();
          // Stored even when stopping: this page is recorded as done, so a
          // resumed crawl would never find these links again.
          if (item.depth < o_.max_depth) {
            for (const http::Url& l : found.urls) {
              if (follows(l)) co_await enqueue(l.str(), item.depth + 1);
            }
          }
        }
      } catch (const corio::TimeoutError& e) {
        error = e.what();
        retry = attempt < o_.retries;
      } catch (const corio::ConnectionError& e) {
        error = e.what();
        retry = attempt < o_.retries;
      } catch (const std::exception& e) {
        error = e.what();
      }
      slot.release();  // not held through the backoff
      if (!retry) break;
      if (stopping_) {
        unfinished = true;
        break;
      }
      co_await corio::sleep(backoff(attempt));
    }
  }
  // Stopped while it still had retries: not a result. No record, and --state
  // keeps it in the frontier, so a resume tries it again.
  if (unfinished) co_return;
  // Likewise a page robots.txt kept from us only because it could not be
  // read, with --state: recorded as disallowed, it would stay so for good,
  // as no run would ask for that robots.txt again. Without --state there is
  // no later run, and the record says why the page was not fetched.
  if (deferred && state_) {
    ++deferred_;
    co_return;
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::string rec = "{\"url\":" + json_string(item.url) + ",\"final_url\":" + json_string(final_url) +
                    ",\"status\":" + (status ? std::to_string(status) : std::string("null")) +
                    ",\"depth\":" + std::to_string(item.depth) + ",\"bytes\":" + std::to_string(bytes) +
                    ",\"content_type\":" + (content_type.empty() ? std::string("null") : json_string(content_type)) +
                    ",\"links\":" + std::to_string(links) + ",\"redirects\":[";
  for (std::size_t i = 0; i < hops.redirects.size(); ++i) rec += (i ? "," : "") + json_string(hops.redirects[i]);
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.1f", ms);
  rec += std::string("],\"elapsed_ms\":") + elapsed + ",\"error\":" + (error.empty() ? "null" : json_string(error)) + "}";
  ++done_;
  bytes_ += bytes;
  ++by_status_[status];
  if (!error.empty() || status >= 400) ++errors_;
  co_await emit(item.url, std::move(rec), hops.claimed);
}

Task<void> Crawler::worker() {
  for (;;) {
    Item item;
    bool shut = false;
    try {
      item = co_await queue_.get();
    } catch (const corio::QueueShutDown&) {
      shut = true;
    }
    if (shut) co_return;
    if (stopping_) {  // graceful stop: what is queued stays in the state file
      queue_.task_done();
      continue;
    }
    ++in_flight_;
    std::exception_ptr err;
    try {
      co_await crawl_one(std::move(item));
    } catch (...) {
      err = std::current_exception();
    }
    --in_flight_;
    queue_.task_done();
    if (err) std::rethrow_exception(err);  // a bug or a cancellation, not a bad page
  }
}

Task<void> Crawler::progress() {
  const bool tty = !o_.quiet && isatty(2);
  long last_done = 0;
  auto last_t = Clock::now();
  for (int tick = 0;; ++tick) {
    co_await corio::sleep(tty ? 250ms : 1000ms);
    if (o_.quiet) continue;
    auto now = Clock::now();
    double secs = std::chrono::duration<double>(now - started_).count();
    double rate = static_cast<double>(done_) / std::max(secs, 1e-9);
    if (tty) {
      std::fprintf(stderr, "\r\033[Kdone %ld | in flight %ld | queued %zu | %.0f pages/s | errors %ld", done_,
                   in_flight_, queue_.qsize(), rate, errors_);
    } else if (tick % 5 == 4) {
      double recent = static_cast<double>(done_ - last_done) / std::chrono::duration<double>(now - last_t).count();
      std::fprintf(stderr, "crawler: done %ld, in flight %ld, queued %zu, %.0f pages/s, errors %ld\n", done_, in_flight_,
                   queue_.qsize(), recent, errors_);
      last_done = done_;
      last_t = now;
    }
  }
}

Task<int> Crawler::run() {
  // The start URLs are checked first: a bad one must not cost the records
  // that --output FILE held (opening it truncates it).
  for (const std::string& s : o_.starts) {
    http::Url u = http::Url::parse(s);
    if (u.scheme() != "http" && u.scheme() != "https") throw std::runtime_error("not an http(s) URL: " + s);
    allowed_hosts_.insert(u.host_header());
  }
  crawler::LoadedState loaded;
  if (!o_.state.empty()) {
    const std::string* path = &o_.state;
    auto open = [path] { return crawler::CrawlState::open(*path); };
    state_ = co_await corio::to_thread(open);
    crawler::CrawlState* st = state_.get();
    auto load = [st] { return st->load(); };
    loaded = co_await corio::to_thread(load);
  }
  if (!o_.output.empty()) {
    // A resumed crawl adds to the records of the runs before it; a new one
    // (no --state, or a state file with nothing in it) starts the file anew.
    const bool resuming = !loaded.frontier.empty() || !loaded.done.empty();
    out_ = std::fopen(o_.output.c_str(), resuming ? "a" : "w");
    if (!out_) throw std::runtime_error("cannot write " + o_.output + ": " + std::strerror(errno));
  }
  for (const std::string& h : o_.allow_hosts) allowed_hosts_.insert(h);
  if (!loaded.frontier.empty() || !loaded.done.empty()) {
    // Resume: what was fetched is never fetched again.
    for (const std::string& d : loaded.done) seen_.insert(d);
    resumed_done_ = static_cast<long>(loaded.done.size());
    // The budget counts what the runs before admitted, as this run does: a
    // redirect target fetched on another URL's behalf is not one of them.
    scheduled_ = static_cast<long>(loaded.done_admitted);
    for (auto& f : loaded.frontier) {
      if (seen_.insert(f.url).second) {
        ++scheduled_;
        if (auto u = http::Url::try_parse(f.url)) allowed_hosts_.insert(u->host_header());
        queue_.put_nowait(Item{f.url, f.depth});
      }
    }
    std::fprintf(stderr, "crawler: resuming: %ld fetched before, %zu queued\n", resumed_done_, queue_.qsize());
  } else {
    for (const std::string& s : o_.starts) co_await enqueue(http::Url::parse(s).without_fragment().str(), 0);
  }

  corio::EventLoop& loop = corio::EventLoop::current();
  std::vector<corio::TaskHandle<void>> workers;
  for (int i = 0; i < o_.concurrency; ++i) workers.push_back(corio::create_task(worker(), "crawl-worker"));
  auto prog = corio::create_task(progress(), "progress");
  // Done when every admitted URL was crawled, or a signal asked us to stop.
  auto all_done = corio::create_task([](corio::Queue<Item>& q) -> Task<void> { co_await q.join(); }(queue_));
  auto stop = corio::create_task([](corio::EventLoop& l) -> Task<void> { co_await l.shutdown_event().wait(); }(loop));
  std::vector<corio::TaskHandle<void>> either{all_done, stop};
  // These tasks use this Crawler (its queue, its clients, their streaming
  // responses), which crawl_main destroys as soon as run() ends: none may
  // outlive it. A cancel (the shutdown grace period ended) or a worker's
  // failure leaves the block below with the others still running, so they
  // are cancelled and awaited before the exception goes on. C++ cannot
  // co_await in a catch handler: the exception is kept for after the wait.
  std::exception_ptr failure;
  try {
    co_await corio::wait(std::move(either), corio::FIRST_COMPLETED);
    if (stop.done()) {
      stopping_ = true;  // in-flight fetches finish and are written; queued ones stay in --state
      std::fprintf(stderr, "%scrawler: stopping: finishing %ld fetches in flight\n", isatty(2) ? "\n" : "", in_flight_);
      co_await all_done;
    }
    stop.cancel();
    queue_.shutdown();
    for (auto& w : workers) co_await w;
  } catch (...) {
    failure = std::current_exception();
  }
  std::vector<corio::TaskHandle<void>> rest = workers;
  rest.insert(rest.end(), {prog, all_done, stop});
  for (auto& t : rest) t.cancel();
  for (auto& t : rest) {
    try {
      co_await t;
    } catch (...) {
      // Cancelled, or a second worker failure: the first one is reported.
    }
  }
  if (failure) std::rethrow_exception(failure);
  errno = 0;
  if ((out_ != stdout ? std::fclose(out_) : std::fflush(stdout)) != 0 || (out_ == stdout && std::ferror(stdout))) {
    output_failed(errno);
  }
  if (state_) co_await state_->close();
  if (!write_error_.empty()) throw std::runtime_error(write_error_);
  double secs = std::chrono::duration<double>(Clock::now() - started_).count();
  if (!o_.quiet && isatty(2)) std::fprintf(stderr, "\r\033[K");
  std::string statuses;
  for (auto& [st, n] : by_status_) statuses += " " + (st ? std::to_string(st) : std::string("none")) + ":" + std::to_string(n);
  std::string deferred;
  if (deferred_ > 0) {
    deferred = "; " + std::to_string(deferred_) + " left queued, their robots.txt unavailable (run again to resume)";
  }
  std::fprintf(stderr,
               "crawler: %ld pages in %.2f s (%.0f pages/s), %llu bytes, %ld errors, statuses%s%s%s\n", done_, secs,
               static_cast<double>(done_) / std::max(secs, 1e-9), static_cast<unsigned long long>(bytes_), errors_,
               statuses.c_str(), deferred.c_str(), stopping_ ? " (stopped early; --state resumes)" : "");
  co_return 0;
}

// The crawler (and its client's connections) live and die on the loop.
Task<int> crawl_main(const Options* o) {
  Crawler c(*o);
  co_return co_await c.run();
}

}  // namespace

int main(int argc, char** argv) {
  // A closed output pipe is a failed write (see emit: the crawl stops, exit
  // status 1 naming it), not a silent death by SIGPIPE mid-record.
  std::signal(SIGPIPE, SIG_IGN);
  Options o = crawler::parse_args(argc, argv);
  corio::RunOptions ro;
  ro.on_signal = corio::SignalPolicy::request_shutdown;
  ro.shutdown_grace = std::chrono::milliseconds(static_cast<long>(o.timeout * 1000) + 2000);
  try {
    return corio::run(crawl_main(&o), ro);
  } catch (const corio::SignalExit& e) {
    return e.exit_status();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crawler: %s\n", e.what());
    return 1;
  }
}
