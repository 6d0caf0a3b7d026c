// PicoScenes .csi. Placeholder until implemented.
#include "wdp/parsers.hpp"

namespace wdp {
std::unique_ptr<StreamParser> make_picoscenes_stream_parser() { throw std::logic_error("picoscenes parser not implemented"); }
}  // namespace wdp
