// The connection layer of http_server.hpp: each connection's requests read under deadlines,
// checked, and handed to httplib's routing one at a time.
#include "http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "modelreg/error.hpp"
#include "render.hpp"

namespace modelreg::cli {

using nlohmann::json;

LogSink& LogSink::instance() {
  static LogSink* sink = new LogSink(STDERR_FILENO);
  return *sink;
}

void LogSink::write(std::string_view line) noexcept {
  try {
    std::string text = fmt::format("{} {}\n", utc_timestamp_now(), line);
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kMaxLines) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(text));
    cv_.notify_one();
  } catch (...) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

void LogSink::flush(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  idle_cv_.wait_for(lock, limit, [&] { return queue_.empty() && !writing_; });
}

LogSink::LogSink(int fd) : fd_(fd) {
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
    // A descriptor of our own for the same pipe, non-blocking, so that the shared one (and the
    // processes that share it) keep their flags.
    const int own = ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (own >= 0) fd_ = own;
  } else if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
    socket_ = true;
  }
  std::thread([this] { run(); }).detach();
}

void LogSink::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return !queue_.empty(); });
    std::string line = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    // While the reader is stuck, later lines are tried without waiting (dropped at once), so
    // that the queue does not back up behind 100 ms per line.
    stalled_ = !write_out(line, stalled_ ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100));
    if (stalled_) dropped_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    writing_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

bool LogSink::write_out(std::string_view text, std::chrono::milliseconds patience) const {
  const auto deadline = Clock::now() + patience;
  while (!text.empty()) {
    const ssize_t n = socket_ ? ::send(fd_, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                              : ::write(fd_, text.data(), text.size());
    if (n > 0) {
      text.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left));
      continue;
    }
    return false;  // EPIPE (nobody reads), EBADF (closed), ...: the line is lost, the server goes on
  }
  return true;
}

bool BodyBudget::acquire(std::size_t bytes, Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_until(lock, deadline, [&] { return used_ + bytes <= capacity_; })) return false;
  used_ += bytes;
  return true;
}

void BodyBudget::release(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    used_ -= bytes;
  }
  cv_.notify_all();
}

std::size_t BodyBudget::used() const {
  std::lock_guard lock(mutex_);
  return used_;
}

namespace http_detail {

// httplib's task queue, one thread per open connection: started as needed up to `max` and then
// kept for the next connection. At `max`, a connection waits in the queue for a thread; every
// connection is bounded by the deadlines of HttpLimits, so the queue moves.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(std::size_t max) : max_(max) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      threads_.emplace_back([this] { work(); });
    } else {
      cv_.notify_one();
    }
  }

  // Runs the connections already queued to their end, then joins every thread.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const std::size_t max_;
  std::mutex mutex_;  // protects everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

// One request, as read and checked by the connection layer.
struct RequestHead {
  std::string method;
  std::string target;
  bool http10 = false;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, values trimmed
  std::size_t size = 0;  // bytes of the request line and headers, with the blank line

  std::vector<std::string_view> values(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& [n, v] : headers) {
      if (n == name) out.push_back(v);
    }
    return out;
  }
};

