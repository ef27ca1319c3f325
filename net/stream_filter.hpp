#pragma once
// detail::StreamFilter: a layer between a StreamConn's socket and its user
// buffers (TLS, net/tls.hpp). With a filter attached:
// - received bytes land in the filter's raw_input() instead of the reader's
//   buffer, and on_input() decodes them into conn.rbuf();
// - write() hands the user's bytes to the filter, which encodes them and
//   queues the result with conn.append_raw() + conn.flush_raw();
// - write_eof() and close() let the filter queue its goodbye first.
// A connection without a filter never touches any of this: the plain path
// costs one pointer test per read completion and per write().
//
// Every hook runs on the loop thread, from a completion callback or a user
// call; none may resume a coroutine (they only change buffers; the
// connection wakes its waiters afterwards).
#include <cstddef>

#include "net/byte_buffer.hpp"

namespace corio::detail {

class StreamConn;

class StreamFilter {
 public:
  virtual ~StreamFilter() = default;
  // Where the connection's receives put raw bytes. It follows ByteBuffer's
  // rule: untouched by the filter while a plain recv is in flight (the
  // filter consumes it only inside on_input, which runs at completions).
  virtual ByteBuffer& raw_input() noexcept = 0;
  // New raw bytes were appended to raw_input(), or the raw stream ended
  // (conn.raw_eof()). Decode what can be decoded into conn.rbuf(); on a
  // protocol error call conn.fail_read(), and conn.fail_write() too if
  // nothing more can be encoded (so drain() reports it); on the protocol's
  // own EOF call conn.mark_eof().
  virtual void on_input(StreamConn& conn) noexcept = 0;
  // Encode user bytes and queue them (append_raw + flush_raw). Called only
  // when the plain path would have queued them.
  virtual void write(StreamConn& conn, const char* p, std::size_t n) = 0;
  // write_eof(): queue the protocol's end-of-data (before the socket's FIN).
  virtual void on_write_eof(StreamConn& conn) noexcept = 0;
  // close() (not abort()): queue the protocol's goodbye; it is flushed
  // before the socket closes.
  virtual void on_close(StreamConn& conn) noexcept = 0;
  // A read or a write failed because of the filter (fail_read,
  // fail_write): throw its error. Returns if the failure was the socket's,
  // not the filter's.
  virtual void rethrow_error() const = 0;
};

}  // namespace corio::detail
