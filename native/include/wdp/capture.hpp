// Live CSI capture: a UDP socket, a receiver thread that parses datagrams, and a FrameRing it fills.
// No Python in here.
//
// Datagram formats: "nexmon_udp" and "esp32" (wdp::make_datagram_parser) and "raw", wdp's own relay format
// (for simulators and relays that already hold complex CSI), all little-endian:
//     u32 n_sub | u16 n_rx | u16 n_tx | f64 timestamp (s) | complex64 csi[n_sub * n_rx * n_tx] (row-major)
// A raw datagram is exactly 16 + 8 * n_sub * n_rx * n_tx bytes; anything else is malformed.
//
// The ring has one fixed frame shape; frames of another shape are counted (shape_mismatch) and skipped.
// Nexmon sends one datagram per (core, spatial stream): each becomes one (n_sub, 1, 1) frame whose metadata
// says which core/stream it is; grouping by sequence number is left to the consumer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wdp/frame.hpp"
#include "wdp/ring.hpp"

namespace wdp {

struct CaptureConfig {
  std::string host = "0.0.0.0";       // numeric IPv4/IPv6 address or a host name
  uint16_t port = 5500;               // 0: the kernel picks a free port (see UdpCapture::port())
  std::string format = "nexmon_udp";  // "nexmon_udp", "esp32" or "raw"
  FrameShape shape{256, 1, 1};
  size_t capacity = 4096;             // ring slots (rounded up to a power of two)
  int rcvbuf_bytes = 32 << 20;        // requested SO_RCVBUF; bursts wait here while the thread is busy
  unsigned batch = 64;                // datagrams per recvmmsg call
  unsigned max_datagram = 65536;      // larger datagrams are truncated by the kernel and counted malformed
};

struct CaptureStats {
  uint64_t packets = 0;         // datagrams received
  uint64_t bytes = 0;           // payload bytes received
  uint64_t frames = 0;          // frames parsed with the ring's shape (stored or dropped on overflow)
  uint64_t malformed = 0;       // datagrams the parser rejected (or larger than max_datagram)
  uint64_t skipped = 0;         // well-formed datagrams without CSI (parser says so)
  uint64_t shape_mismatch = 0;  // parsed frames whose shape differs from the ring's
  uint64_t dropped_overflow = 0;  // frames lost because the consumer fell behind (ring full)
  uint64_t dropped_oldest = 0;    //   ... of which the oldest unread frame made room for a new one
  uint64_t dropped_incoming = 0;  //   ... of which the new frame found every slot held by the consumer
  uint64_t unknown_sources = 0;   // frames from senders beyond the source table (source_id -1)
};

// The "raw" relay format parser (see the header comment).
std::unique_ptr<DatagramParser> make_relay_datagram_parser();
// make_datagram_parser plus "raw".
std::unique_ptr<DatagramParser> make_capture_parser(const std::string& format);

class UdpCapture {
 public:
  static constexpr size_t kMaxSources = 1024;

  // Opens and binds the socket (throws std::system_error / std::invalid_argument); start() starts receiving.
  explicit UdpCapture(CaptureConfig cfg);
  ~UdpCapture();
  UdpCapture(const UdpCapture&) = delete;
  UdpCapture& operator=(const UdpCapture&) = delete;

  void start();
  // Wakes the receiver thread through an eventfd and joins it: returns promptly.
  void stop();
  bool running() const { return running_.load(std::memory_order_acquire); }

  uint16_t port() const { return port_; }             // the bound port
  int rcvbuf_bytes() const { return rcvbuf_actual_; }  // what the kernel granted
  const CaptureConfig& config() const { return cfg_; }
  CaptureStats stats() const;

  // The ring the receiver thread fills; the caller is its one consumer. Shared so views can outlive us.
  const std::shared_ptr<FrameRing>& ring() const { return ring_; }
  // Blocks until at least n frames are available or timeout_s passes; true if they are.
  bool wait_for(size_t n, double timeout_s);
  // Sender addresses ("ip:port") by source_id.
  std::vector<std::string> sources() const;

 private:
  void receive_loop();
  int32_t source_id(const void* addr, unsigned len);
  void notify_waiters();

  CaptureConfig cfg_;
  std::shared_ptr<FrameRing> ring_;
  std::unique_ptr<DatagramParser> parser_;
  int fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  int rcvbuf_actual_ = 0;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};

  // Counters: written by the receiver thread only, read by anyone.
  struct Counters {
    std::atomic<uint64_t> packets{0}, bytes{0}, frames{0}, malformed{0}, skipped{0}, shape_mismatch{0},
        unknown_sources{0};
  } counters_;

  // Source table: appended by the receiver thread (under the mutex), read by sources().
  mutable std::mutex sources_mu_;
  std::vector<std::string> source_keys_;   // raw sockaddr bytes, for lookup
  std::vector<std::string> source_names_;  // "ip:port"
  int32_t last_source_ = -1;

  // wait_for(): the consumer sleeps on the condition variable only after announcing itself in waiting_.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<int> waiting_{0};
};

}  // namespace wdp
