// http_server.hpp — the HTTP server of `modelreg serve` and `modelreg ui`: httplib's routing behind
// a connection layer of our own that keeps the server up whatever clients do, and the log sink
// both commands write their lines to.
//
// A command makes a GuardedHttpServer with its HttpLimits, adds its routes to it as to any
// httplib::Server (Get, Post, set_error_handler...), calls bind(), then listen_after_bind() on the
// thread that serves, and stop() from another to drain and return.
//
// Thread-safety: LogSink and BodyBudget may be used from any thread. A GuardedHttpServer is
// configured on one thread before listen_after_bind(); stop() may be called from any thread.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace modelreg::cli {

using Clock = std::chrono::steady_clock;

// Lines for stderr. Writing must never stop or kill the server: stderr may be a closed pipe
// (EPIPE; SIGPIPE is ignored), a full pipe nobody reads, a stopped terminal. So request and
// watcher threads only append to a bounded queue (a full queue drops the line, counted); one
// thread writes it out, to a pipe through a non-blocking descriptor of its own, giving up on a
// line that cannot be written within 100 ms (and on the next ones at once, until one goes out).
// The sink is never destroyed (it lives as long as the process, so no line is written into freed
// memory).
class LogSink {
 public:
  static LogSink& instance();

  // Prefixes the time. Never blocks (beyond a mutex held to push one string), never throws.
  void write(std::string_view line) noexcept;
  // Waits up to `limit` for the queue to be written out (at exit).
  void flush(std::chrono::milliseconds limit);
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kMaxLines = 4096;

  explicit LogSink(int fd);
  void run();
  bool write_out(std::string_view text, std::chrono::milliseconds patience) const;

  int fd_;
  bool socket_ = false;
  std::mutex mutex_;  // protects queue_ and writing_
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool stalled_ = false;  // the last line could not be written; used by the writer thread only
  std::atomic<std::uint64_t> dropped_{0};
};

// Bytes of request bodies held at once: a counting semaphore of bytes.
class BodyBudget {
 public:
  explicit BodyBudget(std::size_t capacity) : capacity_(capacity) {}
  // Takes `bytes` (at most the capacity), waiting until `deadline` for room; false when none came.
  bool acquire(std::size_t bytes, Clock::time_point deadline);
  void release(std::size_t bytes);
  std::size_t used() const;
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;  // protects used_
  std::condition_variable cv_;
  std::size_t used_ = 0;
};

// The limits that keep the server up, whatever clients do:
// - a request's line and headers (at most 16 KiB, 100 headers) must arrive within
//   header_timeout_ms of its first byte, else 408 and the connection is closed (431 when
//   larger); a connection idle between requests is closed after idle_timeout_ms;
// - a body must arrive within body_timeout_ms of the end of the headers, else 408; a declared
//   Content-Length over max_body_bytes is answered 413 at once, before any of the body is read;
//   a chunked body is cut off with 413 once it passes the limit;
// - bodies held at once (being received or handled) total at most max_inflight_body_bytes: a
//   request that would pass it waits for room up to body_timeout_ms, then 503;
// - answers must be taken by the client within 30 s (write timeout), else the connection closes;
// - each open connection holds one thread, started as needed up to `threads`; beyond that, new
//   connections wait for one, which the deadlines above bound.
struct HttpLimits {
  std::size_t threads = 256;
  std::size_t max_body_bytes = 8u << 20;
  std::size_t max_inflight_body_bytes = 16u << 20;  // at least max_body_bytes
  int header_timeout_ms = 10'000;
  int body_timeout_ms = 30'000;
  int idle_timeout_ms = 5'000;
};

// What the connection layer tells the command that owns it; each may be empty.
struct ConnectionEvents {
  // A request the layer answered itself (it never reached a route): status, method and target
  // ("" when unknown), and why.
  std::function<void(int status, std::string_view method, std::string_view target, std::string_view why)> refused;
  // +1 when a connection opens, -1 when it closes.
  std::function<void(int delta)> connections;
  // The JSON body of such an answer; empty: {"error": why}.
  std::function<std::string(int status, std::string_view why)> refusal_body;
};

// A request that announced a body, as check_before_body sees it: before any of the body is read.
struct BodyAnnouncement {
  std::string_view method;
  std::string_view path;  // the target without its query
  std::function<std::string(std::string_view lower_case_name)> header;  // "" when absent
  std::string_view remote_address;
};
// What that check answers to refuse the request there: a status, the JSON body, extra headers.
struct EarlyAnswer {
  int status = 400;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

namespace http_detail {
class ConnectionSocket;
struct RequestHead;
struct BodyFraming;
struct Refusal;
}  // namespace http_detail

// httplib's server with our own connection layer in front of its routing: httplib 0.11 gives a
// request's bytes no overall deadline (a client sending a byte every few seconds holds a worker
// for ever), reads (and drops) a whole over-limit body before its 413, caps form-encoded bodies at
// 8 KiB whatever the limit, takes the first of two Content-Length headers, and expands
// compressed bodies past the limit. Here each connection's requests are read under deadlines and
// checked (HttpLimits), then handed to httplib's process_request one at a time, rewritten into a
// plain form it cannot misread (one Content-Length, JSON content type, no Expect). The limits and
// events must outlive the server.
class GuardedHttpServer final : public httplib::Server {
 public:
  GuardedHttpServer(const HttpLimits& limits, ConnectionEvents events);

