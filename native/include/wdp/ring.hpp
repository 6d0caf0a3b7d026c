// Lock-free single-producer / single-consumer ring of fixed-shape CSI frames. No Python in here.
//
// Storage is one contiguous array per field (csi, timestamp, seq, ...), indexed by slot, so a consumer can
// look at a run of frames [first, first + count) as plain arrays without copying them.
//
// Indices are monotonic 64-bit frame counters; slot = index & (capacity - 1).
//
//   head_  written by the producer only: frames [0, head_) have been published.
//   tail_  oldest frame nobody has claimed yet. Advanced by compare-exchange, by two parties:
//          the consumer (acquire() claims [tail, tail + k)) and the producer (drops the oldest frame
//          when the ring is full and the consumer holds nothing).
//   hold_  written by the consumer only: start of the run it holds (frames [hold_, tail_) are being read
//          through views) or is about to claim; kNotHolding when it holds nothing.
//
// Slots of frames below the "boundary" may be overwritten:  boundary = min(hold_, tail_) while the consumer
// holds or claims, else tail_.  The producer may write frame h only if h - boundary < capacity.
//
// Overflow (drop-oldest): when the ring is full and the consumer neither holds nor claims, the producer CASes
// tail_ from t to t + 1, i.e. it discards the oldest unread frame and reuses its slot. The consumer claims by
// first announcing hold_ = t, then CASing tail_ from the same t; exactly one of the two CASes wins and the
// loser retries with fresh indices. A frame therefore can never be both dropped and handed to the consumer,
// nor overwritten while the consumer reads it.
// Ordering: the consumer stores hold_ before its claiming CAS (release); the producer loads tail_ (acquire)
// before hold_, so a producer that sees the claimed tail also sees the hold.
//
// While hold_ is set the producer never moves tail_ (that is what keeps a consumer from being starved by a
// producer that drops faster than the consumer can claim). So, when the ring is full and the consumer holds
// views on the oldest slots (or is mid-claim), the incoming frame is dropped instead (dropped_incoming):
// held slots cannot be recycled. Release views promptly; dropped() counts both kinds, nothing is lost
// uncounted.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>

#include "wdp/frame.hpp"

namespace wdp {

inline constexpr size_t kCacheLine = 64;

struct FrameShape {
  uint32_t n_sub = 0, n_rx = 0, n_tx = 0;
  size_t values() const { return static_cast<size_t>(n_sub) * n_rx * n_tx; }
  bool operator==(const FrameShape& o) const { return n_sub == o.n_sub && n_rx == o.n_rx && n_tx == o.n_tx; }
  bool operator!=(const FrameShape& o) const { return !(*this == o); }
};

// The metadata row stored beside each frame (fields a format lacks keep their sentinel).
struct RingMeta {
  double timestamp = std::numeric_limits<double>::quiet_NaN();  // device/format timestamp, seconds
  int64_t seq = -1;            // format sequence number
  int64_t arrival_ns = 0;      // host receive time, ns since the Unix epoch
  int32_t rssi = kNoValue;
  int32_t noise = kNoValue;
  int32_t core = -1;
  int32_t spatial_stream = -1;
  int32_t source_id = -1;      // sender (router) id assigned by the capture, -1 unknown
  std::array<uint8_t, 6> mac{};
};

namespace detail {
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
std::unique_ptr<T[], AlignedFree> aligned_array(size_t n) {
  size_t bytes = (std::max<size_t>(n * sizeof(T), 1) + kCacheLine - 1) / kCacheLine * kCacheLine;
  void* p = std::aligned_alloc(kCacheLine, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p));
}
}  // namespace detail

class FrameRing {
 public:
  static constexpr uint64_t kNotHolding = std::numeric_limits<uint64_t>::max();

  // A run of claimed frames: indices [first, first + count) in slots [slot, slot + count) (never wraps).
  struct Run {
    uint64_t first = 0;
    size_t slot = 0;
    size_t count = 0;
  };

