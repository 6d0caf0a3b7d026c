// nexmon_csi: UDP payloads (live, port 5500) and classic pcap captures of them.
//
// Payload (after Ethernet/IPv4/UDP), all fields little-endian:
//   newer header: 0 u16 magic 0x1111, 2 i8 rssi, 3 u8 frame control
//   older header: 0 u32 magic 0x11111111 (no rssi / frame control)
//   then 4 mac[6], 10 u16 seq, 12 u16 core (bits 0-2) | spatial stream (bits 3-5),
//   14 u16 chanspec, 16 u16 chip version, 18.. N CSI words of 4 bytes, N = 64/128/256.
// CSI words: int16 real, int16 imag (bcm4339, bcm43455c0) or nexmon's packed float
// (bcm4358: 9-bit mantissas + 5-bit exponent; bcm4366c0: 12 + 6), decoded by a port of
// nexmon_csi's utils/matlab/unpack_float.c.
#include <algorithm>

#include "wdp/bytes.hpp"
#include "wdp/parsers.hpp"

namespace wdp {
namespace {

constexpr uint16_t kNexmonPort = 5500;
constexpr size_t kPayloadHeader = 18;
// libpcap's MAXIMUM_SNAPLEN: no real record is larger; nexmon records are ~1.1 KB.
constexpr uint32_t kMaxRecord = 262144;

enum class CsiEncoding { kInt16, kFloat9x5, kFloat12x6, kUnknown };

// Chip version field = nexmon's CHIP_VER_* (firmware_version.h).
CsiEncoding encoding_for_chip(uint16_t chip) {
  switch (chip) {
    case 1:       // CHIP_VER_BCM4339
    case 101:     // CHIP_VER_BCM43455c0
    case 0xa6dc:  // 43455c0 as seen by CSIKit in the field
      return CsiEncoding::kInt16;
    case 3:       // CHIP_VER_BCM4358
    case 0xdead:  // 4358 placeholder in nexmon_csi's own example.pcap
      return CsiEncoding::kFloat9x5;
    case 106:     // CHIP_VER_BCM4366c0
    case 0xe834:  // 4366c0 as seen by CSIKit in the field
      return CsiEncoding::kFloat12x6;
    default:
      return CsiEncoding::kUnknown;
  }
}

// Port of unpack_float_acphy() from nexmon_csi utils/matlab/unpack_float.c (called there with
// autoscale=1, shft=0, fmt=1, nbits=10). Kept step for step so results match MATLAB exactly;
// the sign flag lives in bit 31 of the intermediate words as in the original.
void unpack_float_acphy(int nbits, int nman, int nexp, int nfft, const uint8_t* words, int32_t* out) {
  constexpr uint32_t kSignMask = 1u << 31;
  const uint32_t iq_mask = (1u << (nman - 1)) - 1;
  const uint32_t e_mask = (1u << nexp) - 1;
  const int e_p = 1 << (nexp - 1);
  const uint32_t sgnr_mask = 1u << (nexp + 2 * nman - 1);
  const uint32_t sgni_mask = sgnr_mask >> nman;
  const int e_zero = -nman;
  int8_t he[256];
  uint32_t tmp[512];
  int maxbit = -e_p;
  for (int i = 0; i < nfft; ++i) {
    const uint32_t h = bytes::le32(words + 4 * i);
    uint32_t vi = (h >> (nexp + nman)) & iq_mask;
    uint32_t vq = (h >> nexp) & iq_mask;
    int e = static_cast<int>(h & e_mask);
    if (e >= e_p) e -= (e_p << 1);
    he[i] = static_cast<int8_t>(e);
    uint32_t x = vi | vq;
    if (x) {  // autoscale: e += index of the highest set bit of x
      uint32_t m = 0xffff0000u, b = 0xffffu;
      int s = 16;
      while (s > 0) {
        if (x & m) {
          e += s;
          x >>= s;
        }
        s >>= 1;
        m = (m >> s) & b;
        b >>= s;
      }
      if (e > maxbit) maxbit = e;
    }
    if (h & sgnr_mask) vi |= kSignMask;
    if (h & sgni_mask) vq |= kSignMask;
    tmp[2 * i] = vi;
    tmp[2 * i + 1] = vq;
  }
  const int shft = nbits - maxbit;
  for (int i = 0; i < 2 * nfft; ++i) {
    int e = he[i >> 1] + shft;
    uint32_t v = tmp[i];
    int32_t sgn = 1;
    if (v & kSignMask) {
      sgn = -1;
      v &= ~kSignMask;
    }
    // v < 2^11; for v != 0 the autoscale bounds e so that v << e < 2^(nbits+1). A zero v may
    // meet a huge e (the C code shifts 0 anyway); skip the shift to stay clear of UB.
    if (v == 0 || e < e_zero) {
      v = 0;
    } else if (e < 0) {
      v >>= -e;
    } else {
      v <<= e;
    }
    out[i] = sgn * static_cast<int32_t>(v);
  }
}

// Broadcom d11ac chanspec: channel in bits 0-7, bandwidth in bits 11-13, band in bits 14-15.
void decode_chanspec(uint16_t cs, CsiMeta& m) {
  const int ch = cs & 0xff;
  switch (cs & 0x3800) {
    case 0x1000: m.bandwidth_mhz = 20; break;
    case 0x1800: m.bandwidth_mhz = 40; break;
    case 0x2000: m.bandwidth_mhz = 80; break;
    case 0x2800: m.bandwidth_mhz = 160; break;
    default: break;
  }
  if (ch == 0) return;
  m.channel = ch;  // the centre channel for 40/80 MHz, as Broadcom stores it
  const uint16_t band = cs & 0xc000;
  if (band == 0xc000) m.frequency_mhz = 5000 + 5 * ch;
  else if (band == 0x0000) m.frequency_mhz = ch == 14 ? 2484 : 2407 + 5 * ch;
}

// Number of CSI words in a payload of n bytes, 0 when the size is not a CSI size.
size_t csi_words(size_t n) {
  for (size_t nfft : {64, 128, 256})
    if (n == kPayloadHeader + 4 * nfft) return nfft;
  return 0;
}

// Decode one nexmon_csi UDP payload into a (N, 1, 1) frame. False if it is not valid CSI.
bool decode_payload(const uint8_t* p, size_t n, CsiFrame& f) {
  if (n < kPayloadHeader) return false;
  const bool old_header = bytes::le32(p) == 0x11111111u;
  if (!old_header && bytes::le16(p) != 0x1111) return false;
  const size_t nfft = csi_words(n);
  if (nfft == 0) return false;
  const uint16_t chip = bytes::le16(p + 16);
  const CsiEncoding enc = encoding_for_chip(chip);
  if (enc == CsiEncoding::kUnknown) return false;

  CsiMeta& m = f.meta;
  m = CsiMeta{};
  if (!old_header) m.rssi = static_cast<int8_t>(p[2]);
  std::copy(p + 4, p + 10, m.mac.begin());
  m.seq = bytes::le16(p + 10);
  const uint16_t conf = bytes::le16(p + 12);
  m.core = conf & 0x7;
  m.spatial_stream = (conf >> 3) & 0x7;
  m.chip = chip;
  decode_chanspec(bytes::le16(p + 14), m);
  if (m.bandwidth_mhz == kNoValue) m.bandwidth_mhz = static_cast<int32_t>(nfft * 10 / 32);

  f.subcarrier_index.clear();
  f.resize(static_cast<uint16_t>(nfft), 1, 1);
  const uint8_t* csi = p + kPayloadHeader;
  if (enc == CsiEncoding::kInt16) {
    for (size_t k = 0; k < nfft; ++k) {
      const auto re = static_cast<int16_t>(bytes::le16(csi + 4 * k));
      const auto im = static_cast<int16_t>(bytes::le16(csi + 4 * k + 2));
      f.csi[k] = cf32(re, im);
    }
  } else {
    int32_t iq[512];
    if (enc == CsiEncoding::kFloat9x5) unpack_float_acphy(10, 9, 5, static_cast<int>(nfft), csi, iq);
    else unpack_float_acphy(10, 12, 6, static_cast<int>(nfft), csi, iq);
    for (size_t k = 0; k < nfft; ++k)
      f.csi[k] = cf32(static_cast<float>(iq[2 * k]), static_cast<float>(iq[2 * k + 1]));
  }
  return true;
}

class NexmonDatagramParser final : public DatagramParser {
 public:
  bool parse(const uint8_t* data, size_t len, CsiFrame& frame) override {
    const auto index = static_cast<uint32_t>(stats_.records++);
    stats_.bytes += len;
    if (!data || !decode_payload(data, len, frame)) {
      ++stats_.malformed;
      return false;
    }
    frame.meta.record_index = index;
    ++stats_.frames;
    return true;
  }
};

// Classic libpcap files: either byte order, µs or ns timestamps. Records are framed by the
// pcap record header; anything that is not an IPv4/UDP datagram to or from port 5500 is counted
// as skipped, a port-5500 datagram that is not valid nexmon CSI as malformed.
class NexmonPcapParser final : public StreamParser {
 public:
  const char* format() const override { return "nexmon_pcap"; }