// A request refused by the connection layer: answered `status` with {"error": message}, and the
// connection is closed (what follows on it cannot be trusted to start a request).
struct Refusal {
  int status;
  std::string message;
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::size_t kMaxHeadBytes = 16 << 10;
constexpr std::size_t kTrimAfterBodyBytes = 1 << 20;
constexpr std::size_t kMaxHeaders = 100;

// Parses the request line and headers in `head` (without the blank line). Throws Refusal.
RequestHead parse_head(std::string_view head) {
  RequestHead r;
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    const auto eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    head.remove_prefix(eol == std::string_view::npos ? head.size() : eol + 1);
  }
  if (lines.empty()) throw Refusal{400, "empty request line"};
  const std::string_view line = lines[0];
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2 || sp1 == 0) throw Refusal{400, "malformed request line"};
  r.method = std::string(line.substr(0, sp1));
  r.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const std::string_view version = line.substr(sp2 + 1);
  if (!std::all_of(r.method.begin(), r.method.end(), is_token_char)) throw Refusal{400, "malformed request method"};
  if (r.target.empty() || r.target[0] != '/' ||
      std::any_of(r.target.begin(), r.target.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
    throw Refusal{400, "malformed request target"};
  }
  if (version == "HTTP/1.0") {
    r.http10 = true;
  } else if (version != "HTTP/1.1") {
    throw Refusal{505, fmt::format("HTTP version '{}' is not supported; use HTTP/1.1", version.substr(0, 16))};
  }
  if (lines.size() - 1 > kMaxHeaders) throw Refusal{431, fmt::format("more than {} header fields", kMaxHeaders)};
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view h = lines[i];
    if (!h.empty() && (h[0] == ' ' || h[0] == '\t')) throw Refusal{400, "folded header lines are not accepted"};
    const auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(colon), is_token_char)) {
      throw Refusal{400, "malformed header field"};
    }
    const std::string_view value = trim(h.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return (c < ' ' && c != '\t') || c == 0x7f; })) {
      throw Refusal{400, "a header value holds a control character"};
    }
    r.headers.emplace_back(lower(h.substr(0, colon)), std::string(value));
  }
  return r;
}

// What a request's headers say about its body.
struct BodyFraming {
  bool chunked = false;
  std::size_t length = 0;  // without chunked: the Content-Length (0 when absent)
};

// The body framing of `r`, refusing anything ambiguous (RFC 9112 §6.3): two Content-Length
// fields, Content-Length with Transfer-Encoding, a coding other than chunked, a length that is
// not a plain decimal number, or one over `max_body`; and a content coding, which would be
// expanded past the limit after it was checked.
BodyFraming framing_of(const RequestHead& r, std::size_t max_body) {
  BodyFraming f;
  const auto lengths = r.values("content-length");
  const auto codings = r.values("transfer-encoding");
  if (lengths.size() > 1) throw Refusal{400, "the request has more than one Content-Length header"};
  if (!lengths.empty() && !codings.empty()) throw Refusal{400, "the request has both Content-Length and Transfer-Encoding"};
  if (codings.size() > 1 || (!codings.empty() && lower(codings[0]) != "chunked")) {
    throw Refusal{501, "the only Transfer-Encoding accepted is chunked"};
  }
  for (auto coding : r.values("content-encoding")) {
    if (lower(coding) != "identity") throw Refusal{415, fmt::format("Content-Encoding '{}' is not accepted; send the body uncompressed", coding)};
  }
  f.chunked = !codings.empty();
  if (!lengths.empty()) {
    const std::string_view text = lengths[0];
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || text[0] == '+' || text[0] == '-') {
      if (ec == std::errc::result_out_of_range) {
        throw Refusal{413, fmt::format("request body over the limit of {} bytes (Content-Length: {})", max_body, text.substr(0, 40))};
      }
      throw Refusal{400, fmt::format("Content-Length '{}' is not a number", text.substr(0, 40))};
    }
    if (n > max_body) throw Refusal{413, fmt::format("request body over the limit of {} bytes (Content-Length: {})", max_body, n)};
    f.length = static_cast<std::size_t>(n);
  }
  return f;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

// The socket of one connection: reads into a buffer of bytes not yet consumed (so requests
// pipelined in one write are served one after another), every read and write under a deadline.
//
// With TLS (an SSL object, owned), the socket is non-blocking and every read and write goes through
// OpenSSL under the same deadlines: a read or write that OpenSSL cannot finish yet waits (poll) for
// the direction it names.
class ConnectionSocket {
 public:
  explicit ConnectionSocket(socket_t sock, SSL* ssl = nullptr) : sock_(sock), ssl_(ssl) {
    if (ssl_) ::fcntl(sock_, F_SETFL, ::fcntl(sock_, F_GETFL) | O_NONBLOCK);
  }
  ~ConnectionSocket() {
    if (ssl_) SSL_free(ssl_);
  }
  ConnectionSocket(const ConnectionSocket&) = delete;
  ConnectionSocket& operator=(const ConnectionSocket&) = delete;

