// The one thin pybind11 layer over the C++ core: wdp._native (private; use wdp.csi).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "wdp/frame.hpp"
#include "wdp/parsers.hpp"

namespace py = pybind11;
using namespace wdp;

namespace {

// Hand a vector to numpy without copying: the capsule owns it.
template <typename T>
py::array_t<T> adopt(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

py::dict stats_dict(const ParseStats& s) {
  py::dict d;
  d["bytes"] = s.bytes; d["records"] = s.records; d["frames"] = s.frames;
  d["malformed"] = s.malformed; d["skipped"] = s.skipped; d["truncated"] = s.truncated;
  return d;
}

// Frames -> {"csi": [complex64 (sub, rx, tx)], "subcarrier_index": [...], meta columns as arrays}.
py::dict frames_dict(std::vector<CsiFrame>&& frames) {
  const auto n = static_cast<py::ssize_t>(frames.size());
  std::vector<double> ts(frames.size());
  std::vector<uint64_t> ts_raw(frames.size());
  std::vector<int32_t> rssi(frames.size()), noise(frames.size()), agc(frames.size()), channel(frames.size()),
      freq(frames.size()), bw(frames.size()), core(frames.size()), ss(frames.size()), rate(frames.size()),
      chip(frames.size()), rssi_ant(frames.size() * 4);
  std::vector<int64_t> seq(frames.size());
  std::vector<uint32_t> rec(frames.size());
  std::vector<uint8_t> mac(frames.size() * 6);
  std::vector<int8_t> perm(frames.size() * 3);
  py::list csi, sub_idx;
  for (size_t i = 0; i < frames.size(); ++i) {
    auto& f = frames[i];
    const auto& m = f.meta;
    ts[i] = m.timestamp; ts_raw[i] = m.timestamp_raw; rssi[i] = m.rssi; noise[i] = m.noise; agc[i] = m.agc;
    channel[i] = m.channel; freq[i] = m.frequency_mhz; bw[i] = m.bandwidth_mhz; core[i] = m.core;
    ss[i] = m.spatial_stream; rate[i] = m.rate; chip[i] = m.chip; seq[i] = m.seq; rec[i] = m.record_index;
    for (int k = 0; k < 4; ++k) rssi_ant[i * 4 + k] = m.rssi_ant[k];
    for (int k = 0; k < 6; ++k) mac[i * 6 + k] = m.mac[k];
    for (int k = 0; k < 3; ++k) perm[i * 3 + k] = m.perm[k];
    csi.append(adopt(std::move(f.csi), {f.n_sub, f.n_rx, f.n_tx}));
    if (f.subcarrier_index.empty()) {
      sub_idx.append(py::none());
    } else {
      const auto k = static_cast<py::ssize_t>(f.subcarrier_index.size());
      sub_idx.append(adopt(std::move(f.subcarrier_index), {k}));
    }
  }
  py::dict d;
  d["csi"] = csi; d["subcarrier_index"] = sub_idx;
  d["timestamp"] = adopt(std::move(ts), {n}); d["timestamp_raw"] = adopt(std::move(ts_raw), {n});
  d["rssi"] = adopt(std::move(rssi), {n}); d["rssi_ant"] = adopt(std::move(rssi_ant), {n, 4});
  d["noise"] = adopt(std::move(noise), {n}); d["agc"] = adopt(std::move(agc), {n});
  d["channel"] = adopt(std::move(channel), {n}); d["frequency_mhz"] = adopt(std::move(freq), {n});
  d["bandwidth_mhz"] = adopt(std::move(bw), {n}); d["mac"] = adopt(std::move(mac), {n, 6});
  d["seq"] = adopt(std::move(seq), {n}); d["core"] = adopt(std::move(core), {n});
  d["spatial_stream"] = adopt(std::move(ss), {n}); d["rate"] = adopt(std::move(rate), {n});
  d["chip"] = adopt(std::move(chip), {n}); d["perm"] = adopt(std::move(perm), {n, 3});
  d["record_index"] = adopt(std::move(rec), {n});
  return d;
}

py::tuple read_file_py(const std::string& path, const std::string& format) {
  ParseStats stats;
  std::vector<CsiFrame> frames;
  {
    py::gil_scoped_release release;
    frames = read_file(path, format, &stats);
  }
  return py::make_tuple(frames_dict(std::move(frames)), stats_dict(stats));
}

py::tuple parse_bytes_py(const std::string& format, py::bytes data) {
  std::string_view view = data;
  std::vector<CsiFrame> frames;
  ParseStats stats;
  {
    py::gil_scoped_release release;
    auto parser = make_stream_parser(format);
    parser->feed(reinterpret_cast<const uint8_t*>(view.data()), view.size(), frames);
    parser->finish(frames);
    stats = parser->stats();
  }
  return py::make_tuple(frames_dict(std::move(frames)), stats_dict(stats));
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "wdp native CSI core (private: use wdp.csi)";
  py::register_exception<ParseError>(m, "ParseError", PyExc_ValueError);

  m.def("read_file", &read_file_py, py::arg("path"), py::arg("format"));
  m.def("parse_bytes", &parse_bytes_py, py::arg("format"), py::arg("data"));
  m.def("stream_formats", &stream_formats);
  m.def("detect_format", [](py::bytes head) {
    std::string_view v = head;
    return detect_format(reinterpret_cast<const uint8_t*>(v.data()), v.size());
  });
  m.def("group_nexmon", [](const std::string& path) {
    ParseStats stats;
    std::vector<CsiFrame> grouped;
    {
      py::gil_scoped_release release;
      grouped = group_nexmon(read_file(path, "nexmon_pcap", &stats));
    }
    return py::make_tuple(frames_dict(std::move(grouped)), stats_dict(stats));
  }, py::arg("path"));

  py::class_<StreamParser>(m, "StreamParser")
      .def(py::init([](const std::string& format) { return make_stream_parser(format); }), py::arg("format"))
      .def("feed", [](StreamParser& p, py::bytes data) {
        std::string_view view = data;
        std::vector<CsiFrame> frames;
        {
          py::gil_scoped_release release;
          p.feed(reinterpret_cast<const uint8_t*>(view.data()), view.size(), frames);
        }
        return frames_dict(std::move(frames));
      })
      .def("finish", [](StreamParser& p) {
        std::vector<CsiFrame> frames;
        p.finish(frames);
        return frames_dict(std::move(frames));
      })
      .def_property_readonly("stats", [](const StreamParser& p) { return stats_dict(p.stats()); })
      .def_property_readonly("format", &StreamParser::format);

  py::class_<DatagramParser>(m, "DatagramParser")
      .def(py::init([](const std::string& format) { return make_datagram_parser(format); }), py::arg("format"))
      .def("parse", [](DatagramParser& p, py::bytes data) -> py::object {
        std::string_view view = data;
        std::vector<CsiFrame> frames(1);
        if (!p.parse(reinterpret_cast<const uint8_t*>(view.data()), view.size(), frames[0])) return py::none();
        return frames_dict(std::move(frames));
      })
      .def_property_readonly("stats", [](const DatagramParser& p) { return stats_dict(p.stats()); });

  // --- sanitize (native/src/sanitize.cpp) ---
  // --- capture + ring buffer (native/src/capture.cpp) ---
}