 protected:
  size_t parse_some(const uint8_t* p, size_t n, bool /*eof*/, std::vector<CsiFrame>& out) override {
    size_t pos = 0;
    if (!have_header_) {
      if (n < 24) return 0;
      read_file_header(p);
      pos = 24;
    }
    while (pos < n) {
      if (skip_ > 0) {
        // Discard an oversize record as it streams past instead of buffering it. While it runs
        // past the data at hand keep one byte back, so a stream ending inside it counts as truncated.
        const uint64_t avail = n - pos;
        uint64_t take = std::min<uint64_t>(skip_, avail);
        if (skip_ > avail) --take;
        pos += static_cast<size_t>(take);
        skip_ -= take;
        if (skip_ > 0) break;
        continue;
      }
      if (n - pos < 16) break;
      const uint8_t* rh = p + pos;
      const uint32_t ts_sec = u32(rh), ts_frac = u32(rh + 4), incl = u32(rh + 8);
      if (incl > max_record_) {
        // Not a record libpcap would accept: count it and skip the length it claims.
        ++stats_.records;
        ++stats_.malformed;
        pos += 16;
        skip_ = incl;
        continue;
      }
      if (n - pos - 16 < incl) break;
      const auto index = static_cast<uint32_t>(stats_.records++);
      handle_record(p + pos + 16, incl, ts_sec, ts_frac, index, out);
      pos += 16 + static_cast<size_t>(incl);
    }
    return pos;
  }