  enum class Read { ok, closed, timeout, stopped };

  // The TLS handshake, by `deadline`; false (with why) when it failed or timed out.
  bool accept_tls(Clock::time_point deadline, std::string& why) {
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_accept(ssl_);
      if (rc == 1) return true;
      const int err = SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        char text[256] = "the client closed the connection";
        if (const unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, text, sizeof text);
        why = text;
        return false;
      }
      if (!wait_for(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        why = "the handshake did not finish in time";
        return false;
      }
    }
  }

  // Reads what is there (at least one byte) into buffer(), waiting until `deadline`; `stop` is
  // asked every 50 ms while nothing arrives, and ends the wait when it says so.
  Read read_more(Clock::time_point deadline, const std::function<bool()>& stop = {}) {
    if (ssl_) return read_more_tls(deadline, stop);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Read::timeout;
      pollfd p{sock_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, stop ? 50 : left)));
      if (ready < 0 && errno != EINTR) return Read::closed;
      if (ready <= 0) {
        if (stop && stop()) return Read::stopped;
        continue;
      }
      char chunk[16384];
      const ssize_t n = ::recv(sock_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return Read::ok;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      return Read::closed;
    }
  }

  // Writes all of `data` by `deadline`; false when the client did not take it (or is gone).
  bool write_all(std::string_view data, Clock::time_point deadline) const {
    while (ssl_ && !data.empty()) {
      ERR_clear_error();
      const int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 20)));
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      const int err = SSL_get_error(ssl_, n);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return false;
      if (!wait_for(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) return false;
    }
    while (!data.empty()) {
      const ssize_t n = ::send(sock_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{sock_, POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(left));
        continue;
      }
      return false;
    }
    return true;
  }

  // After an answer that leaves request bytes unread: stop sending, and read and drop what the
  // client still sends (for up to a second, 1 MiB), so that closing does not reset the
  // connection before the client has read the answer.
  void linger_close() {
    close_notify();
    ::shutdown(sock_, SHUT_WR);
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    std::size_t dropped = 0;
    while (dropped < (1u << 20)) {
      buffer_.clear();
      if (read_more(deadline) != Read::ok) break;
      dropped += buffer_.size();
    }
  }

  // With TLS: tells the client the connection ends (close_notify), without waiting for its own.
  void close_notify() {
    if (ssl_ && !notified_) {
      notified_ = true;
      ERR_clear_error();
      SSL_shutdown(ssl_);
    }
  }

  std::string& buffer() noexcept { return buffer_; }
  socket_t fd() const noexcept { return sock_; }

 private:
  // Waits until the socket is ready for `events` or `deadline` passes (false then, or on an error).
  bool wait_for(short events, Clock::time_point deadline, int most_ms = -1) const {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{sock_, events, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(most_ms < 0 ? left : std::min<long long>(left, most_ms)));
      if (ready > 0) return true;
      if (ready < 0 && errno != EINTR) return false;
      if (ready == 0 && most_ms >= 0) return false;
    }
  }

  Read read_more_tls(Clock::time_point deadline, const std::function<bool()>& stop) {
    for (;;) {
      if (Clock::now() >= deadline) return Read::timeout;
      char chunk[16384];
      ERR_clear_error();
      const int n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return Read::ok;
      }
      const int err = SSL_get_error(ssl_, n);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return Read::closed;
      if (!wait_for(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, stop ? 50 : -1)) {
        if (Clock::now() >= deadline) return Read::timeout;
        if (stop && stop()) return Read::stopped;
      }
    }
  }

  socket_t sock_;
  SSL* ssl_;
  bool notified_ = false;
  std::string buffer_;
};

// The address of either end of a connected socket.
void address_of(socket_t sock, bool local, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int rc = local ? ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                       : ::getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  ip = text;
}

