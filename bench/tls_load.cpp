// TLS load client for bench/tls_bench.sh: plain blocking OpenSSL, no corio,
// so that it loads nginx and corio alike.
//
//   tls_load handshakes --port P [--host H] [--seconds S] [--threads N]
//       N threads, each in a loop: connect, full handshake (no resumption),
//       close_notify, close. Prints {"handshakes_per_s": X, "handshakes": N, "errors": E}.
//   tls_load bulk --port P [--host H] [--path /bulk]
//       One connection: GET path, read the whole body (Content-Length).
//       Prints {"bulk_MBps": X, "bytes": N, "seconds": S}.
//
// The server's certificate is not verified (this measures the server, not
// the client's chain building); TLS 1.3 with the suite and group given by
// --ciphersuites / --groups (defaults: TLS_AES_128_GCM_SHA256, X25519).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string mode;
  std::string host = "127.0.0.1";
  int port = 0;
  double seconds = 5;
  int threads = 8;
  std::string path = "/bulk";
  std::string suites = "TLS_AES_128_GCM_SHA256";
  std::string groups = "X25519";
};

int connect_tcp(const Args& a) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(a.port));
  ::inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

SSL_CTX* make_ctx(const Args& a) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx, a.suites.c_str());
  SSL_CTX_set1_groups_list(ctx, a.groups.c_str());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake is a full one
  return ctx;
}

int handshakes(const Args& a) {
  SSL_CTX* ctx = make_ctx(a);
  std::atomic<long> done{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int i = 0; i < a.threads; ++i) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        int fd = connect_tcp(a);
        if (fd < 0) {
          errors.fetch_add(1);
          continue;
        }
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1) {
          done.fetch_add(1, std::memory_order_relaxed);
          SSL_shutdown(ssl);
        } else {
          errors.fetch_add(1);
          ERR_clear_error();
        }
        SSL_free(ssl);
        ::close(fd);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  stop = true;
  long n = done.load();  // counted at the deadline: stragglers after it do not count
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& t : threads) t.join();
  SSL_CTX_free(ctx);
  std::printf("{\"bench\": \"tls_handshakes\", \"handshakes_per_s\": %.1f, \"handshakes\": %ld, \"errors\": %ld}\n",
              static_cast<double>(n) / secs, n, errors.load());
  return errors.load() > n / 100 ? 1 : 0;
}

int bulk(const Args& a) {
  SSL_CTX* ctx = make_ctx(a);
  int fd = connect_tcp(a);
  if (fd < 0) {
    std::perror("connect");
    return 1;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  auto t0 = Clock::now();
  std::string req = "GET " + a.path + " HTTP/1.1\r\nHost: " + a.host + "\r\nConnection: close\r\n\r\n";
  SSL_write(ssl, req.data(), static_cast<int>(req.size()));
  std::vector<char> buf(256 * 1024);
  std::string head;
  long long body = 0, expected = -1;
  for (;;) {
    int n = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
    if (n <= 0) break;
    if (expected < 0) {
      head.append(buf.data(), static_cast<std::size_t>(n));
      std::size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (head.compare(0, 12, "HTTP/1.1 200") != 0) {
        std::fprintf(stderr, "tls_load: not a 200 response: %s\n", head.substr(0, head.find("\r\n")).c_str());
        return 1;
      }
      const char* cl = strcasestr(head.c_str(), "content-length:");
      if (!cl) {
        std::fprintf(stderr, "no Content-Length in: %s\n", head.substr(0, end).c_str());
        return 1;
      }
      expected = std::atoll(cl + 15);
      body = static_cast<long long>(head.size() - end - 4);
    } else {
      body += n;
    }
    if (expected >= 0 && body >= expected) break;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  SSL_shutdown(ssl);
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  if (body != expected) {
    std::fprintf(stderr, "short body: %lld of %lld bytes\n", body, expected);
    return 1;
  }
  std::printf("{\"bench\": \"tls_bulk\", \"bulk_MBps\": %.1f, \"bytes\": %lld, \"seconds\": %.3f}\n",
              static_cast<double>(body) / secs / 1e6, body, secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (argc < 2) {
    std::fprintf(stderr, "usage: tls_load handshakes|bulk --port P [--host H] [--seconds S] [--threads N] [--path P]\n");
    return 2;
  }
  a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") a.port = std::atoi(v.c_str());
    else if (k == "--host") a.host = v;
    else if (k == "--seconds") a.seconds = std::atof(v.c_str());
    else if (k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--path") a.path = v;
    else if (k == "--ciphersuites") a.suites = v;
    else if (k == "--groups") a.groups = v;
    else {
      std::fprintf(stderr, "tls_load: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.port == 0) {
    std::fprintf(stderr, "tls_load: --port is required\n");
    return 2;
  }
  if (a.mode == "handshakes") return handshakes(a);
  if (a.mode == "bulk") return bulk(a);
  std::fprintf(stderr, "tls_load: unknown mode %s\n", a.mode.c_str());
  return 2;
}
