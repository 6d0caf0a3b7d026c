// PicoScenes .csi: a stream of "ModularPicoScenesRxFrame"s, little-endian throughout.
//
//   frame   = u32 length (bytes after this field) | u32 magic 0x20150315 | u16 version 1 | u8 numSegments
//             | numSegments x segment | 802.11 MPDU (rest of the frame)
//   segment = u32 length (bytes after this field) | u8 nameLength | name (may end in NUL) | u16 version
//             | body
//
// Decoded segments: RxSBasic v1-v3 (metadata), MVMExtra v1 (AX200/AX210 clock), CSI v1-v4. Every other
// segment (ExtraInfo, PilotCSI, LegacyCSI, BasebandSignal, PreEQSymbols, ...) is skipped by its length.
// Layouts follow the PicoScenes rxs_parsing_core (as vendored in citysu/csiread) and CSIKit's CSI v4 reader.
//
// Output axis order is ours: csi (n_sub, n_rx, n_tx) where
//   n_sub = CSI numTones (30 for IWL5300), n_rx = numRx,
//   n_tx  = spatial streams per rx chain (numSTS [+ numESS] as the buffer holds them) x numCSI,
//           tx index = csi_index * n_sts + sts (numCSI > 1 folds into the tx axis; 1 in every known file).
// CSIKit's matrices for QCA9300 are (tones, sts, rx) and carry +1 on both parts (as its Atheros reader);
// PicoScenes' own parser has no such offset, neither do we.
//
// Metadata: timestamp = RxSBasic clock (µs for NICs, ns for SDRs) in seconds, except Intel MVM cards, whose
// MVMExtra µs clock is used (u32, wraps after 71 min); rssi/rssi_ant/noise in dBm (-128 = not measured);
// frequency_mhz/channel from RxSBasic's center frequency; bandwidth_mhz = channel bandwidth; rate = MCS;
// chip = CSI device type (0x9300, 0x5300, 0x2000, 0x2100, 0x1234, 0x1000); mac = addr2 (transmitter) and
// seq = sequence number of the 802.11 header when the frame has them (else zero MAC / -1).
#include <algorithm>
#include <cstring>
#include <string_view>

#include "wdp/bytes.hpp"
#include "wdp/parsers.hpp"