// The stream httplib's process_request reads one checked request from (its head, rewritten, and
// its body) and writes its answer to (the socket, under the write deadline).
class CheckedRequestStream final : public httplib::Stream {
 public:
  CheckedRequestStream(ConnectionSocket& socket, std::string head, const std::string& body, Clock::time_point write_deadline)
      : socket_(socket), head_(std::move(head)), body_(body), write_deadline_(write_deadline) {}

  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, std::size_t size) override {
    std::size_t n = 0;
    while (n < size && offset_ < head_.size() + body_.size()) {
      const bool in_head = offset_ < head_.size();
      const std::string_view from = in_head ? std::string_view(head_).substr(offset_)
                                            : std::string_view(body_).substr(offset_ - head_.size());
      const std::size_t k = std::min(size - n, from.size());
      std::copy_n(from.data(), k, ptr + n);
      n += k;
      offset_ += k;
    }
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    return socket_.write_all(std::string_view(ptr, size), write_deadline_) ? static_cast<ssize_t>(size) : -1;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(socket_.fd(), false, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(socket_.fd(), true, ip, port); }
  socket_t socket() const override { return socket_.fd(); }

 private:
  ConnectionSocket& socket_;
  const std::string head_;
  const std::string& body_;
  const Clock::time_point write_deadline_;
  std::size_t offset_ = 0;
};

// The stream of a streamed request (GuardedHttpServer::stream_requests): its head, rewritten, then
// exactly Content-Length body bytes read from the socket as httplib asks for them, each read
// within `read_timeout` of the last; the answer written with the same patience per write, so a
// slow but moving transfer of any size goes through and a stalled one ends.
class StreamedRequestStream final : public httplib::Stream {
 public:
  StreamedRequestStream(ConnectionSocket& socket, std::string head, std::size_t length, std::chrono::milliseconds read_timeout)
      : socket_(socket), head_(std::move(head)), length_(length), patience_(read_timeout) {}

  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, std::size_t size) override {
    if (offset_ < head_.size()) {
      const std::size_t k = std::min(size, head_.size() - offset_);
      std::copy_n(head_.data() + offset_, k, ptr);
      offset_ += k;
      return static_cast<ssize_t>(k);
    }
    if (consumed_ == length_ || size == 0) return 0;
    std::string& buf = socket_.buffer();
    if (buf.empty() && socket_.read_more(Clock::now() + patience_) != ConnectionSocket::Read::ok) {
      failed_ = true;
      return -1;
    }
    const std::size_t k = std::min({size, length_ - consumed_, buf.size()});
    std::copy_n(buf.data(), k, ptr);
    buf.erase(0, k);
    consumed_ += k;
    return static_cast<ssize_t>(k);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    return socket_.write_all(std::string_view(ptr, size), Clock::now() + std::chrono::seconds(30)) ? static_cast<ssize_t>(size)
                                                                                                  : -1;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(socket_.fd(), false, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(socket_.fd(), true, ip, port); }
  socket_t socket() const override { return socket_.fd(); }

  // Whether the whole body was read (else what is left of it is still on the connection).
  bool body_consumed() const noexcept { return consumed_ == length_ && !failed_; }

 private:
  ConnectionSocket& socket_;
  const std::string head_;
  const std::size_t length_;
  const std::chrono::milliseconds patience_;
  std::size_t offset_ = 0;
  std::size_t consumed_ = 0;
  bool failed_ = false;
};

}  // namespace http_detail

using namespace http_detail;

GuardedHttpServer::GuardedHttpServer(const HttpLimits& limits, ConnectionEvents events)
    : limits_(limits), events_(std::move(events)), budget_(limits.max_inflight_body_bytes) {}

