// chat_server: every line a client sends goes to every other client.
//
//   build/examples/chat_server --port 0
//   listening on 127.0.0.1:40111
//   (then: nc 127.0.0.1 40111 in two terminals)
//
// A client's first line is its name (or "/nick NAME" later); "/who" lists
// who is online; "/quit" leaves.
//
// Slow readers: broadcasting never waits for anyone. Each client has an
// outgoing queue of at most --max-queue bytes, emptied by its own sender task,
// which writes what is queued and awaits drain(): the queue fills only while
// that client's socket is full, that is while it is not reading. When a
// message would push a client's queue past the bound, the client is dropped:
// its connection is aborted, the server logs it on stderr and the others are
// told "* NAME was dropped (not reading)". So one stalled client costs a
// bounded amount of memory (its queue, plus at most one queue's worth over its
// StreamWriter's high-water mark) and never delays the rest.
//
// Bursts: readline() returns lines already received without suspending, so a
// client that sends many lines at once would have them all broadcast in one
// step, before any sender task or send could run, and overflow the queues of
// clients that are reading. So a handler yields to the loop after each line
// it relays: the senders and the sockets keep pace with the burst.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <list>
#include <string>
#include <utility>

#include "cli.hpp"

using corio::StreamReader;
using corio::StreamWriter;
using corio::Task;

namespace {

const char* kUsage =
    "usage: chat_server [--host HOST] [--port PORT] [--backend io_uring|epoll] [--max-queue BYTES]\n"
    "A line-based chat room: each line a client sends is relayed to every other client.\n"
    "  --host HOST        address to listen on (default 127.0.0.1)\n"
    "  --port PORT        port (default 8080; 0 picks a free port)\n"
    "  --backend NAME     io_uring (default) or epoll\n"
    "  --max-queue BYTES  per-client outgoing queue; a client past it is dropped (default 65536)\n"
    "Client commands: first line = your name, /nick NAME, /who, /quit.\n"
    "The first line on stdout is \"listening on HOST:PORT\".\n";

// A client-chosen name as the operator's log shows it: control bytes (an
// escape sequence would drive the operator's terminal) and backslashes are
// written as \xNN, so the line is the client's bytes, unambiguously.
std::string printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

struct Member {
  explicit Member(StreamWriter& w) : writer(&w) {}
  std::string name;  // empty until the client named itself: it gets no broadcasts yet
  StreamWriter* writer;
  bool dropped = false;
  std::string queued;  // outgoing lines its sender has not taken yet (at most max_queue bytes)
  corio::Event ready;  // set when lines were queued, or the member was dropped
};

class Room {
 public:
  explicit Room(std::size_t max_queue) : max_queue_(max_queue) {}

  std::list<Member>::iterator join(StreamWriter& w) {
    members_.emplace_back(w);
    return std::prev(members_.end());
  }
  void leave(std::list<Member>::iterator m) { members_.erase(m); }

  // Queues `line` for every named member but `from`, without waiting.
  void broadcast(const std::string& line, const Member* from) {
    for (Member& m : members_) {
      if (&m != from && !m.name.empty()) send(m, line);
    }
  }

  // Queues `line` for `m`, without waiting. A member whose queue would
  // overflow is dropped instead. Writers already closing (the server is
  // shutting down) are skipped: a write after close() throws.
  void send(Member& m, const std::string& line) {
    if (m.dropped || m.writer->is_closing()) return;
    if (m.queued.size() + line.size() > max_queue_) {
      drop(m);
      return;
    }
    m.queued += line;
    m.ready.set();
  }

  std::string who() const {
    std::string s = "* online:";
    for (const Member& m : members_)
      if (!m.dropped && !m.name.empty()) s += " " + m.name;
    return s + "\n";
  }

  // Server shutdown: every connection ends (its reader sees EOF), and a
  // client whose handler starts only now is turned away.
  void close_all() {
    closed_ = true;
    for (Member& m : members_) m.writer->close();
  }
  bool closed() const noexcept { return closed_; }

 private:
  void drop(Member& m) {
    m.dropped = true;
    std::fprintf(stderr, "chat_server: dropped %s (%s): outgoing queue over %zu bytes\n", printable(m.name).c_str(),
                 m.writer->peer_address().to_string().c_str(), max_queue_);
    // Its reader sees EOF, so its handler ends and leaves the room; its
    // sender wakes up and stops.
    m.queued.clear();
    m.ready.set();
    m.writer->abort();
    broadcast("* " + m.name + " was dropped (not reading)\n", &m);
  }

