// Atheros CSI Tool log (recv_csi of xieyaxiongfly/Atheros-CSI-Tool-UserSpace-APP).
//
// Each record is [u16 len][len bytes], written in the logging host's byte order (little-endian
// on x86/ARM, big-endian on OpenWRT/MIPS). The body: u64 timestamp (TSF, µs), u16 csi_len,
// u16 channel (MHz), u8 phyerr, u8 noise, u8 rate, u8 bandwidth (0 = 20, 1 = 40 MHz),
// u8 num_tones, u8 nr, u8 nc, u8 rssi, u8 rssi per antenna x3, u16 payload_len (25 bytes),
// then csi_len bytes of packed CSI and payload_len bytes of the received frame.
// CSI: for each tone, tx (nc), rx (nr): 10-bit signed imag then real, read LSB-first through a
// 16-bit little-endian window, as matlab/read_csi.c does. No +1 offset (CSIKit adds one).
#include <algorithm>

#include "wdp/bytes.hpp"
#include "wdp/parsers.hpp"

namespace wdp {
namespace {

constexpr size_t kHeader = 25;
constexpr int kMaxAntennas = 3;  // the tool supports at most 3x3
constexpr int kMaxTones = 114;   // 40 MHz

struct AtherosHeader {
  uint64_t timestamp;
  uint16_t csi_len, channel;
  uint8_t phyerr, noise, rate, bandwidth, num_tones, nr, nc, rssi, rssi_ant[3];
  uint16_t payload_len;
};

AtherosHeader read_header(const uint8_t* q, bool be) {
  AtherosHeader h{};
  h.timestamp = be ? bytes::be64(q) : bytes::le64(q);
  h.csi_len = be ? bytes::be16(q + 8) : bytes::le16(q + 8);
  h.channel = be ? bytes::be16(q + 10) : bytes::le16(q + 10);
  h.phyerr = q[12]; h.noise = q[13]; h.rate = q[14]; h.bandwidth = q[15];
  h.num_tones = q[16]; h.nr = q[17]; h.nc = q[18];
  h.rssi = q[19]; h.rssi_ant[0] = q[20]; h.rssi_ant[1] = q[21]; h.rssi_ant[2] = q[22];
  h.payload_len = be ? bytes::be16(q + 23) : bytes::le16(q + 23);
  return h;
}

size_t csi_bits(const AtherosHeader& h) { return static_cast<size_t>(h.num_tones) * h.nr * h.nc * 20; }

bool valid_dims(const AtherosHeader& h) {
  return h.nr >= 1 && h.nr <= kMaxAntennas && h.nc >= 1 && h.nc <= kMaxAntennas && h.num_tones >= 1 &&
         h.num_tones <= kMaxTones && csi_bits(h) <= static_cast<size_t>(h.csi_len) * 8;
}

// How well a record body of body_len bytes read in this byte order fits the format:
// -1 impossible, higher is better (exact length, a real WiFi channel).
int plausibility(uint32_t body_len, const AtherosHeader& h) {
  if (body_len < kHeader) return -1;
  const uint32_t claimed = kHeader + h.csi_len + h.payload_len;
  if (claimed > body_len) return -1;
  if (h.csi_len > 0 && !valid_dims(h)) return -1;
  int score = 0;
  if (claimed == body_len) score += 2;
  if ((h.channel >= 2400 && h.channel <= 2500) || (h.channel >= 4900 && h.channel <= 7200)) score += 1;
  return score;
}

struct ByteOrder {
  bool prefix_be, header_be;
};

// Best byte order for the record at q (at least 2 + kHeader bytes); score -1 if none fits.
int best_order(const uint8_t* q, ByteOrder& order) {
  int best = -1;
  // Same order for prefix and header first (one host wrote both), then mixed; ties keep LE.
  const ByteOrder candidates[] = {{false, false}, {true, true}, {true, false}, {false, true}};
  for (const ByteOrder& c : candidates) {
    const uint16_t len = c.prefix_be ? bytes::be16(q) : bytes::le16(q);
    const int s = plausibility(len, read_header(q + 2, c.header_be));
    if (s > best) {
      best = s;
      order = c;
    }
  }
  return best;
}

// Port of the unpacking loop of matlab/read_csi.c. Requires csi_bits(h) <= 8 * csi_len; bytes
// the 16-bit window reads past csi_len only feed bits that are never used, so they read as 0.
void unpack_csi(const uint8_t* buf, size_t len, const AtherosHeader& h, CsiFrame& f) {
  auto byte = [&](size_t i) -> uint32_t { return i < len ? buf[i] : 0u; };
  constexpr uint32_t kMask = (1u << 10) - 1;
  auto signed10 = [](uint32_t v) { return (v & 0x200u) ? static_cast<int>(v) - 1024 : static_cast<int>(v); };
  size_t idx = 0;
  int bits_left = 16;
  uint32_t current = byte(0) | (byte(1) << 8);
  idx = 2;
  auto refill = [&] {
    if (bits_left - 10 < 0) {
      current += (byte(idx) | (byte(idx + 1) << 8)) << bits_left;
      idx += 2;
      bits_left += 16;
    }
  };
  f.resize(h.num_tones, h.nr, h.nc);
  for (int k = 0; k < h.num_tones; ++k) {
    for (int tx = 0; tx < h.nc; ++tx) {
      for (int rx = 0; rx < h.nr; ++rx) {
        refill();
        const int imag = signed10(current & kMask);
        bits_left -= 10;
        current >>= 10;
        refill();
        const int real = signed10(current & kMask);
        bits_left -= 10;
        current >>= 10;
        f.at(k, rx, tx) = cf32(static_cast<float>(real), static_cast<float>(imag));
      }
    }
  }
}

// ath9k reports RSSI as int8 dB above the noise floor; -128 (0x80) marks a chain without a value.
int32_t ath_rssi(uint8_t v) { return v == 0x80 ? kNoValue : static_cast<int8_t>(v); }

class AtherosParser final : public StreamParser {
 public:
  const char* format() const override { return "atheros"; }

