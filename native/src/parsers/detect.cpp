// Format sniffing from the first bytes of a capture.
#include <cstring>

#include "wdp/bytes.hpp"
#include "wdp/frame.hpp"
#include "wdp/parsers.hpp"

namespace wdp {

std::string detect_format(const uint8_t* p, size_t n) {
  if (n >= 4) {
    const uint32_t m = bytes::le32(p);
    if (m == 0xa1b2c3d4u || m == 0xd4c3b2a1u || m == 0xa1b23c4du || m == 0x4d3cb2a1u) return "nexmon_pcap";
  }
  if (n >= 8 && (std::memcmp(p, "CSI_DATA", 8) == 0 || std::memcmp(p, "type,", 5) == 0)) return "esp32";
  // Atheros CSI Tool log (also .dat): checked before Intel, whose test is much looser.
  if (looks_like_atheros(p, n)) return "atheros";
  // Intel bfee log: [u16 BE len][code]; code 0xBB or 0xC1 and a plausible length.
  if (n >= 3 && (p[2] == 0xBB || p[2] == 0xC1)) {
    const uint16_t len = bytes::be16(p);
    if (len > 0 && len < 4096) return "intel5300";
  }
  return "";
}

}  // namespace wdp