  std::list<Member> members_;
  std::size_t max_queue_;
  bool closed_ = false;
};

std::string chomp(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A member's sender: moves its queued lines to the socket and awaits drain(),
// which blocks while the client does not read; meanwhile broadcasts pile up in
// m.queued, which is what the room bounds. Ends when the member is dropped or
// the connection closes, and is cancelled when the handler ends.
Task<void> send_queued(Member& m) {
  try {
    for (;;) {
      co_await m.ready.wait();
      m.ready.clear();
      if (m.dropped || m.writer->is_closing()) co_return;
      if (m.queued.empty()) continue;
      m.writer->write(std::exchange(m.queued, std::string()));
      co_await m.writer->drain();
    }
  } catch (const corio::ConnectionError&) {
    // The client reset or went away: its handler's reader sees that too and ends.
  }
}

// The handler's read loop, once the client has a name.
Task<void> relay(Room& room, Member& me, StreamReader& reader) {
  try {
    for (;;) {
      std::string line = co_await reader.readline();
      if (line.empty() || me.dropped) break;  // EOF, or we were dropped
      line = chomp(line);
      if (line == "/quit") break;
      if (line == "/who") {
        room.send(me, room.who());
      } else if (line.rfind("/nick ", 0) == 0 && line.size() > 6) {
        room.broadcast("* " + me.name + " is now " + line.substr(6) + "\n", &me);
        me.name = line.substr(6);
      } else {
        room.broadcast(me.name + ": " + line + "\n", &me);
      }
      // One line per loop iteration (see "Bursts" at the top).
      co_await corio::sleep(std::chrono::seconds(0));
    }
  } catch (const corio::LimitOverrun&) {
    room.send(me, "* line too long, bye\n");
  }
}

Task<void> chat_client(Room& room, StreamReader& reader, StreamWriter& writer) {
  if (room.closed()) co_return;  // accepted while the server shut down: the stream just closes
  auto me = room.join(writer);
  // Leaves the room on every exit, a reset peer's exception included. A
  // destructor must not throw (std::terminate): the farewell is best effort.
  struct Leave {
    Room& room;
    std::list<Member>::iterator me;
    ~Leave() {
      bool announce = !me->dropped && !me->name.empty();
      std::string name = me->name;
      room.leave(me);
      try {
        if (announce) room.broadcast("* " + name + " left\n", nullptr);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: announcing that %s left: %s\n", printable(name).c_str(), e.what());
      }
    }
  } leave{room, me};

  writer.write("welcome! your name?\n");
  std::string name;
  try {
    name = chomp(co_await reader.readline());
  } catch (const corio::LimitOverrun&) {
    writer.write("* name too long, bye\n");
    co_return;
  } catch (const corio::ConnectionError&) {
    co_return;  // the client reset before naming itself: nothing to report
  }
  if (name.empty()) co_return;
  me->name = name;
  room.broadcast("* " + name + " joined\n", &*me);
  room.send(*me, room.who());
  std::exception_ptr failure;
  try {
    co_await corio::task_group([&](corio::TaskGroup& tg) -> Task<void> {
      tg.create_task(send_queued(*me));
      co_await relay(room, *me, reader);
      tg.cancel();  // the sender would wait for lines forever
    });
  } catch (const corio::ExceptionGroup& eg) {
    failure = eg.leaves().front();
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);  // reported as it is, not as a group of one...
    } catch (const corio::ConnectionError&) {
      co_return;  // ...unless the client reset or vanished: it just left (Leave tells the room)
    }
  }
  // What the sender had not taken yet goes out as the connection closes.
  if (!me->dropped && !me->queued.empty() && !writer.is_closing()) writer.write(me->queued);
}

Task<int> serve(std::string host, int port, std::size_t max_queue) {
  Room room(max_queue);
  corio::ServerOptions o;
  o.limit = 4096;  // the longest line a client may send
  // The handler is a plain lambda returning the coroutine's Task: coroutine
  // lambdas must not capture (the captures would dangle).
  corio::Server server = co_await corio::start_server(
      [&room](StreamReader& r, StreamWriter& w) { return chat_client(room, r, w); }, host,
      static_cast<std::uint16_t>(port), o);
  std::printf("listening on %s\n", server.addresses().front().to_string().c_str());
  std::fflush(stdout);
  // Async cleanup after a cancellation (Ctrl+C): C++ cannot co_await in a
  // catch handler, so capture the exception, leave the handler, disconnect
  // everyone and wait for their handlers (they use `room`), then rethrow.
  std::exception_ptr stop;
  try {
    co_await server.serve_forever();
  } catch (...) {
    stop = std::current_exception();
  }
  server.close();
  room.close_all();
  co_await server.wait_closed();
  if (stop) std::rethrow_exception(stop);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("chat_server");
  example::Args args(argc, argv, "chat_server", kUsage);
  corio::RunOptions opts;
  std::string host = "127.0.0.1";
  int port = 8080;
  long max_queue = 65536;
  args.parse("host port backend max-queue", "", [&](const std::string& name, const char* v) {
    if (name == "host") host = v;
    else if (name == "port") port = static_cast<int>(args.number(name, v, 0, 65535));
    else if (name == "backend") args.backend(v, opts);
    else if (name == "max-queue") max_queue = args.number(name, v, 1, 1L << 30);
    else args.bad("unknown option --" + name);
  });
  try {
    return corio::run(serve(host, port, static_cast<std::size_t>(max_queue)), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
}
