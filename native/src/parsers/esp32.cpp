// ESP32 CSI as CSV text lines (stream and UDP datagram).
// ESP32-CSI-Tool: 26 fields `CSI_DATA,role,mac,...,real_timestamp,len,[v0 v1 ... ]`;
// espressif/esp-csi: 25 fields `CSI_DATA,seq,mac,...,len,first_word,"[v0,v1,...]"` (ESP32, S2, S3, C3),
// 15 fields `CSI_DATA,id,mac,rssi,rate,noise_floor,fft_gain,agc_gain,channel,...,"[...]"` (C5, C6, C61)
// and 13 (the same without the gains, older esp-csi on the C6).
// A header line (`type,...`) names the columns and is then used for the following lines, so other
// firmware column sets work as long as they name their columns. Values are int8 pairs (imag, real).
// Rows may sit inside a larger CSV row (a logger's own columns before `CSI_DATA`, more after the
// array, the whole row quoted); a row that was cut and joined to the next one is read from its last
// `CSI_DATA,`.
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

#include "wdp/parsers.hpp"

namespace wdp {
namespace {

// Columns the parser reads; kNumeric: validated as a number, otherwise unused; kText: not checked.
enum class Col : uint8_t {
  kText, kNumeric, kSeq, kMac, kRssi, kRate, kSigMode, kMcs, kBandwidth, kNoise, kChannel,
  kLocalTimestamp, kRealTimestamp, kData
};

struct NamedCol {
  std::string_view name;
  Col col;
};

constexpr NamedCol kColumnNames[] = {
    {"type", Col::kText}, {"role", Col::kText}, {"seq", Col::kSeq}, {"id", Col::kSeq}, {"mac", Col::kMac},
    {"rssi", Col::kRssi}, {"rate", Col::kRate}, {"sig_mode", Col::kSigMode}, {"mcs", Col::kMcs},
    {"bandwidth", Col::kBandwidth}, {"cwb", Col::kBandwidth}, {"noise_floor", Col::kNoise},
    {"channel", Col::kChannel}, {"local_timestamp", Col::kLocalTimestamp},
    {"real_timestamp", Col::kRealTimestamp}, {"data", Col::kData}, {"CSI_DATA", Col::kData},
    {"smoothing", Col::kNumeric}, {"not_sounding", Col::kNumeric}, {"aggregation", Col::kNumeric},
    {"stbc", Col::kNumeric}, {"fec_coding", Col::kNumeric}, {"sgi", Col::kNumeric},
    {"ampdu_cnt", Col::kNumeric}, {"secondary_channel", Col::kNumeric}, {"ant", Col::kNumeric},
    {"sig_len", Col::kNumeric}, {"rx_state", Col::kNumeric}, {"real_time_set", Col::kNumeric},
    {"len", Col::kNumeric}, {"first_word", Col::kNumeric}, {"fft_gain", Col::kNumeric},
    {"agc_gain", Col::kNumeric}, {"rx_format", Col::kNumeric},
};

Col column_of(std::string_view name) {
  for (const auto& c : kColumnNames)
    if (c.name == name) return c.col;
  return Col::kText;
}

using Layout = std::vector<Col>;

Layout layout_from_names(std::initializer_list<std::string_view> names) {
  Layout l;
  for (auto n : names) l.push_back(column_of(n));
  return l;
}

// Column sets used when a log has no header line, told apart by their field count.
const Layout& csi_tool_layout() {
  static const Layout l = layout_from_names(
      {"type", "role", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
       "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel",
       "local_timestamp", "ant", "sig_len", "rx_state", "real_time_set", "real_timestamp", "len", "data"});
  return l;
}
const Layout& esp_csi_layout() {
  static const Layout l = layout_from_names(
      {"type", "seq", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
       "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel",
       "local_timestamp", "ant", "sig_len", "rx_state", "len", "first_word", "data"});
  return l;
}
// esp-csi on the Wi-Fi 6 chips (C5, C6, C61): rx_ctrl has no sig_mode/mcs/cwb/... fields.
const Layout& esp_csi_he_layout() {
  static const Layout l = layout_from_names(
      {"type", "id", "mac", "rssi", "rate", "noise_floor", "fft_gain", "agc_gain", "channel", "local_timestamp",
       "sig_len", "rx_state", "len", "first_word", "data"});
  return l;
}
const Layout& esp_csi_he_nogain_layout() {
  static const Layout l = layout_from_names(
      {"type", "id", "mac", "rssi", "rate", "noise_floor", "channel", "local_timestamp", "sig_len", "rx_state",
       "len", "first_word", "data"});
  return l;
}

// Layout of a headerless row by its field count (type .. data).
const Layout* layout_by_count(size_t n_fields) {
  for (const Layout* l : {&csi_tool_layout(), &esp_csi_layout(), &esp_csi_he_layout(), &esp_csi_he_nogain_layout()})
    if (l->size() == n_fields) return l;
  return nullptr;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool parse_int(std::string_view s, int64_t& v) {
  s = trim(s);
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

bool parse_double(std::string_view s, double& v) {
  s = trim(s);
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(v);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "aa:bb:cc:dd:ee:ff" (either case).
bool parse_mac(std::string_view s, std::array<uint8_t, 6>& mac) {
  s = trim(s);
  if (s.size() != 17) return false;
  for (size_t k = 0; k < 6; ++k) {
    const int hi = hex_digit(s[3 * k]), lo = hex_digit(s[3 * k + 1]);
    if (hi < 0 || lo < 0 || (k < 5 && s[3 * k + 2] != ':')) return false;
    mac[k] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

// "v0 v1 ..." or "v0,v1,..." -> int8 pairs (imag, real) -> csi[k] = real + j*imag.
bool parse_values(std::string_view s, CsiFrame& f) {
  std::vector<int8_t> v;
  v.reserve(s.size() / 2);
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == ',' || c == '\t') { ++i; continue; }
    int64_t x = 0;
    auto [ptr, ec] = std::from_chars(s.data() + i, s.data() + s.size(), x);
    if (ec != std::errc() || x < -128 || x > 127) return false;
    const size_t end = static_cast<size_t>(ptr - s.data());
    if (end < s.size() && s[end] != ' ' && s[end] != ',' && s[end] != '\t') return false;  // "12x"
    v.push_back(static_cast<int8_t>(x));
    i = end;
  }
  if (v.empty() || v.size() % 2 != 0 || v.size() / 2 > UINT16_MAX) return false;
  f.resize(static_cast<uint16_t>(v.size() / 2), 1, 1);
  for (size_t k = 0; k < f.n_sub; ++k) f.csi[k] = cf32(v[2 * k + 1], v[2 * k]);
  return true;
}

enum class LineKind { kBlank, kHeader, kOther, kFrame, kMalformed };

// Turns one text line into a frame; remembers the column layout of the last header line seen.
class Esp32LineDecoder {
 public:
  LineKind decode(std::string_view line, CsiFrame& f) {
    line = trim(line);
    if (line.empty()) return LineKind::kBlank;
    // Serial logs interleave other output; a CSI row may follow stray text on the same line. The last
    // `CSI_DATA,` starts the row: an earlier one belongs to a row cut off by this one (board reset, lost
    // bytes) and could not be complete.
    if (line.find('[') == std::string_view::npos) {  // every row has its array; headers have none
      if (const size_t h = header_start(line); h != std::string_view::npos) {
        set_header(line.substr(h));
        return LineKind::kHeader;
      }
    }
    const size_t at = line.rfind("CSI_DATA,");
    if (at == std::string_view::npos) return LineKind::kOther;
    return decode_row(line.substr(at), f) ? LineKind::kFrame : LineKind::kMalformed;
  }

 private:
  // Where the firmware's own header (`type,...`) starts: at the line's start, or after a logger's
  // columns (`idx,epoch,type,...,mac,...`, then only when it names a mac column).
  static size_t header_start(std::string_view line) {
    if (line.substr(0, 5) == "type,") return 0;
    const size_t at = line.find(",type,");
    if (at == std::string_view::npos || line.find(",mac,", at) == std::string_view::npos) return std::string_view::npos;
    return at + 1;
  }

  void set_header(std::string_view line) {
    header_.clear();
    size_t start = 0;
    size_t data = std::string_view::npos;
    while (true) {
      const size_t comma = line.find(',', start);
      const std::string_view name = trim(line.substr(start, comma - start));
      if (!header_.empty() && (name == "data" || name == "CSI_DATA")) data = header_.size();
      header_.push_back(column_of(name));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    // The CSI array is the column named data (CSI_DATA in ESP32-CSI-Tool), else the last one; columns
    // a logger appends after it are not part of the row.
    if (data != std::string_view::npos) header_.resize(data + 1);
    header_.back() = Col::kData;
  }

  bool decode_row(std::string_view row, CsiFrame& f) {
    // The array is the last field and the only one with brackets (and, in esp-csi, inner commas).
    const size_t open = row.find('[');
    if (open == std::string_view::npos) return false;
    const size_t close = row.find(']', open);
    if (close == std::string_view::npos) return false;  // cut-off line
    std::string_view tail = row.substr(close + 1);
    std::string_view head = row.substr(0, open);
    // esp-csi quotes the array; a logger that wraps the row in its own CSV quotes it again (doubled).
    size_t quotes = 0;
    while (!head.empty() && head.back() == '"') { head.remove_suffix(1); ++quotes; }
    if (quotes > 2) return false;
    for (size_t q = 0; q < quotes; ++q) {
      if (tail.empty() || tail.front() != '"') return false;
      tail.remove_prefix(1);
    }
    while (!tail.empty() && tail.front() == '"') tail.remove_prefix(1);  // the wrapper's closing quote
    tail = trim(tail);
    if (!tail.empty() && tail.front() != ',') return false;  // more columns may follow the array
    if (head.empty() || head.back() != ',') return false;
    head.remove_suffix(1);

    fields_.clear();
    size_t start = 0;
    while (true) {
      const size_t comma = head.find(',', start);
      fields_.push_back(head.substr(start, comma - start));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    const size_t n_fields = fields_.size() + 1;
    // The last header seen, unless this row does not fit it (firmware changed, header from another log).
    const Layout* layout = n_fields == header_.size() ? &header_ : layout_by_count(n_fields);
    if (layout == nullptr) return false;

    if (!parse_values(row.substr(open + 1, close - open - 1), f)) return false;

    CsiMeta& m = f.meta;
    int64_t rate = kNoValue, mcs = kNoValue, sig_mode = -1, local_ts = -1;
    double real_ts = 0.0;
    for (size_t i = 0; i < fields_.size(); ++i) {
      const std::string_view s = fields_[i];
      int64_t v = 0;
      double d = 0.0;
      switch ((*layout)[i]) {
        case Col::kText: case Col::kData: break;
        case Col::kMac: if (!parse_mac(s, m.mac)) return false; break;
        case Col::kNumeric: if (!parse_double(s, d)) return false; break;
        case Col::kRealTimestamp: if (!parse_double(s, real_ts)) return false; break;
        default: {
          if (!parse_int(s, v) || v < INT32_MIN || v > UINT32_MAX) return false;
          switch ((*layout)[i]) {
            case Col::kSeq: m.seq = v; break;
            case Col::kRssi: m.rssi = static_cast<int32_t>(v); break;
            case Col::kRate: rate = v; break;
            case Col::kSigMode: sig_mode = v; break;
            case Col::kMcs: mcs = v; break;
            case Col::kBandwidth: m.bandwidth_mhz = v == 0 ? 20 : v == 1 ? 40 : kNoValue; break;
            case Col::kNoise: m.noise = static_cast<int32_t>(v); break;
            case Col::kChannel: m.channel = static_cast<int32_t>(v); break;
            case Col::kLocalTimestamp: if (v < 0) return false; local_ts = v; break;
            default: break;
          }
        }
      }
    }
    // rx_ctrl.rate is only meaningful for non-HT (11bg) frames, mcs for HT/VHT ones.
    m.rate = static_cast<int32_t>(sig_mode > 0 && mcs != kNoValue ? mcs : rate != kNoValue ? rate : mcs);
    if (local_ts >= 0) m.timestamp_raw = static_cast<uint64_t>(local_ts);
    if (real_ts != 0.0) m.timestamp = real_ts;  // wall clock, when the node had its time set
    else if (local_ts >= 0) m.timestamp = static_cast<double>(local_ts) * 1e-6;
    return true;
  }

  Layout header_;  // empty until a header line is seen
  std::vector<std::string_view> fields_;
};

// Longest line accepted; longer ones (or binary garbage without newlines) are dropped as malformed
// so the pending buffer stays bounded.
constexpr size_t kMaxLine = 1 << 16;

class Esp32StreamParser final : public StreamParser {
 public:
  const char* format() const override { return "esp32"; }

 protected:
  size_t parse_some(const uint8_t* p, size_t n, bool eof, std::vector<CsiFrame>& out) override {
    const char* s = reinterpret_cast<const char*>(p);
    size_t off = 0;
    while (off < n) {
      const void* nl = std::memchr(s + off, '\n', n - off);
      if (nl == nullptr) {
        if (discarding_) return n;  // rest of an overlong line
        if (n - off > kMaxLine) {
          count_overlong();
          discarding_ = true;
          return n;
        }
        if (eof) {
          handle_line(std::string_view(s + off, n - off), true, out);
          return n;
        }
        return off;
      }
      const size_t len = static_cast<size_t>(static_cast<const char*>(nl) - (s + off));
      if (discarding_) discarding_ = false;
      else if (len > kMaxLine) count_overlong();
      else handle_line(std::string_view(s + off, len), false, out);
      off += len + 1;
    }
    return off;
  }

 private:
  void count_overlong() {
    ++stats_.records;
    ++stats_.malformed;
  }

  // final_unterminated: the stream ended without a newline after this line, so a bad row there
  // is a cut-off record (truncated), not a corrupt one.
  void handle_line(std::string_view line, bool final_unterminated, std::vector<CsiFrame>& out) {
    CsiFrame f;
    const LineKind kind = decoder_.decode(line, f);
    if (kind == LineKind::kBlank) return;
    if (kind == LineKind::kMalformed && final_unterminated) {
      stats_.truncated = 1;
      return;
    }
    const auto record_index = static_cast<uint32_t>(stats_.records++);
    switch (kind) {
      case LineKind::kFrame:
        f.meta.record_index = record_index;
        out.push_back(std::move(f));
        ++stats_.frames;
        break;
      case LineKind::kMalformed: ++stats_.malformed; break;
      default: ++stats_.skipped; break;  // header or non-CSI text
    }
  }

  Esp32LineDecoder decoder_;
  bool discarding_ = false;
};

// One UDP datagram holds one or more lines; the first CSI row is the frame.
class Esp32DatagramParser final : public DatagramParser {
 public:
  bool parse(const uint8_t* data, size_t len, CsiFrame& frame) override {
    const auto record_index = static_cast<uint32_t>(stats_.records++);
    stats_.bytes += len;
    const std::string_view text(reinterpret_cast<const char*>(data), len);
    bool saw_bad_row = false;
    size_t start = 0;
    while (start <= text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string_view::npos) nl = text.size();
      CsiFrame f;
      const LineKind kind = decoder_.decode(text.substr(start, nl - start), f);
      if (kind == LineKind::kFrame) {
        f.meta.record_index = record_index;
        frame = std::move(f);
        ++stats_.frames;
        return true;
      }
      saw_bad_row |= kind == LineKind::kMalformed;
      start = nl + 1;
    }
    if (saw_bad_row) ++stats_.malformed;
    else ++stats_.skipped;
    return false;
  }

 private:
  Esp32LineDecoder decoder_;
};

}  // namespace

std::unique_ptr<StreamParser> make_esp32_stream_parser() {
  return std::make_unique<Esp32StreamParser>();
}
std::unique_ptr<DatagramParser> make_esp32_datagram_parser() {
  return std::make_unique<Esp32DatagramParser>();
}

}  // namespace wdp
