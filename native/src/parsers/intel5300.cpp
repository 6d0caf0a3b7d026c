// Intel 5300 csitool log: records [u16 BE field_len][u8 code][field_len-1 bytes]; code 0xBB carries a
// beamforming (bfee) matrix. Decoding follows the csitool MATLAB reader (read_bfee.c + read_bf_file.m).
#include <cmath>

#include "wdp/bytes.hpp"
#include "wdp/parsers.hpp"

namespace wdp {
namespace {

constexpr uint8_t kCodeBfee = 0xBB;
constexpr size_t kBfeeHeader = 20;
constexpr uint16_t kSubcarrierGroups = 30;
// iwlwifi rate_n_flags: bit 8 = HT (MCS) rate, bit 11 = HT40 channel width.
constexpr uint32_t kRateHt = 0x100, kRateHt40 = 0x800;

// Payload size the firmware uses for an Nrx x Ntx matrix: per group 3 skipped bits + 16 bits per pair.
constexpr size_t bfee_payload_len(unsigned nrx, unsigned ntx) {
  return (kSubcarrierGroups * (nrx * ntx * 16 + 3) + 7) / 8;
}

// One signed 8-bit value starting at bit `index` of the payload (values straddle byte boundaries).
inline int8_t bits8(const uint8_t* payload, size_t index) {
  const unsigned rem = index % 8;
  const size_t byte = index / 8;
  const unsigned v = (payload[byte] >> rem) | (static_cast<unsigned>(payload[byte + 1]) << (8 - rem));
  return static_cast<int8_t>(static_cast<uint8_t>(v & 0xFF));
}

// The receive-chain permutation exactly as read_bf_file.m computes it (1-based), including its repair of
// inconsistent antenna_sel values. Returns false when MATLAB would index outside the Nrx rows (it would
// grow the matrix); the caller then keeps the rows in file order.
bool matlab_rx_permutation(const std::array<int, 3>& perm_in, unsigned nrx, std::array<int, 3>& perm) {
  perm = perm_in;
  if (nrx == 1) return true;  // one antenna: read_bf_file does not permute
  static constexpr int kTriangle[4] = {0, 1, 3, 6};
  // MATLAB sums all three entries here, even when Nrx == 2.
  if (perm[0] + perm[1] + perm[2] != kTriangle[nrx]) {
    if (nrx == 2) {
      if (perm[1] >= perm[0]) { perm[0] = 1; perm[1] = 2; } else { perm[0] = 2; perm[1] = 1; }
    } else {
      const int ones = (perm[0] == 1) + (perm[1] == 1) + (perm[2] == 1);
      if (ones - 1 == 2) perm = {1, 2, 3};
      else perm[2] = 6 - perm[0] - perm[1];
    }
  }
  for (unsigned r = 0; r < nrx; ++r)
    if (perm[r] < 1 || perm[r] > static_cast<int>(nrx)) return false;
  return true;
}

// 10*log10(sum of per-antenna powers) - 44 - agc, like get_total_rss.m; zero RSSIs are absent antennas.
int32_t total_rss_dbm(const uint8_t rssi[3], uint8_t agc) {
  double mag = 0.0;
  for (int k = 0; k < 3; ++k)
    if (rssi[k] != 0) mag += std::pow(10.0, rssi[k] / 10.0);
  if (mag <= 0.0) return kNoValue;
  return static_cast<int32_t>(std::lround(10.0 * std::log10(mag) - 44.0 - agc));
}

// Decodes one bfee record body (after the code byte). False if it fails validation.
bool decode_bfee(const uint8_t* b, size_t size, CsiFrame& f) {
  if (size < kBfeeHeader) return false;
  const unsigned nrx = b[8], ntx = b[9];
  if (nrx < 1 || nrx > 3 || ntx < 1 || ntx > 3) return false;
  const size_t len = bytes::le16(b + 16);
  if (len != bfee_payload_len(nrx, ntx) || kBfeeHeader + len > size) return false;

  const uint8_t antenna_sel = b[15];
  const std::array<int, 3> perm_file{(antenna_sel & 0x3) + 1, ((antenna_sel >> 2) & 0x3) + 1,
                                     ((antenna_sel >> 4) & 0x3) + 1};
  std::array<int, 3> perm{};
  if (!matlab_rx_permutation(perm_file, nrx, perm)) perm = {1, 2, 3};

  f.resize(kSubcarrierGroups, static_cast<uint16_t>(nrx), static_cast<uint16_t>(ntx));
  const uint8_t* payload = b + kBfeeHeader;
  size_t index = 0;
  for (size_t s = 0; s < kSubcarrierGroups; ++s) {
    index += 3;
    // File order within a group is rx-major, tx fastest (MATLAB fills Ntx x Nrx column-major).
    // Raw rx row r lands in row perm[r]; applied in order so repeated entries overwrite like MATLAB's
    // csi(:, perm, :) = csi(:, 1:Nrx, :); rows nobody writes keep the file's row.
    cf32 raw[9];
    for (unsigned j = 0; j < nrx * ntx; ++j, index += 16)
      raw[j] = cf32(bits8(payload, index), bits8(payload, index + 8));
    for (unsigned j = 0; j < nrx * ntx; ++j) f.at(s, j / ntx, j % ntx) = raw[j];
    if (nrx > 1)
      for (unsigned r = 0; r < nrx; ++r)
        for (unsigned t = 0; t < ntx; ++t) f.at(s, static_cast<size_t>(perm[r] - 1), t) = raw[r * ntx + t];
  }

  CsiMeta& m = f.meta;
  const uint32_t timestamp_low = bytes::le32(b);
  m.timestamp_raw = timestamp_low;
  m.timestamp = timestamp_low * 1e-6;
  m.seq = bytes::le16(b + 4);
  const uint8_t rssi[3] = {b[10], b[11], b[12]};
  for (int k = 0; k < 3; ++k) m.rssi_ant[k] = rssi[k];
  m.noise = static_cast<int8_t>(b[13]);  // -127 = not measured (get_scaled_csi then assumes -92)
  m.agc = b[14];
  m.rssi = total_rss_dbm(rssi, b[14]);
  const uint32_t rate = bytes::le16(b + 18);
  m.rate = static_cast<int32_t>(rate);
  m.bandwidth_mhz = ((rate & kRateHt) && (rate & kRateHt40)) ? 40 : 20;
  for (int k = 0; k < 3; ++k) m.perm[k] = static_cast<int8_t>(perm_file[k] - 1);  // as in the file
  return true;
}

class Intel5300StreamParser final : public StreamParser {
 public:
  const char* format() const override { return "intel5300"; }

