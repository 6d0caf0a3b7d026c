// FrameRing self-test: producer and consumer threads; every frame carries its seq in all of its fields so
// torn writes, overwrites of held slots, duplicates and silent losses are all detectable.
#include "wdp/ring_stress.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "wdp/ring.hpp"

namespace wdp {

namespace {

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

cf32 expected_value(int64_t seq, size_t j) {
  return {static_cast<float>((static_cast<uint64_t>(seq) + j) & 0xffffff), static_cast<float>(j)};
}

bool frame_matches(const FrameRing& ring, size_t slot, int64_t seq) {
  const size_t nv = ring.shape().values();
  const cf32* v = ring.csi() + slot * nv;
  for (size_t j = 0; j < nv; ++j)
    if (v[j] != expected_value(seq, j)) return false;
  return ring.seq()[slot] == seq && ring.timestamp()[slot] == static_cast<double>(seq) * 1e-3 &&
         ring.arrival_ns()[slot] == seq * 7 && ring.rssi()[slot] == static_cast<int32_t>(seq % 100) &&
         ring.mac()[slot * 6 + 5] == static_cast<uint8_t>(seq);
}

}  // namespace

RingStressResult ring_stress(const RingStressConfig& cfg) {
  FrameRing ring(cfg.capacity, FrameShape{cfg.n_sub, cfg.n_rx, cfg.n_tx});
  RingStressResult res;
  std::atomic<bool> done{false}, consumer_ready{false};
  const auto t0 = std::chrono::steady_clock::now();

  std::thread producer([&] {
    std::vector<cf32> csi(ring.shape().values());
    RingMeta m;
    while (!consumer_ready.load(std::memory_order_acquire)) std::this_thread::yield();  // overlap the two
    for (uint64_t i = 0; i < cfg.frames; ++i) {
      const auto seq = static_cast<int64_t>(i);
      for (size_t j = 0; j < csi.size(); ++j) csi[j] = expected_value(seq, j);
      m.seq = seq;
      m.timestamp = static_cast<double>(seq) * 1e-3;
      m.arrival_ns = seq * 7;
      m.rssi = static_cast<int32_t>(seq % 100);
      m.mac[5] = static_cast<uint8_t>(seq);
      if (ring.push(csi.data(), m)) ++res.pushed; else ++res.rejected;
      for (volatile uint32_t k = 0; k < cfg.producer_spins; k = k + 1) {}
    }
    done.store(true, std::memory_order_release);
  });

  uint64_t rng = cfg.seed * 0x9E3779B97F4A7C15ull + 1;
  int64_t expected = 0;
  uint64_t runs = 0;
  std::vector<FrameRing::Run> held;
  std::vector<int64_t> held_seq;  // seq seen at claim time, per held frame
  consumer_ready.store(true, std::memory_order_release);
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    const auto run = ring.acquire(1 + xorshift(rng) % cfg.max_batch);
    if (run.count == 0) {
      if (finished && ring.available() == 0) break;
      std::this_thread::yield();
      continue;
    }
    for (size_t i = 0; i < run.count; ++i) {
      const size_t slot = run.slot + i;
      const int64_t seq = ring.seq()[slot];
      if (!frame_matches(ring, slot, seq)) ++res.corrupt;
      if (seq < expected) {
        ++res.out_of_order;
      } else {
        res.gaps += static_cast<uint64_t>(seq - expected);
        expected = seq + 1;
      }
      ++res.received;
      held_seq.push_back(seq);
    }
    held.push_back(run);
    // Sometimes keep the views (and claim more) before giving them back, so the producer laps us.
    if (cfg.hold_every && ++runs % cfg.hold_every == 0) {
      for (volatile uint32_t k = 0; k < cfg.hold_spins; k = k + 1) {}
      if (xorshift(rng) % 2) continue;
    }
    size_t k = 0;
    for (const auto& r : held) {
      for (size_t i = 0; i < r.count; ++i)
        if (!frame_matches(ring, r.slot + i, held_seq[k++])) ++res.changed_while_held;
      // Release in two pieces to exercise partial release.
      const size_t part = r.count / 2;
      ring.release(part);
      ring.release(r.count - part);
    }
    held.clear();
    held_seq.clear();
  }
  for (const auto& r : held) ring.release(r.count);
  producer.join();
  res.gaps += cfg.frames - static_cast<uint64_t>(expected);
  res.last_seq = expected > 0 ? static_cast<uint64_t>(expected - 1) : 0;
  res.dropped_oldest = ring.dropped_oldest();
  res.dropped_incoming = ring.dropped_incoming();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace wdp