namespace wdp {
namespace {

constexpr uint32_t kMagic = 0x20150315u;
constexpr size_t kFrameHeader = 11;           // u32 length, u32 magic, u16 version, u8 numSegments
constexpr uint32_t kMaxFrameLength = 16u << 20;  // sanity cap; real frames (with baseband dumps) < 100 kB

enum Device : uint16_t {
  kQCA9300 = 0x9300,
  kIWL5300 = 0x5300,
  kAX200 = 0x2000,
  kAX210 = 0x2100,
  kUSRP = 0x1234,
  kVirtualSDR = 0x1000,
};

// Bounds-checked little-endian cursor: reading past the end yields zeros and clears ok.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  const uint8_t* here() const { return p_ + pos_; }
  bool take(size_t k) {
    if (!ok_ || k > left()) { ok_ = false; return false; }
    pos_ += k;
    return true;
  }
  uint8_t u8() { return take(1) ? p_[pos_ - 1] : 0; }
  int8_t i8() { return static_cast<int8_t>(u8()); }
  uint16_t u16() { return take(2) ? bytes::le16(p_ + pos_ - 2) : 0; }
  int16_t i16() { return static_cast<int16_t>(u16()); }
  uint32_t u32() { return take(4) ? bytes::le32(p_ + pos_ - 4) : 0; }
  uint64_t u64() { return take(8) ? bytes::le64(p_ + pos_ - 8) : 0; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool ok_ = true;
};

struct RxSBasic {
  bool present = false;
  uint16_t device = 0;
  uint64_t timestamp = 0;
  int32_t center_mhz = 0;
  int32_t cbw = 0;
  int32_t mcs = 0;
  int32_t noise = kNoValue;
  int32_t rssi = kNoValue;
  std::array<int32_t, 3> rssi_chain{kNoValue, kNoValue, kNoValue};
};

// -128 is what the drivers write for "not measured" (AX200 noise floor, unused chains).
int32_t dbm_or_none(int8_t v, int32_t base) { return v == -128 ? kNoValue : base + v; }

bool parse_rx_basic(uint16_t version, const uint8_t* p, size_t n, RxSBasic& out) {
  Cursor c(p, n);
  out.device = c.u16();
  out.timestamp = c.u64();
  out.center_mhz = c.u16();
  if (version >= 3) c.u16();  // control frequency
  if (version >= 3) out.cbw = c.u16();
  c.u8();  // packet format
  const uint16_t cbw = c.u16();  // v1/v2: channel bandwidth, v3: packet bandwidth
  if (version < 3) out.cbw = cbw;
  c.u16();  // guard interval
  out.mcs = c.u8();
  c.u8(); c.u8(); c.u8();       // numSTS, numESS, numRx
  if (version >= 2) { c.u8(); c.u8(); }  // numUser, userIndex
  const int8_t noise = c.i8();
  const int8_t rssi = c.i8();
  int8_t chain[3] = {c.i8(), c.i8(), c.i8()};
  if (!c.ok()) return false;
  // v1/v2 store RSSI relative to the noise floor (PicoScenes adds them back); v3 stores dBm.
  const int32_t nf = noise == -128 ? kNoValue : noise;
  const int32_t base = (version < 3 && nf != kNoValue) ? nf : 0;
  out.noise = nf;
  out.rssi = dbm_or_none(rssi, base);
  for (int k = 0; k < 3; ++k) out.rssi_chain[k] = dbm_or_none(chain[k], base);
  out.present = true;
  return true;
}

struct CsiHeader {
  uint16_t device = 0;
  int8_t format = -1;   // 0 non-HT, 1 HT, 2 VHT, 3 HE-SU, 4 HE-MU
  uint16_t cbw = 0;
  uint16_t tones = 0;
  uint8_t sts = 0, rx = 0, ess = 0;
  uint16_t n_csi = 1;
  uint8_t ant_sel = 0;
  int16_t sc_offset = 0;
};

// Subcarrier numbering of the tones a device reports (rxs_parsing_core's tables).
std::vector<int16_t> ranges(std::initializer_list<std::pair<int, int>> spans) {
  std::vector<int16_t> v;
  for (auto [a, b] : spans)
    for (int i = a; i <= b; ++i) v.push_back(static_cast<int16_t>(i));
  return v;
}

std::vector<int16_t> standard_indices(int format, int cbw) {
  const bool ht_vht = format == 1 || format == 2;
  const bool he = format == 3 || format == 4;
  if (format == 0 && cbw == 20) return ranges({{-26, -1}, {1, 26}});
  if (ht_vht && cbw == 20) return ranges({{-28, -1}, {1, 28}});
  if (ht_vht && cbw == 40) return ranges({{-58, -2}, {2, 58}});
  if (format == 2 && cbw == 80) return ranges({{-122, -2}, {2, 122}});
  if (format == 2 && cbw == 160) return ranges({{-250, -130}, {-126, -6}, {6, 126}, {130, 250}});
  if (he && cbw == 20) return ranges({{-122, -2}, {2, 122}});
  if (he && cbw == 40) return ranges({{-244, -3}, {3, 244}});
  if (he && cbw == 80) return ranges({{-500, -3}, {3, 500}});
  if (he && cbw == 160) return ranges({{-1012, -515}, {-509, -12}, {12, 509}, {515, 1012}});
  return {};
}

std::vector<int16_t> iwl5300_indices(int cbw) {
  if (cbw == 20)
    return {-28, -26, -24, -22, -20, -18, -16, -14, -12, -10, -8, -6, -4, -2, -1,
            1,   3,   5,   7,   9,   11,  13,  15,  17,  19,  21,  23,  25, 27, 28};
  if (cbw == 40)
    return {-58, -54, -50, -46, -42, -38, -34, -30, -26, -22, -18, -14, -10, -6, -2,
            2,   6,   10,  14,  18,  22,  26,  30,  34,  38,  42,  46,  50,  54, 58};
  return {};
}

// Indices from a table, shifted by the segment's offset; empty when the table does not fit n_sub.
void set_indices(CsiFrame& f, std::vector<int16_t> idx, int16_t offset) {
  if (idx.size() != f.n_sub) return;
  for (auto& i : idx) i = static_cast<int16_t>(i + offset);
  f.subcarrier_index = std::move(idx);
}

bool shape_fits(size_t sub, size_t rx, size_t tx) {
  return sub > 0 && rx > 0 && tx > 0 && sub <= 0xFFFF && rx <= 0xFFFF && tx <= 0xFFFF;
}

// QCA9300: 10-bit two's-complement values, little-endian bit stream, imag before real;
// element order rx fastest, then stream, then tone.
bool decode_qca9300(const CsiHeader& h, const uint8_t* p, size_t n, CsiFrame& f) {
  if (h.rx == 0 || h.tones == 0) return false;
  const size_t per_stream_bits = static_cast<size_t>(h.tones) * h.rx * 20;
  const size_t streams = n * 8 / per_stream_bits;  // PicoScenes: actual streams per chain from the length
  if (!shape_fits(h.tones, h.rx, streams)) return false;
  f.resize(h.tones, h.rx, static_cast<uint16_t>(streams));
  auto bits10 = [p](size_t bit) {
    uint32_t v = static_cast<uint32_t>(p[bit / 8]) | (static_cast<uint32_t>(p[bit / 8 + 1]) << 8);
    v = (v >> (bit % 8)) & 0x3FFu;
    return static_cast<int32_t>(v) - ((v & 0x200u) ? 1024 : 0);
  };
  // A 10-bit value that ends at or before bit 8n has its 2-byte window inside [0, n).
  size_t bit = 0;
  for (size_t t = 0; t < h.tones; ++t)
    for (size_t s = 0; s < streams; ++s)
      for (size_t r = 0; r < h.rx; ++r) {
        const int32_t im = bits10(bit);
        const int32_t re = bits10(bit + 10);
        bit += 20;
        f.at(t, r, s) = cf32(static_cast<float>(re), static_cast<float>(im));
      }
  set_indices(f, standard_indices(1, h.cbw), h.sc_offset);  // the QCA9300 reports HT tones
  return true;
}

// IWL5300: the csitool bfee payload; 30 groups, each 3 skipped bits then rx x tx int8 (real, imag) pairs.
bool decode_iwl5300(const CsiHeader& h, const uint8_t* p, size_t n, CsiFrame& f) {
  if (h.rx == 0 || h.rx > 3 || n < 12) return false;
  const size_t ntx = (n - 12) / 60 / h.rx;
  if (ntx == 0 || ntx > 3) return false;
  const size_t need = (30 * (h.rx * ntx * 16 + 3) + 7) / 8;
  if (need > n) return false;
  f.resize(30, h.rx, static_cast<uint16_t>(ntx));
  // Antenna permutation as the csitool MATLAB reader and CSIKit apply it: only with 3 rx chains and a
  // valid permutation (with 1-2 chains the field does not describe the used antennas).
  uint8_t perm[3] = {0, 1, 2};
  const uint8_t sel[3] = {static_cast<uint8_t>(h.ant_sel & 3), static_cast<uint8_t>((h.ant_sel >> 2) & 3),
                          static_cast<uint8_t>((h.ant_sel >> 4) & 3)};
  if (h.rx == 3 && sel[0] != sel[1] && sel[1] != sel[2] && sel[0] != sel[2] && sel[0] < 3 && sel[1] < 3 &&
      sel[2] < 3)
    std::copy(sel, sel + 3, perm);
  for (int k = 0; k < 3; ++k) f.meta.perm[k] = static_cast<int8_t>(sel[k]);
  auto byte = [p, n](size_t i) -> unsigned { return i < n ? p[i] : 0u; };
  size_t index = 0;
  for (size_t s = 0; s < 30; ++s) {
    index += 3;
    const unsigned rem = index % 8;
    for (size_t r = 0; r < h.rx; ++r)
      for (size_t t = 0; t < ntx; ++t) {
        const size_t b = index / 8;
        const auto re = static_cast<int8_t>(((byte(b) >> rem) | (byte(b + 1) << (8 - rem))) & 0xFF);
        const auto im = static_cast<int8_t>(((byte(b + 1) >> rem) | (byte(b + 2) << (8 - rem))) & 0xFF);
        f.at(s, perm[r], t) = cf32(re, im);
        index += 16;
      }
  }
  set_indices(f, iwl5300_indices(h.cbw), h.sc_offset);
  return true;
}

// Intel MVM (AX200/AX210): int16 (real, imag) pairs, tone fastest, then stream, then rx, then CSI index.
bool decode_iwlmvm(const CsiHeader& h, const uint8_t* p, size_t n, CsiFrame& f) {
  const size_t n_csi = std::max<size_t>(h.n_csi, 1);
  const size_t per_stream = static_cast<size_t>(h.tones) * h.rx * n_csi * 4;
  if (per_stream == 0 || n % per_stream != 0) return false;
  const size_t sts = n / per_stream;  // = numSTS (+ numESS when the card reports extra streams)
  if (!shape_fits(h.tones, h.rx, sts * n_csi)) return false;
  f.resize(h.tones, h.rx, static_cast<uint16_t>(sts * n_csi));
  size_t pos = 0;
  for (size_t c = 0; c < n_csi; ++c)
    for (size_t r = 0; r < h.rx; ++r)
      for (size_t s = 0; s < sts; ++s)
        for (size_t t = 0; t < h.tones; ++t, pos += 4) {
          const auto re = static_cast<int16_t>(bytes::le16(p + pos));
          const auto im = static_cast<int16_t>(bytes::le16(p + pos + 2));
          f.at(t, r, c * sts + s) = cf32(re, im);
        }
  set_indices(f, standard_indices(h.format, h.cbw), h.sc_offset);
  return true;
}

// SDR (USRP, virtual SDR): numTones int16 subcarrier indices, then a PicoScenes SignalMatrix:
// "BB" "v1"|"v2" | u8 ndim | ndim x (u32 (v1) | u64 (v2)) | 'C'/'R' complexity | type char | u8 bits
// | 'C'/'R' majority | data.
// Logical dims are (tones, streams, rx[, csi...]); trailing dims fold into the tx axis.
bool decode_sdr(const CsiHeader& h, const uint8_t* p, size_t n, CsiFrame& f) {
  Cursor c(p, n);
  std::vector<int16_t> idx(h.tones);
  for (auto& i : idx) i = c.i16();
  if (!c.ok() || c.left() < 5 || std::memcmp(c.here(), "BBv", 3) != 0) return false;
  const uint8_t mversion = c.here()[3];
  if (mversion != '1' && mversion != '2') return false;
  c.take(4);
  const uint8_t ndim = c.u8();
  if (ndim == 0 || ndim > 8) return false;
  uint64_t dims[8];
  for (size_t d = 0; d < ndim; ++d) dims[d] = mversion == '1' ? c.u32() : c.u64();
  const char cplx = static_cast<char>(c.u8());
  const char type = static_cast<char>(c.u8());
  const uint8_t bits = c.u8();
  const char major = static_cast<char>(c.u8());
  if (!c.ok() || (cplx != 'C' && cplx != 'R') || (major != 'C' && major != 'R')) return false;
  const size_t elem = bits / 8;
  const bool known = (type == 'D' && bits == 64) || (type == 'F' && bits == 32) ||
                     (type == 'I' && (bits == 8 || bits == 16 || bits == 32)) ||
                     (type == 'U' && (bits == 8 || bits == 16 || bits == 32));
  if (!known) return false;
  // Overflow-safe element count, bounded by the bytes actually present.
  const size_t parts = cplx == 'C' ? 2 : 1;
  uint64_t numel = 1;
  for (size_t d = 0; d < ndim; ++d) {
    if (dims[d] == 0 || dims[d] > c.left()) return false;
    numel *= dims[d];
    if (numel * elem * parts > c.left()) return false;
  }
  if (numel * elem * parts != c.left()) return false;
  const size_t tones = dims[0];
  const size_t sts = ndim > 1 ? dims[1] : 1;
  const size_t rx = ndim > 2 ? dims[2] : 1;
  const size_t rest = numel / (tones * sts * rx);
  if (tones != h.tones || !shape_fits(tones, rx, sts * rest)) return false;
  const uint8_t* data = c.here();
  auto scalar = [&](size_t i) -> float {
    const uint8_t* q = data + i * elem;
    switch (type) {
      case 'D': return static_cast<float>(bytes::lef64(q));
      case 'F': return bytes::lef32(q);
      case 'I': return bits == 8 ? static_cast<int8_t>(q[0])
                    : bits == 16 ? static_cast<int16_t>(bytes::le16(q))
                                 : static_cast<float>(static_cast<int32_t>(bytes::le32(q)));
      default: return bits == 8 ? q[0] : bits == 16 ? bytes::le16(q) : static_cast<float>(bytes::le32(q));
    }
  };
  f.resize(static_cast<uint16_t>(tones), static_cast<uint16_t>(rx), static_cast<uint16_t>(sts * rest));
  for (size_t k = 0; k < rest; ++k)
    for (size_t r = 0; r < rx; ++r)
      for (size_t s = 0; s < sts; ++s)
        for (size_t t = 0; t < tones; ++t) {
          const size_t lin = major == 'C' ? t + tones * (s + sts * (r + rx * k))
                                          : ((t * sts + s) * rx + r) * rest + k;
          const float re = scalar(lin * parts);
          const float im = parts == 2 ? scalar(lin * parts + 1) : 0.0f;
          f.at(t, r, k * sts + s) = cf32(re, im);
        }
  f.subcarrier_index = std::move(idx);
  return true;
}

enum class CsiResult { kOk, kUnsupported, kMalformed };

CsiResult parse_csi_segment(uint16_t version, const uint8_t* p, size_t n, CsiFrame& f) {
  if (version < 1 || version > 4) return CsiResult::kUnsupported;
  Cursor c(p, n);
  CsiHeader h;
  h.device = c.u16();
  if (version >= 4) c.u8();  // firmware version
  h.format = c.i8();
  h.cbw = c.u16();
  c.u64(); c.u64(); c.u32();  // carrier frequency, sampling rate, subcarrier bandwidth
  h.tones = c.u16();
  h.sts = c.u8();
  h.rx = c.u8();
  h.ess = c.u8();
  if (version >= 3) h.n_csi = c.u16();
  h.ant_sel = c.u8();
  if (version >= 2) h.sc_offset = c.i16();
  const uint32_t length = c.u32();
  if (!c.ok() || length > c.left()) return CsiResult::kMalformed;
  const uint8_t* payload = c.here();
  f.meta.chip = h.device;
  bool ok = false;
  switch (h.device) {
    case kQCA9300: ok = decode_qca9300(h, payload, length, f); break;
    case kIWL5300: ok = decode_iwl5300(h, payload, length, f); break;
    case kAX200:
    case kAX210: ok = decode_iwlmvm(h, payload, length, f); break;
    case kUSRP:
    case kVirtualSDR: ok = decode_sdr(h, payload, length, f); break;
    default: return CsiResult::kUnsupported;
  }
  return ok ? CsiResult::kOk : CsiResult::kMalformed;
}

int32_t channel_of(int32_t mhz) {
  if (mhz == 2484) return 14;
  if (mhz >= 2412 && mhz <= 2472) return (mhz - 2407) / 5;
  if (mhz >= 5955 && mhz <= 7115) return (mhz - 5950) / 5;
  if (mhz >= 5000 && mhz < 5955) return (mhz - 5000) / 5;
  return kNoValue;
}

enum class FrameResult { kFrame, kNoCsi, kMalformed };

// One complete frame [p, p + n), header already validated.
FrameResult parse_frame(const uint8_t* p, size_t n, CsiFrame& f) {
  const unsigned n_segments = p[10];
  size_t pos = kFrameHeader;
  RxSBasic basic;
  uint64_t mvm_clock = 0;
  bool has_mvm = false;
  CsiResult csi = CsiResult::kUnsupported;
  bool has_csi = false;
  for (unsigned i = 0; i < n_segments; ++i) {
    if (n - pos < 4) return FrameResult::kMalformed;
    const uint32_t seg_len = bytes::le32(p + pos);
    if (seg_len > n - pos - 4 || seg_len < 3) return FrameResult::kMalformed;
    const uint8_t* seg = p + pos + 4;
    const size_t name_len = seg[0];
    if (name_len + 3 > seg_len) return FrameResult::kMalformed;
    std::string_view name(reinterpret_cast<const char*>(seg + 1), name_len);
    while (!name.empty() && name.back() == '\0') name.remove_suffix(1);
    const uint16_t version = bytes::le16(seg + 1 + name_len);
    const uint8_t* body = seg + 3 + name_len;
    const size_t body_len = seg_len - 3 - name_len;
    pos += 4 + seg_len;
    if (name == "RxSBasic") {
      if (version < 1 || version > 3) continue;  // newer layout: keep the CSI, lose the metadata
      if (!parse_rx_basic(version, body, body_len, basic)) return FrameResult::kMalformed;
    } else if (name == "MVMExtra") {
      // u16 header length, then Intel's parsed CSI header; its µs clock sits at byte 88 of that.
      if (body_len >= 2 + 92) {
        mvm_clock = bytes::le32(body + 2 + 88);
        has_mvm = true;
      }
    } else if (name == "CSI" && !has_csi) {
      has_csi = true;
      csi = parse_csi_segment(version, body, body_len, f);
      if (csi == CsiResult::kMalformed) return FrameResult::kMalformed;
    }
  }
  if (!has_csi || csi != CsiResult::kOk) return FrameResult::kNoCsi;

  auto& m = f.meta;
  if (basic.present) {
    if (m.chip == kNoValue) m.chip = basic.device;
    const bool sdr = basic.device == kUSRP || basic.device == kVirtualSDR;
    // Intel MVM cards: RxSBasic's timestamp is 0 for HT frames and another clock for non-HT ones;
    // MVMExtra's u32 µs clock is there for every frame (CSIKit reads it too), so use that one alone.
    m.timestamp_raw = has_mvm ? mvm_clock : basic.timestamp;
    m.timestamp = static_cast<double>(m.timestamp_raw) / (sdr ? 1e9 : 1e6);  // SDR: ns, NICs: µs
    m.frequency_mhz = basic.center_mhz;
    m.channel = channel_of(basic.center_mhz);
    m.bandwidth_mhz = basic.cbw;
    m.noise = basic.noise;
    m.rssi = basic.rssi;
    for (int k = 0; k < 3; ++k) m.rssi_ant[k] = basic.rssi_chain[k];
    m.rate = basic.mcs;
  }
  // 802.11 header: frame control, duration, addr1, addr2 (transmitter), addr3, sequence control.
  const uint8_t* mpdu = p + pos;
  const size_t mpdu_len = n - pos;
  if (mpdu_len >= 16) {
    const unsigned type = (mpdu[0] >> 2) & 3, subtype = (mpdu[0] >> 4) & 0xF;
    const bool control = type == 1;
    const bool no_addr2 = control && (subtype == 12 || subtype == 13);  // CTS, ACK carry one address
    if (!no_addr2) std::copy(mpdu + 10, mpdu + 16, m.mac.begin());
    if (!control && mpdu_len >= 24) m.seq = bytes::le16(mpdu + 22) >> 4;
  }
  return FrameResult::kFrame;
}

class PicoScenesStreamParser final : public StreamParser {
 public:
  const char* format() const override { return "picoscenes"; }