int GuardedHttpServer::bind(const std::string& host, int port) {
  const std::size_t threads = limits_.threads;
  new_task_queue = [threads] { return new ConnectionThreads(threads); };
  // This layer refuses bodies over their limit before httplib sees them; httplib's own check must
  // let a streamed body of up to stream_max_bytes_ through.
  set_payload_max_length(std::max<std::uint64_t>(limits_.max_body_bytes, stream_max_bytes_));
  // httplib's default also sets SO_REUSEPORT, which would let a second server share a port in use
  // (and split the traffic); take the port alone, or fail clearly.
  set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  int bound = port;
  if (bound == 0) {
    bound = bind_to_any_port(host);
  } else if (!bind_to_port(host, bound)) {
    bound = -1;
  }
  if (bound < 0) {
    throw Error(Errc::io_error, fmt::format("cannot listen on {}:{} (in use, or not an address of this machine); "
                                            "choose another --port or --host",
                                            host, port));
  }
  // httplib listens with a backlog of 5: a burst of connections would wait for SYN retries.
  ::listen(svr_sock_, SOMAXCONN);
  return bound;
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  if (events_.connections) events_.connections(+1);
  int yes = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  SSL* ssl = tls_ ? SSL_new(tls_.get()) : nullptr;
  if (ssl) SSL_set_fd(ssl, sock);
  ConnectionSocket socket(sock, ssl);
  try {
    std::string why;
    if (tls_ && !ssl) {
      LogSink::instance().write("TLS: cannot make a connection's SSL object (out of memory?)");
    } else if (ssl && !socket.accept_tls(Clock::now() + std::chrono::milliseconds(limits_.header_timeout_ms), why)) {
      std::string ip;
      int port = 0;
      address_of(sock, false, ip, port);
      LogSink::instance().write(fmt::format("TLS handshake with {}:{} failed: {}", ip, port, why));
    } else {
      serve_connection(socket);
      socket.close_notify();
    }
  } catch (const std::exception& e) {
    LogSink::instance().write(fmt::format("connection ended: {}", e.what()));
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  if (events_.connections) events_.connections(-1);
  return true;
}

void GuardedHttpServer::refuse(ConnectionSocket& socket, const Refusal& r, const RequestHead* head) {
  if (events_.refused) events_.refused(r.status, head ? head->method : "", head ? head->target : "", r.message);
  const std::string body = events_.refusal_body ? events_.refusal_body(r.status, r.message) : json{{"error", r.message}}.dump();
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}"
                                "Connection: close\r\n\r\n{}",
                                r.status, reason_phrase(r.status), body.size(),
                                r.status == 503 ? "Retry-After: 1\r\n" : "", body);
  if (socket.write_all(out, Clock::now() + std::chrono::seconds(5))) socket.linger_close();
}

void GuardedHttpServer::answer_early(ConnectionSocket& socket, const EarlyAnswer& a, const RequestHead& head) {
  if (events_.refused) events_.refused(a.status, head.method, head.target, "refused before its body was read");
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", a.status,
                                reason_phrase(a.status), a.body.size());
  for (const auto& [name, value] : a.headers) out += fmt::format("{}: {}\r\n", name, value);
  out += "Connection: close\r\n\r\n" + a.body;
  if (socket.write_all(out, Clock::now() + std::chrono::seconds(5))) socket.linger_close();
}

