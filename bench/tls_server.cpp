// The corio side of bench/tls_bench.sh: a TLS server that answers like the
// nginx configuration beside it.
//
//   tls_server --port P --cert C --key K [--backend io_uring|epoll] [--bulk-bytes N]
//              [--ciphersuites S] [--groups G]
//
// Every connection is TLS. A client that only shakes hands and says goodbye
// (close_notify) is let go; a request (headers up to an empty line) is
// answered with "200 OK" and --bulk-bytes bytes of body, as nginx serves
// the file of that size. Prints "listening on HOST:PORT" when ready.
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "corio/corio.hpp"

using namespace corio;

namespace {

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8443;
  std::string cert, key;
  std::string ciphersuites = "TLS_AES_128_GCM_SHA256";
  std::string groups = "X25519";
  std::size_t bulk_bytes = 256u << 20;
  std::string backend = "io_uring";
};

Task<void> serve(StreamReader& r, StreamWriter& w, const Config* cfg, const std::string* body_chunk) {
  try {
    bool request = false;
    for (;;) {
      std::string line = co_await r.readline();
      if (line.empty()) co_return;  // a handshake-only client said goodbye
      request = true;
      if (line == "\r\n") break;
    }
    if (!request) co_return;
    w.write("HTTP/1.1 200 OK\r\nServer: corio\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
            std::to_string(cfg->bulk_bytes) + "\r\nConnection: close\r\n\r\n");
    std::size_t left = cfg->bulk_bytes;
    while (left > 0) {
      std::size_t k = std::min(left, body_chunk->size());
      w.write(std::string_view(body_chunk->data(), k));
      co_await w.drain();
      left -= k;
    }
  } catch (const std::exception&) {
    // A load client that hung up abruptly: nothing to report in a benchmark.
  }
}

Task<int> amain(Config cfg) {
  TlsServerOptions o;
  o.cert_file = cfg.cert;
  o.key_file = cfg.key;
  o.min_version = TlsVersion::tls1_3;
  o.ciphersuites = cfg.ciphersuites;
  std::shared_ptr<TlsContext> ctx = TlsContext::server(o);
  if (!cfg.groups.empty() && SSL_CTX_set1_groups_list(ctx->native_handle(), cfg.groups.c_str()) != 1) {
    throw std::runtime_error("unknown TLS groups " + cfg.groups);
  }
  static const std::string chunk(256 * 1024, 'x');
  ClientHandler h = [c = &cfg](StreamReader& r, StreamWriter& w) { return serve(r, w, c, &chunk); };
  ServerOptions so;
  so.tls = ctx;
  so.backlog = 4096;
  so.write_high_water = 1 << 20;
  so.write_low_water = 256 * 1024;
  Server server = co_await start_server(h, cfg.host, cfg.port, so);
  std::printf("listening on %s:%u\n", cfg.host.c_str(), server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tls_server: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") cfg.host = next();
    else if (a == "--port") cfg.port = static_cast<std::uint16_t>(std::stoi(next()));
    else if (a == "--cert") cfg.cert = next();
    else if (a == "--key") cfg.key = next();
    else if (a == "--ciphersuites") cfg.ciphersuites = next();
    else if (a == "--groups") cfg.groups = next();
    else if (a == "--bulk-bytes") cfg.bulk_bytes = std::stoull(next());
    else if (a == "--backend") cfg.backend = next();
    else {
      std::fprintf(stderr,
                   "usage: tls_server --port P --cert C --key K [--host H] [--backend io_uring|epoll]\n"
                   "                  [--bulk-bytes N] [--ciphersuites S] [--groups G]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (cfg.cert.empty() || cfg.key.empty()) {
    std::fprintf(stderr, "tls_server: --cert and --key are required\n");
    return 2;
  }
  RunOptions ro;
  ro.loop.backend = cfg.backend == "epoll" ? detail::BackendKind::epoll : detail::BackendKind::io_uring;
  try {
    return corio::run(amain(cfg), ro);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_server: %s\n", e.what());
    return 1;
  }
}