 private:
  uint32_t u32(const uint8_t* q) const { return swapped_ ? bytes::be32(q) : bytes::le32(q); }

  void read_file_header(const uint8_t* p) {
    const uint32_t magic = bytes::le32(p);
    switch (magic) {
      case 0xa1b2c3d4u: break;
      case 0xd4c3b2a1u: swapped_ = true; break;
      case 0xa1b23c4du: nanos_ = true; break;
      case 0x4d3cb2a1u: swapped_ = nanos_ = true; break;
      case 0x0a0d0d0au:
        throw ParseError("pcapng is not supported; convert with `editcap -F pcap in out.pcap`");
      default: throw ParseError("not a pcap file (bad magic)");
    }
    const uint32_t snaplen = u32(p + 16);
    max_record_ = snaplen == 0 ? kMaxRecord : std::min(snaplen, kMaxRecord);
    linktype_ = u32(p + 20) & 0x0fffffff;  // upper bits: FCS length flags
    switch (linktype_) {
      case 1: case 101: case 113: case 276: break;
      default: throw ParseError("pcap link type " + std::to_string(linktype_) +
                                " is not supported (Ethernet, raw IP, Linux cooked)");
    }
    have_header_ = true;
  }

  // Start and length of the IPv4 packet inside a link-layer frame; false if none.
  bool ipv4_packet(const uint8_t* q, size_t n, size_t& off) const {
    uint16_t proto = 0;
    switch (linktype_) {
      case 1: {  // Ethernet II with optional 802.1Q / 802.1ad tags
        if (n < 14) return false;
        off = 12;
        proto = bytes::be16(q + off);
        while ((proto == 0x8100 || proto == 0x88a8) && off + 6 <= n) {
          off += 4;
          proto = bytes::be16(q + off);
        }
        off += 2;
        break;
      }
      case 113:  // Linux cooked v1: protocol at 14, 16-byte header
        if (n < 16) return false;
        proto = bytes::be16(q + 14);
        off = 16;
        break;
      case 276:  // Linux cooked v2: protocol at 0, 20-byte header
        if (n < 20) return false;
        proto = bytes::be16(q);
        off = 20;
        break;
      default:  // raw IP
        off = 0;
        proto = (n > 0 && (q[0] >> 4) == 4) ? 0x0800 : 0;
        break;
    }
    return proto == 0x0800 && off <= n;
  }

