// Concurrency self-test of FrameRing: a real producer thread against a real consumer thread.
// Used by the tests (through the binding) and runnable under ThreadSanitizer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wdp {

struct RingStressConfig {
  uint64_t frames = 200000;      // frames the producer pushes, seq 0..frames-1
  size_t capacity = 256;
  uint32_t n_sub = 8, n_rx = 1, n_tx = 2;
  size_t max_batch = 64;         // consumer claims runs of 1..max_batch frames
  uint32_t hold_every = 16;      // every n-th run the consumer holds its views for a while (forces overflow)
  uint32_t hold_spins = 2000;    // how long ("for a while"), in busy-loop iterations
  uint32_t producer_spins = 0;   // busy-loop iterations between pushes (0: push flat out)
  uint64_t seed = 1;
};

struct RingStressResult {
  uint64_t pushed = 0, rejected = 0;            // producer: push() true / false
  uint64_t received = 0;                        // frames the consumer saw
  uint64_t dropped_oldest = 0, dropped_incoming = 0;  // ring counters
  uint64_t gaps = 0;             // sequence numbers skipped between consecutive received frames
  uint64_t out_of_order = 0;     // received seq <= previous (duplicates included)
  uint64_t corrupt = 0;          // frames whose csi did not match their seq (torn or overwritten)
  uint64_t changed_while_held = 0;  // frames that changed between claim and release
  uint64_t last_seq = 0;
  double seconds = 0;
};

RingStressResult ring_stress(const RingStressConfig& cfg);

}  // namespace wdp
