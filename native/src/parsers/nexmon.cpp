// Nexmon CSI pcap and UDP payloads. Placeholder until implemented.
#include "wdp/parsers.hpp"

namespace wdp {
std::unique_ptr<StreamParser> make_nexmon_pcap_stream_parser() { throw std::logic_error("nexmon parser not implemented"); }
std::unique_ptr<DatagramParser> make_nexmon_datagram_parser() { throw std::logic_error("nexmon parser not implemented"); }
std::vector<CsiFrame> group_nexmon(const std::vector<CsiFrame>& records) { return records; }
}  // namespace wdp