  // capacity is rounded up to a power of two (at least 2).
  FrameRing(size_t capacity, FrameShape shape) : shape_(shape) {
    if (shape.values() == 0) throw std::invalid_argument("ring frame shape must be non-empty");
    if (capacity == 0 || capacity > (size_t{1} << 40)) throw std::invalid_argument("ring capacity out of range");
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    if (shape.values() > std::numeric_limits<size_t>::max() / sizeof(cf32) / cap)
      throw std::invalid_argument("ring too large");
    cap_ = cap;
    mask_ = cap - 1;
    csi_ = detail::aligned_array<cf32>(cap * shape.values());
    timestamp_ = detail::aligned_array<double>(cap);
    seq_ = detail::aligned_array<int64_t>(cap);
    arrival_ns_ = detail::aligned_array<int64_t>(cap);
    rssi_ = detail::aligned_array<int32_t>(cap);
    noise_ = detail::aligned_array<int32_t>(cap);
    core_ = detail::aligned_array<int32_t>(cap);
    stream_ = detail::aligned_array<int32_t>(cap);
    source_ = detail::aligned_array<int32_t>(cap);
    mac_ = detail::aligned_array<uint8_t>(cap * 6);
  }
  FrameRing(const FrameRing&) = delete;
  FrameRing& operator=(const FrameRing&) = delete;

  // ---- producer (exactly one thread) ----

  // Stores one frame (csi holds shape().values() values, row-major (n_sub, n_rx, n_tx)).
  // Returns false if it was dropped because the consumer holds every slot that could be recycled.
  bool push(const cf32* csi, const RingMeta& m) {
    const uint64_t h = head_.load(std::memory_order_relaxed);
    if (h - p_.boundary >= cap_ && !make_room(h)) {
      p_.dropped_incoming.store(p_.dropped_incoming.load(std::memory_order_relaxed) + 1,
                                std::memory_order_relaxed);
      return false;
    }
    const size_t s = static_cast<size_t>(h & mask_);
    std::memcpy(csi_.get() + s * shape_.values(), csi, shape_.values() * sizeof(cf32));
    timestamp_[s] = m.timestamp;
    seq_[s] = m.seq;
    arrival_ns_[s] = m.arrival_ns;
    rssi_[s] = m.rssi;
    noise_[s] = m.noise;
    core_[s] = m.core;
    stream_[s] = m.spatial_stream;
    source_[s] = m.source_id;
    std::memcpy(mac_.get() + s * 6, m.mac.data(), 6);
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  // ---- consumer (exactly one thread) ----

  // Claims up to max_frames of the oldest unread frames: the largest contiguous run that does not wrap.
  // The slots stay untouched by the producer until release(). Claiming again before releasing extends
  // the held region (the new run follows the previous one).
  Run acquire(size_t max_frames) {
    const bool was_holding = c_.hold_start != c_.claimed_end;
    bool announced = false;
    uint64_t t = tail_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t h = head_.load(std::memory_order_acquire);
      const size_t slot = static_cast<size_t>(t & mask_);
      const size_t n = static_cast<size_t>(std::min<uint64_t>({max_frames, h - t, cap_ - slot}));
      if (n == 0) {
        if (announced) hold_.store(kNotHolding, std::memory_order_release);
        return Run{t, slot, 0};
      }
      // Announce before claiming. While an announcement is visible the producer stops dropping (it drops
      // the incoming frame instead), so a lost race is retried at most once more: no consumer starvation.
      if (!was_holding) {
        hold_.store(t, std::memory_order_release);
        announced = true;
      }
      if (tail_.compare_exchange_strong(t, t + n, std::memory_order_acq_rel, std::memory_order_acquire)) {
        if (!was_holding) c_.hold_start = t;
        c_.claimed_end = t + n;
        return Run{t, slot, n};
      }
      // The producer dropped the frame we aimed at before it saw the announcement; t is the new tail.
    }
  }

