// UDP capture thread: recvmmsg batches -> datagram parser -> FrameRing.
#include "wdp/capture.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <system_error>
#include <unordered_map>

#include "wdp/bytes.hpp"

namespace wdp {

namespace {

class RelayDatagramParser : public DatagramParser {
 public:
  bool parse(const uint8_t* data, size_t len, CsiFrame& frame) override {
    ++stats_.records;
    stats_.bytes += len;
    if (len < kHeader) return reject();
    const uint32_t n_sub = bytes::le32(data);
    const uint16_t n_rx = bytes::le16(data + 4), n_tx = bytes::le16(data + 6);
    // CsiFrame keeps n_sub in 16 bits; a zero dimension is no frame.
    if (n_sub == 0 || n_sub > 0xffff || n_rx == 0 || n_tx == 0) return reject();
    const size_t n = static_cast<size_t>(n_sub) * n_rx * n_tx;
    if (len != kHeader + n * sizeof(cf32)) return reject();
    frame.resize(static_cast<uint16_t>(n_sub), n_rx, n_tx);
    frame.meta.timestamp = bytes::lef64(data + 8);
    const uint8_t* p = data + kHeader;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    std::memcpy(frame.csi.data(), p, n * sizeof(cf32));
#else
    for (size_t i = 0; i < n; ++i) frame.csi[i] = {bytes::lef32(p + 8 * i), bytes::lef32(p + 8 * i + 4)};
#endif
    ++stats_.frames;
    return true;
  }

 private:
  static constexpr size_t kHeader = 16;
  bool reject() {
    ++stats_.malformed;
    return false;
  }
};

// Single-writer counters: a plain load + store is enough and avoids a locked add per packet.
void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string address_name(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  return sa->sa_family == AF_INET6 ? "[" + std::string(host) + "]:" + serv : std::string(host) + ":" + serv;
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

std::unique_ptr<DatagramParser> make_relay_datagram_parser() { return std::make_unique<RelayDatagramParser>(); }

std::unique_ptr<DatagramParser> make_capture_parser(const std::string& format) {
  if (format == "raw") return make_relay_datagram_parser();
  return make_datagram_parser(format);
}

UdpCapture::UdpCapture(CaptureConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.batch == 0 || cfg_.batch > 1024) throw std::invalid_argument("batch must be 1..1024");
  if (cfg_.max_datagram < 64 || cfg_.max_datagram > 65536)
    throw std::invalid_argument("max_datagram must be 64..65536");
  parser_ = make_capture_parser(cfg_.format);
  ring_ = std::make_shared<FrameRing>(cfg_.capacity, cfg_.shape);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(cfg_.port);
  if (int rc = getaddrinfo(cfg_.host.empty() ? nullptr : cfg_.host.c_str(), port.c_str(), &hints, &found))
    throw std::invalid_argument("cannot resolve '" + cfg_.host + "': " + gai_strerror(rc));
  int err = 0;
  for (addrinfo* ai = found; ai && fd_ < 0; ai = ai->ai_next) {
    fd_ = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd_ < 0) {
      err = errno;
      continue;
    }
    if (bind(fd_, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      close(fd_);
      fd_ = -1;
    }
  }
  freeaddrinfo(found);
  if (fd_ < 0) {
    errno = err;
    throw_errno("cannot bind UDP " + cfg_.host + ":" + port);
  }

  // SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN); otherwise take what is allowed.
  int want = cfg_.rcvbuf_bytes;
  if (want > 0 && setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  socklen_t sl = sizeof rcvbuf_actual_;
  getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_actual_, &sl);
  int on = 1;
  setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);  // kernel arrival time per datagram

  sockaddr_storage bound{};
  sl = sizeof bound;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &sl);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int e = errno;
    close(fd_);
    errno = e;
    throw_errno("eventfd");
  }
}

UdpCapture::~UdpCapture() {
  stop();
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void UdpCapture::start() {
  if (thread_.joinable()) {
    if (running()) return;
    thread_.join();  // the previous thread ended on its own (socket error)
  }
  uint64_t drained;
  while (read(wake_fd_, &drained, sizeof drained) > 0) {}
  stop_.store(false, std::memory_order_release);
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { receive_loop(); });
}

void UdpCapture::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  thread_.join();
  running_.store(false, std::memory_order_release);
  notify_waiters();
}

CaptureStats UdpCapture::stats() const {
  CaptureStats s;
  const auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  s.packets = r(counters_.packets);
  s.bytes = r(counters_.bytes);
  s.frames = r(counters_.frames);
  s.malformed = r(counters_.malformed);
  s.skipped = r(counters_.skipped);
  s.shape_mismatch = r(counters_.shape_mismatch);
  s.unknown_sources = r(counters_.unknown_sources);
  s.dropped_oldest = ring_->dropped_oldest();
  s.dropped_incoming = ring_->dropped_incoming();
  s.dropped_overflow = s.dropped_oldest + s.dropped_incoming;
  return s;
}

std::vector<std::string> UdpCapture::sources() const {
  std::lock_guard<std::mutex> lk(sources_mu_);
  return source_names_;
}