void GuardedHttpServer::serve_connection(ConnectionSocket& socket) {
  std::string& buf = socket.buffer();
  const auto idle = std::chrono::milliseconds(limits_.idle_timeout_ms);
  for (;;) {
    // The next request's first byte: within the idle timeout, unless the server stops.
    if (buf.empty() && socket.read_more(Clock::now() + idle, [this] { return stopping(); }) != ConnectionSocket::Read::ok) {
      return;
    }
    // Its line and headers: within the header deadline of that first byte.
    const auto header_deadline = Clock::now() + std::chrono::milliseconds(limits_.header_timeout_ms);
    std::size_t head_end = std::string::npos, blank = 0;
    for (;;) {
      // A request may be preceded by empty lines (RFC 9112 §2.2).
      while (!buf.empty() && (buf[0] == '\r' || buf[0] == '\n')) buf.erase(0, 1);
      if (const auto crlf = buf.find("\r\n\r\n"); crlf != std::string::npos) {
        head_end = crlf, blank = 4;
      }
      if (const auto lf = buf.find("\n\n"); lf != std::string::npos && lf < head_end) head_end = lf, blank = 2;
      if (head_end != std::string::npos) break;
      if (buf.size() > kMaxHeadBytes) {
        return refuse(socket, {431, fmt::format("the request line and headers are over {} bytes", kMaxHeadBytes)}, nullptr);
      }
      const auto got = socket.read_more(header_deadline, [this] { return stopping(); });
      if (got == ConnectionSocket::Read::timeout) {
        if (buf.empty()) return;
        return refuse(socket, {408, fmt::format("the request headers did not arrive within {} ms", limits_.header_timeout_ms)},
                      nullptr);
      }
      if (got != ConnectionSocket::Read::ok) return;
    }
    if (head_end > kMaxHeadBytes) {
      return refuse(socket, {431, fmt::format("the request line and headers are over {} bytes", kMaxHeadBytes)}, nullptr);
    }
    RequestHead head;
    BodyFraming framing;
    try {
      head = parse_head(std::string_view(buf).substr(0, head_end));
      head.size = head_end + blank;
      framing = framing_of(head, is_streamed(head) ? stream_max_bytes_ : limits_.max_body_bytes);
      const auto expect = head.values("expect");
      if (!expect.empty() && (expect.size() > 1 || lower(expect[0]) != "100-continue")) {
        throw Refusal{417, "the only expectation accepted is 100-continue"};
      }
    } catch (const Refusal& r) {
      return refuse(socket, r, head.method.empty() ? nullptr : &head);
    }
    buf.erase(0, head.size);
    if (check_before_body_ && (framing.chunked || framing.length > 0)) {
      const std::string_view target = head.target;
      std::string ip;
      int port = 0;
      address_of(socket.fd(), false, ip, port);
      const BodyAnnouncement announced{head.method, target.substr(0, target.find('?')),
                                       [&head](std::string_view name) {
                                         const auto values = head.values(name);
                                         return values.empty() ? std::string() : std::string(values.front());
                                       },
                                       ip};
      if (const auto answer = check_before_body_(announced)) return answer_early(socket, *answer, head);
    }
    if (!(is_streamed(head) ? serve_streamed(socket, head, framing) : serve_request(socket, head, framing))) return;
  }
}

// Reads the body of `head`, hands the request to httplib and writes its answer. Returns
// whether the connection stays open for another request.
bool GuardedHttpServer::serve_request(ConnectionSocket& socket, const RequestHead& head, const BodyFraming& framing) {
  const bool has_body = framing.chunked || framing.length > 0;
  const auto body_deadline = Clock::now() + std::chrono::milliseconds(limits_.body_timeout_ms);
  // Room for the body among those held at once (a chunked body may grow to the limit).
  const std::size_t reserved = framing.chunked ? limits_.max_body_bytes : framing.length;
  if (has_body && !budget_.acquire(reserved, body_deadline)) {
    refuse(socket, {503, fmt::format("the server holds {} bytes of request bodies, its limit; retry", budget_.capacity())},
           &head);
    return false;
  }
  struct Release {
    BodyBudget& budget;
    std::size_t bytes;
    ~Release() {
      if (bytes) budget.release(bytes);
    }
  } release{budget_, has_body ? reserved : 0};

  if (has_body && !head.values("expect").empty() && !head.http10) {
    if (!socket.write_all("HTTP/1.1 100 Continue\r\n\r\n", body_deadline)) return false;
  }
  bool keep = false;
  std::size_t body_size = 0;
  {
    std::string body;
    try {
      body = framing.chunked ? read_chunked(socket, body_deadline) : read_exactly(socket, framing.length, body_deadline);
    } catch (const Refusal& r) {
      refuse(socket, r, &head);
      return false;
    }

    const auto connection = head.values("connection");
    bool keep_alive = !head.http10;
    for (auto c : connection) {
      const std::string v = lower(c);
      if (v.find("close") != std::string::npos) keep_alive = false;
      if (head.http10 && v.find("keep-alive") != std::string::npos) keep_alive = true;
    }
    // The request as httplib should see it: HTTP/1.1 (this layer keeps HTTP/1.0's connection
    // rules), the client's other headers, and a body of exactly Content-Length bytes of JSON
    // whatever content type the client named (curl -d says form-encoded).
    std::string rewritten = fmt::format("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (const auto& [name, value] : head.headers) {
      if (name == "content-length" || name == "transfer-encoding" || name == "expect" || name == "content-type" ||
          name == "connection" || name == "content-encoding") {
        continue;
      }
      rewritten += fmt::format("{}: {}\r\n", name, value);
    }
    if (has_body) rewritten += "Content-Type: application/json\r\n";
    rewritten += fmt::format("Content-Length: {}\r\n\r\n", body.size());
    const bool close = !keep_alive || stopping();
    CheckedRequestStream stream(socket, std::move(rewritten), body, Clock::now() + std::chrono::seconds(30));
    bool closed_by_request = false;
    const bool written = process_request(stream, close, closed_by_request, nullptr);
    keep = written && !close && !closed_by_request;
    body_size = body.size();
  }
  // The body, its copy in httplib's request and the parsed JSON are freed by now; a large one
  // leaves free pages in this thread's malloc arena, handed back here.
  if (body_size >= kTrimAfterBodyBytes) ::malloc_trim(0);
  return keep;
}