  // Gives back the oldest k held frames (k is clamped to what is held). Views onto them become invalid.
  void release(size_t k) {
    k = static_cast<size_t>(std::min<uint64_t>(k, c_.claimed_end - c_.hold_start));
    if (k == 0) return;
    c_.hold_start += k;
    hold_.store(c_.hold_start == c_.claimed_end ? kNotHolding : c_.hold_start, std::memory_order_release);
  }

  size_t held() const { return static_cast<size_t>(c_.claimed_end - c_.hold_start); }

  // ---- any thread ----

  // Frames published and not yet claimed (a snapshot).
  size_t available() const {
    const uint64_t t = tail_.load(std::memory_order_acquire);
    const uint64_t h = head_.load(std::memory_order_acquire);
    return h > t ? static_cast<size_t>(h - t) : 0;
  }
  uint64_t pushed() const { return head_.load(std::memory_order_relaxed); }
  uint64_t dropped_oldest() const { return p_.dropped_oldest.load(std::memory_order_relaxed); }
  uint64_t dropped_incoming() const { return p_.dropped_incoming.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_oldest() + dropped_incoming(); }
  size_t capacity() const { return cap_; }
  FrameShape shape() const { return shape_; }

  // Field arrays, indexed by slot (csi: slot * shape().values(); mac: slot * 6).
  const cf32* csi() const { return csi_.get(); }
  const double* timestamp() const { return timestamp_.get(); }
  const int64_t* seq() const { return seq_.get(); }
  const int64_t* arrival_ns() const { return arrival_ns_.get(); }
  const int32_t* rssi() const { return rssi_.get(); }
  const int32_t* noise() const { return noise_.get(); }
  const int32_t* core() const { return core_.get(); }
  const int32_t* spatial_stream() const { return stream_.get(); }
  const int32_t* source_id() const { return source_.get(); }
  const uint8_t* mac() const { return mac_.get(); }

 private:
  // Slow path of push: find a free slot for frame h, dropping the oldest unread frame if needed.
  bool make_room(uint64_t h) {
    for (;;) {
      uint64_t t = tail_.load(std::memory_order_acquire);
      const uint64_t hs = hold_.load(std::memory_order_acquire);  // after tail_: see the header
      const bool holding = hs != kNotHolding;  // a hold, or a claim in progress
      const uint64_t boundary = holding ? std::min(hs, t) : t;
      if (h - boundary < cap_) {
        p_.boundary = boundary;
        return true;
      }
      if (holding) return false;
      if (tail_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        p_.dropped_oldest.store(p_.dropped_oldest.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        p_.boundary = t + 1;  // frame t is ours to overwrite: any claim from t now fails its CAS
        return true;
      }
    }
  }

  FrameShape shape_;
  size_t cap_ = 0;
  uint64_t mask_ = 0;
  std::unique_ptr<cf32[], detail::AlignedFree> csi_;
  std::unique_ptr<double[], detail::AlignedFree> timestamp_;
  std::unique_ptr<int64_t[], detail::AlignedFree> seq_, arrival_ns_;
  std::unique_ptr<int32_t[], detail::AlignedFree> rssi_, noise_, core_, stream_, source_;
  std::unique_ptr<uint8_t[], detail::AlignedFree> mac_;

  // Each index on its own cache line: the producer spins on head_, both sides CAS tail_.
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};
  alignas(kCacheLine) std::atomic<uint64_t> hold_{kNotHolding};
  struct alignas(kCacheLine) ProducerState {
    uint64_t boundary = 0;  // a lower bound of the true boundary (it only grows): fast-path check
    std::atomic<uint64_t> dropped_oldest{0}, dropped_incoming{0};
  } p_;
  struct alignas(kCacheLine) ConsumerState {
    uint64_t hold_start = 0, claimed_end = 0;  // held frames [hold_start, claimed_end)
  } c_;
};

}  // namespace wdp
