// ESP32-CSI-Tool CSV lines (stream and UDP datagram). Placeholder until implemented.
#include "wdp/parsers.hpp"

namespace wdp {
std::unique_ptr<StreamParser> make_esp32_stream_parser() { throw std::logic_error("esp32 parser not implemented"); }
std::unique_ptr<DatagramParser> make_esp32_datagram_parser() { throw std::logic_error("esp32 parser not implemented"); }
}  // namespace wdp