bool GuardedHttpServer::is_streamed(const RequestHead& head) const {
  if (!streamed_) return false;
  const std::string_view target = head.target;
  return streamed_(head.method, target.substr(0, target.find('?')));
}

bool GuardedHttpServer::serve_streamed(ConnectionSocket& socket, const RequestHead& head, const BodyFraming& framing) {
  if (framing.chunked) {
    refuse(socket, {411, "this endpoint streams its body and needs its Content-Length; send it without chunked encoding"},
           &head);
    return false;
  }
  const auto patience = std::chrono::milliseconds(limits_.body_timeout_ms);
  if (framing.length > 0 && !head.values("expect").empty() && !head.http10) {
    if (!socket.write_all("HTTP/1.1 100 Continue\r\n\r\n", Clock::now() + patience)) return false;
  }
  bool keep_alive = !head.http10;
  for (auto c : head.values("connection")) {
    const std::string v = lower(c);
    if (v.find("close") != std::string::npos) keep_alive = false;
    if (head.http10 && v.find("keep-alive") != std::string::npos) keep_alive = true;
  }
  // As serve_request rewrites it, but with the client's content type (a multipart boundary).
  std::string rewritten = fmt::format("{} {} HTTP/1.1\r\n", head.method, head.target);
  for (const auto& [name, value] : head.headers) {
    if (name == "content-length" || name == "transfer-encoding" || name == "expect" || name == "connection" ||
        name == "content-encoding") {
      continue;
    }
    rewritten += fmt::format("{}: {}\r\n", name, value);
  }
  rewritten += fmt::format("Content-Length: {}\r\n\r\n", framing.length);
  const bool close = !keep_alive || stopping();
  StreamedRequestStream stream(socket, std::move(rewritten), framing.length, patience);
  bool closed_by_request = false;
  const bool written = process_request(stream, close, closed_by_request, nullptr);
  if (!stream.body_consumed()) {
    // The route answered without reading the whole body (a refusal): what is left of it is
    // still coming, so the connection cannot carry another request.
    if (written) socket.linger_close();
    return false;
  }
  return written && !close && !closed_by_request;
}

