// Factories of the concrete parsers (one .cpp per format under src/parsers/).
#pragma once

#include <memory>

#include "wdp/frame.hpp"

namespace wdp {

std::unique_ptr<StreamParser> make_esp32_stream_parser();
std::unique_ptr<DatagramParser> make_esp32_datagram_parser();
std::unique_ptr<StreamParser> make_intel5300_stream_parser();
std::unique_ptr<StreamParser> make_nexmon_pcap_stream_parser();
std::unique_ptr<DatagramParser> make_nexmon_datagram_parser();
std::unique_ptr<StreamParser> make_atheros_stream_parser();
std::unique_ptr<StreamParser> make_picoscenes_stream_parser();

// True if the bytes start with a plausible Atheros CSI Tool record (either byte order).
bool looks_like_atheros(const uint8_t* data, size_t len);

// Merge per-(core, spatial stream) nexmon records with the same sequence number into
// (n_sub, n_core, n_stream) frames (n_core/n_stream: the capture's maximum; slots a frame lacks
// stay zero). In a 1-core 1-stream capture every record stays its own frame.
std::vector<CsiFrame> group_nexmon(const std::vector<CsiFrame>& records);

}  // namespace wdp