 protected:
  size_t parse_some(const uint8_t* p, size_t n, bool /*eof*/, std::vector<CsiFrame>& out) override {
    size_t pos = 0;
    while (n - pos >= 2) {
      if (!decided_) {
        if (n - pos < 2 + kHeader) break;
        if (best_order(p + pos, order_) < 0)
          throw ParseError("not an Atheros CSI Tool log (implausible first record)");
        decided_ = true;
      }
      const size_t len = order_.prefix_be ? bytes::be16(p + pos) : bytes::le16(p + pos);
      if (n - pos - 2 < len) break;
      handle_record(p + pos + 2, len, out);
      pos += 2 + len;
    }
    return pos;
  }

 private:
  void handle_record(const uint8_t* q, size_t len, std::vector<CsiFrame>& out) {
    const auto index = static_cast<uint32_t>(stats_.records++);
    if (len < kHeader) { ++stats_.malformed; return; }
    const AtherosHeader h = read_header(q, order_.header_be);
    if (kHeader + h.csi_len + h.payload_len > len) { ++stats_.malformed; return; }
    if (h.csi_len == 0) { ++stats_.skipped; return; }  // a status report without CSI
    if (!valid_dims(h)) { ++stats_.malformed; return; }
    CsiFrame f;
    unpack_csi(q + kHeader, h.csi_len, h, f);
    CsiMeta& m = f.meta;
    m.record_index = index;
    m.timestamp_raw = h.timestamp;
    m.timestamp = static_cast<double>(h.timestamp) * 1e-6;
    m.rssi = ath_rssi(h.rssi);
    for (int a = 0; a < 3; ++a) m.rssi_ant[a] = ath_rssi(h.rssi_ant[a]);
    m.noise = static_cast<int8_t>(h.noise);
    m.rate = h.rate;
    m.bandwidth_mhz = h.bandwidth ? 40 : 20;
    m.frequency_mhz = h.channel;
    if (h.channel == 2484) m.channel = 14;
    else if (h.channel >= 2412 && h.channel < 2484) m.channel = (h.channel - 2407) / 5;
    else if (h.channel >= 5000 && h.channel <= 5900) m.channel = (h.channel - 5000) / 5;
    out.push_back(std::move(f));
    ++stats_.frames;
  }

  bool decided_ = false;
  ByteOrder order_{false, false};
};

}  // namespace

std::unique_ptr<StreamParser> make_atheros_stream_parser() { return std::make_unique<AtherosParser>(); }

// Sniffing for detect_format: the first record must fit the format in some byte order and
// carry CSI on a real WiFi channel (.dat is shared with Intel 5300 logs).
bool looks_like_atheros(const uint8_t* data, size_t len) {
  if (len < 2 + kHeader) return false;
  ByteOrder order{false, false};
  if (best_order(data, order) < 1) return false;
  const AtherosHeader h = read_header(data + 2, order.header_be);
  const uint16_t body = order.prefix_be ? bytes::be16(data) : bytes::le16(data);
  return h.csi_len > 0 && plausibility(body, h) == 3;
}

}  // namespace wdp
