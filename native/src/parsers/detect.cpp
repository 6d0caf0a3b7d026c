// Format sniffing from the first bytes of a capture.
#include <cstring>
#include <string_view>

#include "wdp/bytes.hpp"
#include "wdp/frame.hpp"
#include "wdp/parsers.hpp"

namespace wdp {
namespace {

// ESP32 CSV logs: a header (`type,...`) or a `CSI_DATA,` row first (after an optional UTF-8 BOM and
// blank lines), or a `CSI_DATA,` row after a few lines of other serial output.
bool looks_like_esp32_csv(const uint8_t* p, size_t n) {
  const std::string_view head(reinterpret_cast<const char*>(p), n);
  size_t b = head.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  while (b < n && (head[b] == '\r' || head[b] == '\n' || head[b] == ' ')) ++b;
  const std::string_view text = head.substr(b);
  if (text.substr(0, 9) == "CSI_DATA," || text.substr(0, 5) == "type,") return true;
  return head.find("\nCSI_DATA,") != std::string_view::npos;
}

}  // namespace

std::string detect_format(const uint8_t* p, size_t n) {
  if (n >= 4) {
    const uint32_t m = bytes::le32(p);
    if (m == 0xa1b2c3d4u || m == 0xd4c3b2a1u || m == 0xa1b23c4du || m == 0x4d3cb2a1u) return "nexmon_pcap";
  }
  // PicoScenes .csi: [u32 frame length][u32 magic 0x20150315][u16 frame version 1].
  if (n >= 10 && bytes::le32(p + 4) == 0x20150315u && bytes::le16(p + 8) == 1) return "picoscenes";
  if (looks_like_esp32_csv(p, n)) return "esp32";
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
