// CSI frame and parser interfaces shared by every format. No Python in here.
#pragma once

#include <array>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace wdp {

using cf32 = std::complex<float>;

// Sentinel for "this format does not carry the field".
inline constexpr int32_t kNoValue = std::numeric_limits<int32_t>::min();

// Per-frame metadata. Fields a format lacks keep their sentinel (kNoValue, -1, NaN).
struct CsiMeta {
  double timestamp = std::numeric_limits<double>::quiet_NaN();  // seconds, best clock the format has
  uint64_t timestamp_raw = 0;   // device clock in the format's own unit (µs for esp32/intel/atheros)
  int32_t rssi = kNoValue;      // dBm (combined / first antenna)
  std::array<int32_t, 4> rssi_ant{kNoValue, kNoValue, kNoValue, kNoValue};
  int32_t noise = kNoValue;     // dBm
  int32_t agc = kNoValue;
  int32_t channel = kNoValue;   // channel number where known
  int32_t frequency_mhz = kNoValue;
  int32_t bandwidth_mhz = kNoValue;
  std::array<uint8_t, 6> mac{};
  int64_t seq = -1;             // sequence number / bfee_count
  int32_t core = -1;            // nexmon core
  int32_t spatial_stream = -1;  // nexmon spatial stream
  int32_t rate = kNoValue;      // rate / mcs / fake_rate_n_flags
  int32_t chip = kNoValue;      // chip / device id (nexmon chip version, picoscenes device type)
  std::array<int8_t, 3> perm{-1, -1, -1};  // intel antenna permutation (0-based)
  uint32_t record_index = 0;    // index of the source record/packet in the stream
};

// One CSI measurement: csi is row-major (n_sub, n_rx, n_tx).
struct CsiFrame {
  CsiMeta meta;
  uint16_t n_sub = 0, n_rx = 0, n_tx = 0;
  std::vector<cf32> csi;
  std::vector<int16_t> subcarrier_index;  // optional: subcarrier numbers (PicoScenes, ESP32 layout)

  cf32& at(size_t s, size_t r, size_t t) { return csi[(s * n_rx + r) * n_tx + t]; }
  const cf32& at(size_t s, size_t r, size_t t) const { return csi[(s * n_rx + r) * n_tx + t]; }
  void resize(uint16_t sub, uint16_t rx, uint16_t tx) {
    n_sub = sub; n_rx = rx; n_tx = tx;
    csi.assign(static_cast<size_t>(sub) * rx * tx, cf32{});
  }
};

struct ParseStats {
  uint64_t bytes = 0;       // bytes consumed
  uint64_t records = 0;     // records/lines/packets seen
  uint64_t frames = 0;      // frames emitted
  uint64_t malformed = 0;   // records that failed validation (counted and skipped)
  uint64_t skipped = 0;     // well-formed records that carry no CSI (e.g. intel 0xC1, pcap non-UDP)
  uint64_t truncated = 0;   // 1 if the stream ended inside a record
};

// Raised for input that cannot be a stream of this format at all (e.g. bad pcap magic).
struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Streaming parser: feed arbitrary chunks; complete records become frames.
class StreamParser {
 public:
  virtual ~StreamParser() = default;
  // Appends complete frames found so far to out; returns how many were appended.
  size_t feed(const uint8_t* data, size_t len, std::vector<CsiFrame>& out);
  // End of stream: a trailing partial record is counted in stats().truncated.
  size_t finish(std::vector<CsiFrame>& out);
  const ParseStats& stats() const { return stats_; }
  virtual const char* format() const = 0;

 protected:
  // Parse as much of [p, p+n) as forms complete records; return bytes consumed.
  // eof: no more bytes will come (a parser may then consume a final record without terminator).
  virtual size_t parse_some(const uint8_t* p, size_t n, bool eof, std::vector<CsiFrame>& out) = 0;
  ParseStats stats_;

 private:
  std::vector<uint8_t> pending_;
};

// Parser of single datagrams (UDP payloads) for the live path.
class DatagramParser {
 public:
  virtual ~DatagramParser() = default;
  // Returns true and fills frame if the datagram holds CSI; false (and counts) otherwise.
  virtual bool parse(const uint8_t* data, size_t len, CsiFrame& frame) = 0;
  const ParseStats& stats() const { return stats_; }

 protected:
  ParseStats stats_;
};

// Known formats: "esp32", "intel5300", "nexmon_pcap", "nexmon_udp", "atheros", "picoscenes".
std::unique_ptr<StreamParser> make_stream_parser(const std::string& format);
// Datagram formats: "nexmon_udp", "esp32".
std::unique_ptr<DatagramParser> make_datagram_parser(const std::string& format);
std::vector<std::string> stream_formats();
// Sniff a format from the first bytes of a file (empty string when unknown).
std::string detect_format(const uint8_t* data, size_t len);

// Read a whole file through a stream parser in chunks.
std::vector<CsiFrame> read_file(const std::string& path, const std::string& format, ParseStats* stats);

}  // namespace wdp