  void handle_record(const uint8_t* q, size_t n, uint32_t ts_sec, uint32_t ts_frac, uint32_t index,
                     std::vector<CsiFrame>& out) {
    size_t off = 0;
    if (!ipv4_packet(q, n, off)) { ++stats_.skipped; return; }
    const uint8_t* ip = q + off;
    const size_t avail = n - off;
    if (avail < 20 || (ip[0] >> 4) != 4 || ip[9] != 17) { ++stats_.skipped; return; }
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    const size_t total = bytes::be16(ip + 2);
    if (ihl < 20 || total < ihl || (bytes::be16(ip + 6) & 0x1fff) != 0 || avail < ihl + 8) {
      ++stats_.skipped;  // broken IP header, a non-first fragment, or no room for UDP
      return;
    }
    const uint8_t* udp = ip + ihl;
    if (bytes::be16(udp) != kNexmonPort && bytes::be16(udp + 2) != kNexmonPort) { ++stats_.skipped; return; }
    // The datagram ends where the UDP length says, not where the pcap record ends: some bcm43455c0
    // captures carry 4 zero bytes of link-layer trailer after the IP packet (pcap records of 1088
    // instead of 1084 bytes at 80 MHz, IP and UDP lengths unchanged). MATLAB's csireader and CSIKit
    // size records by orig_len and so drop those good records; here they decode like the rest.
    const size_t udp_len = bytes::be16(udp + 4);
    // A first fragment or a snapped record holds less than the UDP length says.
    if (udp_len < 8 || ihl + udp_len > std::min(avail, total)) { ++stats_.malformed; return; }
    CsiFrame f;
    if (!decode_payload(udp + 8, udp_len - 8, f)) { ++stats_.malformed; return; }
    f.meta.record_index = index;
    const uint64_t frac_us = nanos_ ? ts_frac / 1000 : ts_frac;
    f.meta.timestamp_raw = static_cast<uint64_t>(ts_sec) * 1000000u + frac_us;  // µs
    f.meta.timestamp = ts_sec + ts_frac * (nanos_ ? 1e-9 : 1e-6);
    out.push_back(std::move(f));
    ++stats_.frames;
  }

  bool have_header_ = false, swapped_ = false, nanos_ = false;
  uint32_t linktype_ = 1, max_record_ = kMaxRecord;
  uint64_t skip_ = 0;
};

}  // namespace

std::unique_ptr<StreamParser> make_nexmon_pcap_stream_parser() {
  return std::make_unique<NexmonPcapParser>();
}
std::unique_ptr<DatagramParser> make_nexmon_datagram_parser() {
  return std::make_unique<NexmonDatagramParser>();
}

// One captured frame arrives as one UDP record per (core, spatial stream), consecutive and
// sharing the sequence number. A group ends when the seq, source MAC or size changes or a slot
// repeats (a retransmission of the same seq is a new measurement). Every merged frame has the
// capture-wide shape (n_sub, max core + 1, max stream + 1) so frames stack; slots a group lacks
// (a lost UDP) stay zero. Metadata comes from the group's first record.
std::vector<CsiFrame> group_nexmon(const std::vector<CsiFrame>& records) {
  int n_core = 1, n_stream = 1;
  for (const auto& r : records) {
    if (r.n_rx != 1 || r.n_tx != 1) continue;
    n_core = std::max(n_core, r.meta.core + 1);
    n_stream = std::max(n_stream, r.meta.spatial_stream + 1);
  }
  std::vector<CsiFrame> out;
  std::vector<bool> filled;
  bool open = false;
  for (const auto& r : records) {
    if (r.n_rx != 1 || r.n_tx != 1 || r.meta.core < 0 || r.meta.spatial_stream < 0) {
      out.push_back(r);  // already merged or not a per-record nexmon frame
      open = false;
      continue;
    }
    const size_t slot = static_cast<size_t>(r.meta.core) * n_stream + r.meta.spatial_stream;
    const bool same_group = open && out.back().meta.seq == r.meta.seq && out.back().meta.mac == r.meta.mac &&
                            out.back().n_sub == r.n_sub && !filled[slot];
    if (!same_group) {
      CsiFrame g;
      g.meta = r.meta;
      if (n_core * n_stream > 1) g.meta.core = g.meta.spatial_stream = -1;  // frame spans all of them
      g.resize(r.n_sub, static_cast<uint16_t>(n_core), static_cast<uint16_t>(n_stream));
      out.push_back(std::move(g));
      filled.assign(static_cast<size_t>(n_core) * n_stream, false);
      open = true;
    }
    CsiFrame& g = out.back();
    filled[slot] = true;
    for (size_t k = 0; k < r.n_sub; ++k) g.at(k, r.meta.core, r.meta.spatial_stream) = r.csi[k];
  }
  return out;
}

}  // namespace wdp
