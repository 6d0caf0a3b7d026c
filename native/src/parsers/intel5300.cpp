// Intel 5300 csitool bfee log. Placeholder until implemented.
#include "wdp/parsers.hpp"

namespace wdp {
std::unique_ptr<StreamParser> make_intel5300_stream_parser() { throw std::logic_error("intel5300 parser not implemented"); }
}  // namespace wdp
