// libFuzzer harness: one binary per format (WDP_FUZZ_FORMAT). Feeds the input whole and in
// uneven chunks so the streaming buffer logic is exercised too.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "wdp/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string fmt = WDP_FUZZ_FORMAT;
  std::vector<wdp::CsiFrame> out;
  try {
    if (fmt == "nexmon_udp") {
      auto p = wdp::make_datagram_parser(fmt);
      wdp::CsiFrame f;
      p->parse(data, size, f);
      return 0;
    }
    auto whole = wdp::make_stream_parser(fmt);
    whole->feed(data, size, out);
    whole->finish(out);
    auto chunked = wdp::make_stream_parser(fmt);
    size_t step = size ? (data[0] % 17) + 1 : 1;
    for (size_t i = 0; i < size; i += step) chunked->feed(data + i, std::min(step, size - i), out);
    chunked->finish(out);
  } catch (const wdp::ParseError&) {
    // A clear rejection of the whole stream is an allowed outcome.
  }
  return 0;
}