void GuardedHttpServer::use_tls(const std::filesystem::path& certificate_chain, const std::filesystem::path& private_key) {
  auto openssl_error = [](std::string_view what) {
    char text[256] = "unknown OpenSSL error";
    if (const unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return Error(Errc::invalid_argument, fmt::format("{}: {}", what, text));
  };
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) throw openssl_error("cannot set up TLS");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certificate_chain.c_str()) != 1) {
    throw openssl_error(fmt::format("cannot use '{}' as the TLS certificate (a PEM certificate chain)", certificate_chain.string()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw openssl_error(fmt::format("cannot use '{}' as the TLS private key (a PEM key)", private_key.string()));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    throw openssl_error(fmt::format("the key '{}' does not match the certificate '{}'", private_key.string(),
                                    certificate_chain.string()));
  }
  tls_ = std::shared_ptr<SSL_CTX>(ctx.release(), SSL_CTX_free);
}

void GuardedHttpServer::check_before_body(std::function<std::optional<EarlyAnswer>(const BodyAnnouncement&)> check) {
  check_before_body_ = std::move(check);
}

void GuardedHttpServer::stream_requests(std::function<bool(std::string_view method, std::string_view path)> which,
                                        std::uint64_t max_bytes) {
  streamed_ = std::move(which);
  stream_max_bytes_ = max_bytes;
}

std::string GuardedHttpServer::read_exactly(ConnectionSocket& socket, std::size_t n, Clock::time_point deadline) {
  std::string& buf = socket.buffer();
  buf.reserve(n);  // n is at most the body limit: grown once, not by doubling
  while (buf.size() < n) {
    const auto got = socket.read_more(deadline);
    if (got == ConnectionSocket::Read::timeout) {
      throw Refusal{408, fmt::format("the request body did not arrive within {} ms ({} of {} bytes came)",
                                     limits_.body_timeout_ms, buf.size(), n)};
    }
    if (got != ConnectionSocket::Read::ok) {
      throw Refusal{400, fmt::format("the connection closed after {} of {} body bytes", buf.size(), n)};
    }
  }
  if (buf.size() == n) return std::exchange(buf, std::string());  // the usual case: no copy
  std::string body = buf.substr(0, n);
  buf.erase(0, n);
  return body;
}

// A line of a chunked body (without its CRLF), at most 4 KiB.
std::string GuardedHttpServer::read_line(ConnectionSocket& socket, Clock::time_point deadline) {
  std::string& buf = socket.buffer();
  for (;;) {
    if (const auto eol = buf.find('\n'); eol != std::string::npos) {
      std::string line = buf.substr(0, eol);
      buf.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buf.size() > 4096) throw Refusal{400, "a chunk header of the body is over 4096 bytes"};
    const auto got = socket.read_more(deadline);
    if (got == ConnectionSocket::Read::timeout) {
      throw Refusal{408, fmt::format("the request body did not arrive within {} ms", limits_.body_timeout_ms)};
    }
    if (got != ConnectionSocket::Read::ok) throw Refusal{400, "the connection closed in the middle of the body"};
  }
}

std::string GuardedHttpServer::read_chunked(ConnectionSocket& socket, Clock::time_point deadline) {
  std::string body;
  for (;;) {
    const std::string line = read_line(socket, deadline);
    const std::string_view size_text = trim(std::string_view(line).substr(0, line.find(';')));
    std::uint64_t size = 0;
    const auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (size_text.empty() || end != size_text.data() + size_text.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      throw Refusal{400, "malformed chunk size in the body"};
    }
    if (ec == std::errc::result_out_of_range || size > limits_.max_body_bytes - body.size()) {
      throw Refusal{413, fmt::format("request body over the limit of {} bytes", limits_.max_body_bytes)};
    }
    if (size == 0) break;
    body += read_exactly(socket, static_cast<std::size_t>(size), deadline);
    if (!read_line(socket, deadline).empty()) throw Refusal{400, "a chunk of the body is longer than its size"};
  }
  while (!read_line(socket, deadline).empty()) {
  }  // trailer fields, ignored
  return body;
}

sigset_t block_stop_signals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

int serve_until_signalled(GuardedHttpServer& http, const sigset_t& stop_signals, const std::function<void()>& after_stop) {
  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    signalled = true;
    LogSink::instance().write(
        fmt::format("received {}; draining in-flight requests", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    http.stop();
  });
  const bool clean = http.listen_after_bind();
  if (!signalled) ::kill(::getpid(), SIGTERM);  // wake the waiter (the signal is blocked, so it is queued)
  waiter.join();
  if (after_stop) after_stop();
  LogSink::instance().write("stopped");
  LogSink::instance().flush(std::chrono::seconds(1));
  return clean || signalled ? 0 : 1;
}

}  // namespace modelreg::cli