 protected:
  size_t parse_some(const uint8_t* p, size_t n, bool /*eof*/, std::vector<CsiFrame>& out) override {
    size_t off = 0;
    // Every record advances by at least its 2-byte length field, so garbage cannot stall the loop, and
    // the u16 length bounds what is buffered while waiting for a record's tail to 64 KiB.
    while (n - off >= 2) {
      const size_t field_len = bytes::be16(p + off);
      const size_t total = 2 + field_len;
      if (n - off < total) break;  // wait for the rest; at eof the base class counts the truncation
      const auto record_index = static_cast<uint32_t>(stats_.records++);
      if (field_len == 0) {
        ++stats_.malformed;  // no room for even the code byte
      } else if (p[off + 2] != kCodeBfee) {
        ++stats_.skipped;    // other connector messages (e.g. 0xC1) carry no CSI
      } else {
        CsiFrame f;
        if (decode_bfee(p + off + 3, field_len - 1, f)) {
          f.meta.record_index = record_index;
          out.push_back(std::move(f));
          ++stats_.frames;
        } else {
          ++stats_.malformed;
        }
      }
      off += total;
    }
    return off;
  }
};

}  // namespace

std::unique_ptr<StreamParser> make_intel5300_stream_parser() {
  return std::make_unique<Intel5300StreamParser>();
}

}  // namespace wdp