  // Binds host:port (0: any free port) alone (no SO_REUSEPORT), with one thread per connection
  // up to limits.threads and a full listen backlog; returns the port. Throws modelreg::Error
  // (io_error) naming the address when it cannot.
  int bind(const std::string& host, int port);
  socket_t listening_socket() const { return svr_sock_; }
  const BodyBudget& budget() const noexcept { return budget_; }

  // Requests for which which(method, path) holds are streamed: their body (Content-Length
  // required, else 411; at most max_bytes, else 413 before any of it is read) is read from the
  // socket as the route's httplib::ContentReader asks for it, never held whole and outside the
  // body budget, each read within body_timeout_ms of the last; their answer is written with 30 s
  // of patience per write rather than for the whole answer (large downloads). A route that
  // answers without reading the whole body closes the connection. Call before bind().
  void stream_requests(std::function<bool(std::string_view method, std::string_view path)> which,
                       std::uint64_t max_bytes);
  // Every request that announces a body is shown to `check` once its head has arrived — before any
  // of the body is read, before `100 Continue`, before it takes room in the body budget — and an
  // answer refuses it there: the answer is written, the body is never read and the connection
  // closes. (`modelreg ui` checks the token: a client without a valid one neither sends its upload
  // nor holds the server's body budget.) Call before bind().
  void check_before_body(std::function<std::optional<EarlyAnswer>(const BodyAnnouncement&)> check);
  // Speaks HTTPS (TLS 1.2 or newer, with OpenSSL) with the PEM certificate chain and private key in
  // these files: each connection's handshake must finish within header_timeout_ms, then its
  // requests are read and answered as over plain HTTP. Throws modelreg::Error (invalid_argument)
  // naming the file and OpenSSL's reason when they cannot be used. Call before bind().
  void use_tls(const std::filesystem::path& certificate_chain, const std::filesystem::path& private_key);

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool stopping() const { return svr_sock_ == INVALID_SOCKET; }
  void refuse(http_detail::ConnectionSocket& socket, const http_detail::Refusal& r, const http_detail::RequestHead* head);
  void answer_early(http_detail::ConnectionSocket& socket, const EarlyAnswer& a, const http_detail::RequestHead& head);
  void serve_connection(http_detail::ConnectionSocket& socket);
  bool serve_request(http_detail::ConnectionSocket& socket, const http_detail::RequestHead& head,
                     const http_detail::BodyFraming& framing);
  bool is_streamed(const http_detail::RequestHead& head) const;
  bool serve_streamed(http_detail::ConnectionSocket& socket, const http_detail::RequestHead& head,
                      const http_detail::BodyFraming& framing);
  std::string read_exactly(http_detail::ConnectionSocket& socket, std::size_t n, Clock::time_point deadline);
  std::string read_line(http_detail::ConnectionSocket& socket, Clock::time_point deadline);
  std::string read_chunked(http_detail::ConnectionSocket& socket, Clock::time_point deadline);

  const HttpLimits& limits_;
  const ConnectionEvents events_;
  BodyBudget budget_;
  std::function<bool(std::string_view, std::string_view)> streamed_;  // set before bind()
  std::function<std::optional<EarlyAnswer>(const BodyAnnouncement&)> check_before_body_;  // set before bind()
  std::uint64_t stream_max_bytes_ = 0;
  std::shared_ptr<ssl_ctx_st> tls_;  // set before bind(); none: plain HTTP
};

// The process-wide set-up of a server command, before it starts any thread: SIGPIPE ignored (a
// closed stdout or stderr must not end the server: writes fail with EPIPE instead) and SIGINT and
// SIGTERM blocked in this thread and every thread started after (threads inherit the mask), so
// that serve_until_signalled's thread alone takes them. Returns those stop signals.
sigset_t block_stop_signals();

// Serves `http` (bound) on this thread until SIGINT or SIGTERM, then stops accepting and drains
// the requests in flight; `after_stop` runs once the server has stopped (background services),
// then the log is flushed. Returns the exit status: 0 after a signal or a clean stop, 1 when the
// server failed.
int serve_until_signalled(GuardedHttpServer& http, const sigset_t& stop_signals,
                          const std::function<void()>& after_stop = {});

}  // namespace modelreg::cli
