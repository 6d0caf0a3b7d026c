// Atheros CSI Tool log. Placeholder until implemented.
#include "wdp/parsers.hpp"

namespace wdp {
std::unique_ptr<StreamParser> make_atheros_stream_parser() { throw std::logic_error("atheros parser not implemented"); }
}  // namespace wdp