int32_t UdpCapture::source_id(const void* addr, unsigned len) {
  // Routers are few and send in bursts: compare with the last sender before searching.
  const char* a = static_cast<const char*>(addr);
  if (last_source_ >= 0) {
    const std::string& k = source_keys_[static_cast<size_t>(last_source_)];
    if (k.size() == len && std::memcmp(k.data(), a, len) == 0) return last_source_;
  }
  for (size_t i = 0; i < source_keys_.size(); ++i) {
    const std::string& k = source_keys_[i];
    if (k.size() == len && std::memcmp(k.data(), a, len) == 0) return last_source_ = static_cast<int32_t>(i);
  }
  if (source_keys_.size() >= kMaxSources) return -1;
  std::string name = address_name(static_cast<const sockaddr*>(addr), len);
  std::lock_guard<std::mutex> lk(sources_mu_);
  source_keys_.emplace_back(a, len);
  source_names_.push_back(std::move(name));
  return last_source_ = static_cast<int32_t>(source_keys_.size() - 1);
}

void UdpCapture::notify_waiters() {
  // Pairs with the fence in wait_for(): either the waiter sees the new head or we see the waiter.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (waiting_.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<std::mutex> lk(wait_mu_);
    wait_cv_.notify_all();
  }
}

bool UdpCapture::wait_for(size_t n, double timeout_s) {
  n = std::min(n, ring_->capacity());  // a full ring is the most that can ever be waiting
  if (ring_->available() >= n) return true;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(std::max(0.0, std::min(timeout_s, 1e7))));
  std::unique_lock<std::mutex> lk(wait_mu_);
  waiting_.fetch_add(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool ok = false;
  for (;;) {
    if (ring_->available() >= n) { ok = true; break; }
    if (!running()) break;  // nothing more will arrive
    if (wait_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      ok = ring_->available() >= n;
      break;
    }
  }
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  return ok;
}

void UdpCapture::receive_loop() {
  const unsigned batch = cfg_.batch;
  const size_t dgram = cfg_.max_datagram;
  constexpr size_t kCtrl = CMSG_SPACE(sizeof(timespec)) + 64;
  std::vector<uint8_t> buf(batch * dgram);
  std::vector<mmsghdr> msgs(batch);
  std::vector<iovec> iov(batch);
  std::vector<sockaddr_storage> addrs(batch);
  std::vector<uint64_t> ctrl(batch * ((kCtrl + 7) / 8));  // uint64_t: cmsg alignment
  const FrameShape shape = ring_->shape();
  CsiFrame frame;

  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stop_.load(std::memory_order_acquire)) {
    // The timeout is only a safety net; stop() wakes us through the eventfd.
    const int pr = poll(fds, 2, 500);
    if (pr < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (pr <= 0 || !(fds[0].revents & POLLIN)) continue;
    // Drain the socket batch by batch; stop between batches when asked.
    for (;;) {
      for (unsigned i = 0; i < batch; ++i) {
        iov[i] = {buf.data() + i * dgram, dgram};
        msgs[i].msg_hdr = msghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        msgs[i].msg_hdr.msg_control = ctrl.data() + i * ((kCtrl + 7) / 8);
        msgs[i].msg_hdr.msg_controllen = kCtrl;
        msgs[i].msg_len = 0;
      }
      const int got = recvmmsg(fd_, msgs.data(), batch, MSG_DONTWAIT, nullptr);
      if (got <= 0) break;  // EAGAIN: drained
      int64_t fallback_ns = 0;
      for (int i = 0; i < got; ++i) {
        const msghdr& h = msgs[i].msg_hdr;
        const size_t len = msgs[i].msg_len;
        bump(counters_.packets);
        bump(counters_.bytes, len);
        if (h.msg_flags & MSG_TRUNC) {  // longer than max_datagram: cut short, not parseable
          bump(counters_.malformed);
          continue;
        }
        int64_t arrival_ns = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            arrival_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
          }
        }
        if (arrival_ns == 0) arrival_ns = fallback_ns ? fallback_ns : (fallback_ns = realtime_ns());

        frame.meta = CsiMeta{};
        const uint64_t skipped_before = parser_->stats().skipped;
        bool ok = false;
        try {
          ok = parser_->parse(buf.data() + static_cast<size_t>(i) * dgram, len, frame);
        } catch (const std::exception&) {
          ok = false;  // a parser must not kill the capture: count it as malformed
        }
        if (!ok) {
          bump(parser_->stats().skipped > skipped_before ? counters_.skipped : counters_.malformed);
          continue;
        }
        if (FrameShape{frame.n_sub, frame.n_rx, frame.n_tx} != shape || frame.csi.size() != shape.values()) {
          bump(counters_.shape_mismatch);
          continue;
        }
        bump(counters_.frames);
        RingMeta m;
        m.timestamp = frame.meta.timestamp;
        m.seq = frame.meta.seq;
        m.arrival_ns = arrival_ns;
        m.rssi = frame.meta.rssi;
        m.noise = frame.meta.noise;
        m.core = frame.meta.core;
        m.spatial_stream = frame.meta.spatial_stream;
        m.mac = frame.meta.mac;
        m.source_id = source_id(h.msg_name, h.msg_namelen);
        if (m.source_id < 0) bump(counters_.unknown_sources);
        ring_->push(frame.csi.data(), m);
      }
      notify_waiters();
      if (static_cast<unsigned>(got) < batch || stop_.load(std::memory_order_acquire)) break;
    }
  }
  running_.store(false, std::memory_order_release);
  notify_waiters();
}

}  // namespace wdp
