// Shared buffering for streaming parsers, the format registry and the file reader.
#include <fstream>

#include "wdp/frame.hpp"
#include "wdp/parsers.hpp"

namespace wdp {

size_t StreamParser::feed(const uint8_t* data, size_t len, std::vector<CsiFrame>& out) {
  const size_t before = out.size();
  if (pending_.empty()) {
    // Fast path: parse straight from the caller's buffer, keep only the tail.
    size_t used = parse_some(data, len, false, out);
    stats_.bytes += used;
    pending_.assign(data + used, data + len);
  } else {
    pending_.insert(pending_.end(), data, data + len);
    size_t used = parse_some(pending_.data(), pending_.size(), false, out);
    stats_.bytes += used;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(used));
  }
  return out.size() - before;
}

size_t StreamParser::finish(std::vector<CsiFrame>& out) {
  const size_t before = out.size();
  if (!pending_.empty()) {
    size_t used = parse_some(pending_.data(), pending_.size(), true, out);
    stats_.bytes += used;
    if (used < pending_.size()) stats_.truncated = 1;
    pending_.clear();
  }
  return out.size() - before;
}

std::unique_ptr<StreamParser> make_stream_parser(const std::string& format) {
  if (format == "esp32") return make_esp32_stream_parser();
  if (format == "intel5300") return make_intel5300_stream_parser();
  if (format == "nexmon_pcap") return make_nexmon_pcap_stream_parser();
  if (format == "atheros") return make_atheros_stream_parser();
  if (format == "picoscenes") return make_picoscenes_stream_parser();
  throw std::invalid_argument("unknown CSI format '" + format + "'");
}

std::unique_ptr<DatagramParser> make_datagram_parser(const std::string& format) {
  if (format == "nexmon_udp") return make_nexmon_datagram_parser();
  if (format == "esp32") return make_esp32_datagram_parser();
  throw std::invalid_argument("unknown datagram format '" + format + "'");
}

std::vector<std::string> stream_formats() {
  return {"esp32", "intel5300", "nexmon_pcap", "atheros", "picoscenes"};
}

std::vector<CsiFrame> read_file(const std::string& path, const std::string& format, ParseStats* stats) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  auto parser = make_stream_parser(format);
  std::vector<CsiFrame> frames;
  std::vector<uint8_t> chunk(1 << 20);
  while (in) {
    in.read(reinterpret_cast<char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
    auto got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    parser->feed(chunk.data(), got, frames);
  }
  parser->finish(frames);
  if (stats) *stats = parser->stats();
  return frames;
}

}  // namespace wdp