 protected:
  size_t parse_some(const uint8_t* p, size_t n, bool eof, std::vector<CsiFrame>& out) override {
    size_t pos = 0;
    while (pos < n) {
      if (resyncing_) {
        // Look for the next magic; a frame starts 4 bytes before it.
        size_t found = n;
        for (size_t i = pos + 4; i + 4 <= n; ++i)
          if (bytes::le32(p + i) == kMagic) { found = i - 4; break; }
        if (found == n) {
          // Keep the last 7 bytes (a length and most of a magic) for the next chunk; at eof drop them.
          const size_t keep = eof ? 0 : std::min<size_t>(n - pos, 7);
          return n - keep;
        }
        pos = found;
        resyncing_ = false;
      }
      const size_t avail = n - pos;
      const uint8_t* f = p + pos;
      if (avail < 8) break;
      const uint32_t length = bytes::le32(f);
      const bool magic_ok = bytes::le32(f + 4) == kMagic;
      if (!magic_ok && !started_)
        throw ParseError("not a PicoScenes .csi stream (no frame magic at offset 4)");
      started_ = true;
      const bool header_ok = magic_ok && length >= kFrameHeader - 4 && length <= kMaxFrameLength &&
                             (avail < 10 || bytes::le16(f + 8) == 1);
      if (!header_ok) {
        // One malformed count per run of bad bytes, however many false starts the resync meets.
        if (!in_garbage_) ++stats_.malformed;
        in_garbage_ = true;
        resyncing_ = true;
        pos += 1;
        continue;
      }
      const size_t total = static_cast<size_t>(length) + 4;
      if (avail < total) break;
      ++stats_.records;
      CsiFrame frame;
      frame.meta.record_index = record_index_++;
      switch (parse_frame(f, total, frame)) {
        case FrameResult::kFrame:
          ++stats_.frames;
          out.push_back(std::move(frame));
          break;
        case FrameResult::kNoCsi: ++stats_.skipped; break;
        case FrameResult::kMalformed: ++stats_.malformed; break;
      }
      in_garbage_ = false;
      pos += total;
    }
    // A trailing partial frame stays unconsumed; at eof the base class counts it as truncated.
    return pos;
  }

 private:
  bool started_ = false;     // a frame magic has been seen (before that, bad bytes mean "wrong format")
  bool resyncing_ = false;   // skipping bytes until the next frame magic
  bool in_garbage_ = false;  // no good frame since the last malformed header
  uint32_t record_index_ = 0;
};

}  // namespace

std::unique_ptr<StreamParser> make_picoscenes_stream_parser() {
  return std::make_unique<PicoScenesStreamParser>();
}

}  // namespace wdp
