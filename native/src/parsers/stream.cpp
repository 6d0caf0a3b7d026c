// Shared buffering for streaming parsers, the format registry and the file reader.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

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
  auto parser = make_stream_parser(format);
  std::vector<CsiFrame> frames;
  // Read the whole file into one uninitialised buffer and parse it in one feed: no partial-record
  // copies. (Measured: faster than mmap for the MB-sized captures this sees; huge files go in 64 MiB steps.)
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open '" + path + "'");
  struct stat st {};
  if (::fstat(fd, &st) != 0) { ::close(fd); throw std::runtime_error("cannot stat '" + path + "'"); }
  const size_t step = std::clamp<size_t>(static_cast<size_t>(st.st_size), 1, size_t{64} << 20);
  // Reused per thread: a fresh multi-MB allocation costs as much in page faults as the parse itself.
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < step) buf.resize(step);
  if (buf.capacity() > (size_t{64} << 20) && step < (size_t{1} << 20)) buf = std::vector<uint8_t>(step);
  for (;;) {
    const ssize_t got = ::read(fd, buf.data(), step);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) { ::close(fd); throw std::runtime_error("cannot read '" + path + "'"); }
    if (got == 0) break;
    try {
      parser->feed(buf.data(), static_cast<size_t>(got), frames);
    } catch (...) {
      ::close(fd); throw;
    }
  }
  ::close(fd);
  parser->finish(frames);
  if (stats) *stats = parser->stats();
  return frames;
}

}  // namespace wdp
