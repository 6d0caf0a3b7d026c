// The one thin pybind11 layer over the C++ core: wdp._native (private; use wdp.csi).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <system_error>

#include "wdp/capture.hpp"
#include "wdp/frame.hpp"
#include "wdp/parsers.hpp"
#include "wdp/ring.hpp"
#include "wdp/ring_stress.hpp"
#include "wdp/sanitize.hpp"

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
  // Frames are (n, S, L) with L = rx*tx links flattened by wdp.csi.sanitize; the per-frame steps run on float64,
  // the time-domain ones and the Sanitizer on float32. Outputs come in as numpy arrays the wrapper allocated.
  {
    using f64_in = py::array_t<double, py::array::c_style | py::array::forcecast>;
    using f32_in = py::array_t<float, py::array::c_style | py::array::forcecast>;
    using c64_in = py::array_t<cf32, py::array::c_style | py::array::forcecast>;
    // A (n, S, L) float64 copy of the input, the buffer the in-place kernels work on.
    static auto frames_copy = [](const f64_in& x) {
      if (x.ndim() != 3) throw std::invalid_argument("expected (frames, subcarriers, links) array");
      require_finite(x.data(), x.size(), "input");
      py::array_t<double> out({x.shape(0), x.shape(1), x.shape(2)});
      std::copy(x.data(), x.data() + x.size(), out.mutable_data());
      return out;
    };
    static auto shape_of = [](const py::array& a) {
      return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
    };
    static auto shape_str = [](const std::vector<py::ssize_t>& shape) {
      std::string s;
      for (auto d : shape) s += (s.empty() ? "" : ", ") + (d < 0 ? std::string("n") : std::to_string(d));
      return "(" + s + ")";
    };
    // Output arrays must already be what we write: C-contiguous, writeable float32 of this shape.
    static auto out_f32 = [](py::array& a, const std::vector<py::ssize_t>& shape, const char* name) {
      if (!py::isinstance<py::array_t<float>>(a) || !(a.flags() & py::array::c_style) || !a.writeable() ||
          shape_of(a) != shape)
        throw std::invalid_argument(std::string(name) + " must be a writeable C-contiguous float32 array of shape " +
                                    shape_str(shape));
      return static_cast<float*>(a.mutable_data());
    };
    auto axis_of = [](size_t n_sub, std::optional<std::vector<double>> index, size_t n_out) {
      return SubcarrierAxis(n_sub, index.value_or(std::vector<double>{}), n_out);
    };

    m.def("unwrap_subcarriers", [](const f64_in& phase) {
      auto out = frames_copy(phase);
      py::gil_scoped_release release;
      unwrap_subcarriers(out.mutable_data(), out.shape(0), out.shape(1), out.shape(2));
      return out;
    }, py::arg("phase"));
    m.def("remove_linear_phase", [axis_of](const f64_in& phase, const std::string& fit,
                                           std::optional<std::vector<double>> index) {
      auto out = frames_copy(phase);
      const auto axis = axis_of(out.shape(1), std::move(index), 0);
      const auto how = parse_phase_fit(fit);
      py::gil_scoped_release release;
      axis.remove_linear_phase(out.mutable_data(), out.shape(0), out.shape(2), how);
      return out;
    }, py::arg("phase"), py::arg("fit"), py::arg("subcarrier_index") = py::none());
    m.def("interpolate_subcarriers", [axis_of](const f64_in& x, size_t n_out,
                                               std::optional<std::vector<double>> index) {
      if (x.ndim() != 3) throw std::invalid_argument("expected (frames, subcarriers, links) array");
      if (n_out == 0) throw std::invalid_argument("n_out must be >= 2");
      require_finite(x.data(), x.size(), "input");
      const auto axis = axis_of(x.shape(1), std::move(index), n_out);
      py::array_t<double> out({x.shape(0), static_cast<py::ssize_t>(n_out), x.shape(2)});
      auto* dst = out.mutable_data();
      py::gil_scoped_release release;
      axis.interpolate(x.data(), dst, x.shape(0), x.shape(2));
      return out;
    }, py::arg("x"), py::arg("n_out"), py::arg("subcarrier_index") = py::none());
    m.def("normalize_amplitude", [](const f64_in& amp, const std::string& mode) {
      auto out = frames_copy(amp);
      const auto how = parse_amplitude_norm(mode);
      py::gil_scoped_release release;
      normalize_amplitude(out.mutable_data(), out.shape(0), out.shape(1), out.shape(2), how);
      return out;
    }, py::arg("amplitude"), py::arg("mode"));

    m.def("hampel_filter", [](const f32_in& x, size_t k, double n_sigma, bool causal, double min_rel,
                              double min_abs) {
      if (x.ndim() != 2) throw std::invalid_argument("expected (frames, channels) array");
      py::array_t<float> out({x.shape(0), x.shape(1)});
      auto* dst = out.mutable_data();
      uint64_t replaced;
      {
        py::gil_scoped_release release;
        require_finite(x.data(), x.size(), "Hampel input");
        replaced = hampel_filter(x.data(), x.shape(0), x.shape(1), k, n_sigma, causal, dst, min_rel, min_abs);
      }
      return py::make_tuple(out, replaced);
    }, py::arg("x"), py::arg("k"), py::arg("n_sigma"), py::arg("causal"), py::arg("min_rel") = 0.0,
       py::arg("min_abs") = 0.0);

    py::class_<HampelFilter>(m, "HampelFilter")
        .def(py::init<size_t, size_t, double, bool, double, double>(), py::arg("n_channels"), py::arg("k"),
             py::arg("n_sigma"), py::arg("causal"), py::arg("min_rel") = 0.0, py::arg("min_abs") = 0.0)
        .def("push", [](HampelFilter& f, const f32_in& x) -> py::object {
          if (static_cast<size_t>(x.size()) != f.n_channels())
            throw std::invalid_argument("frame has " + std::to_string(x.size()) + " values, filter has " +
                                        std::to_string(f.n_channels()) + " channels");
          require_finite(x.data(), x.size(), "Hampel frame");
          py::array_t<float> out(static_cast<py::ssize_t>(f.n_channels()));
          if (!f.push(x.data(), out.mutable_data())) return py::none();
          return std::move(out);
        }, py::arg("x"))
        .def("flush", [](HampelFilter& f) {
          std::vector<float> buf(f.latency() * f.n_channels());
          const size_t n = f.flush(buf.data());
          buf.resize(n * f.n_channels());
          return adopt(std::move(buf), {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(f.n_channels())});
        })
        .def("reset", &HampelFilter::reset)
        .def_property_readonly("n_channels", &HampelFilter::n_channels)
        .def_property_readonly("latency", &HampelFilter::latency)
        .def_property_readonly("replaced", &HampelFilter::replaced);

    m.def("resample_linear", [](const f64_in& t, const f32_in& x, double rate_hz, bool unwrap, double max_gap_s) {
      if (t.ndim() != 1 || x.ndim() != 2 || x.shape(0) != t.shape(0))
        throw std::invalid_argument("expected t (n,) and x (n, channels) with the same n, got " +
                                    std::to_string(t.size()) + " timestamps and " +
                                    std::to_string(x.ndim() ? x.shape(0) : 0) + " rows");
      std::vector<double> t_out;
      std::vector<float> x_out;
      {
        py::gil_scoped_release release;
        resample_linear(t.data(), x.data(), t.shape(0), x.shape(1), rate_hz, unwrap, max_gap_s, t_out, x_out);
      }
      const auto n = static_cast<py::ssize_t>(t_out.size());
      return py::make_tuple(adopt(std::move(t_out), {n}), adopt(std::move(x_out), {n, x.shape(1)}));
    }, py::arg("t"), py::arg("x"), py::arg("rate_hz"), py::arg("unwrap"), py::arg("max_gap_s"));

    py::class_<LinearResampler>(m, "LinearResampler")
        .def(py::init<size_t, double, bool, double>(), py::arg("n_channels"), py::arg("rate_hz"), py::arg("unwrap"),
             py::arg("max_gap_s"))
        .def("push", [](LinearResampler& r, double t, const f32_in& x) {
          if (static_cast<size_t>(x.size()) != r.n_channels())
            throw std::invalid_argument("sample has " + std::to_string(x.size()) + " values, resampler has " +
                                        std::to_string(r.n_channels()) + " channels");
          std::vector<double> t_out;
          std::vector<float> x_out;
          r.push(t, x.data(), t_out, x_out);
          const auto n = static_cast<py::ssize_t>(t_out.size());
          return py::make_tuple(adopt(std::move(t_out), {n}),
                                adopt(std::move(x_out), {n, static_cast<py::ssize_t>(r.n_channels())}));
        }, py::arg("t"), py::arg("x"))
        .def("reset", &LinearResampler::reset)
        .def_property_readonly("n_channels", &LinearResampler::n_channels)
        .def_property_readonly("dropped", &LinearResampler::dropped);

    py::class_<Sanitizer>(m, "Sanitizer")
        .def(py::init([](size_t n_sub, size_t n_rx, size_t n_tx, size_t n_sub_out,
                         std::optional<std::vector<double>> index, const std::string& phase_fit,
                         const std::string& amplitude_norm, size_t hampel_k, double hampel_sigmas,
                         double hampel_min_rel, double hampel_min_abs) {
               SanitizerConfig c;
               c.n_sub = n_sub; c.n_rx = n_rx; c.n_tx = n_tx; c.n_sub_out = n_sub_out;
               c.subcarrier_index = index.value_or(std::vector<double>{});
               c.phase_fit = parse_phase_fit(phase_fit);
               c.amplitude_norm = parse_amplitude_norm(amplitude_norm);
               c.hampel_k = hampel_k; c.hampel_sigmas = hampel_sigmas;
               c.hampel_min_rel = hampel_min_rel; c.hampel_min_abs = hampel_min_abs;
               return std::make_unique<Sanitizer>(std::move(c));
             }),
             py::arg("n_sub"), py::arg("n_rx"), py::arg("n_tx"), py::arg("n_sub_out"), py::arg("subcarrier_index"),
             py::arg("phase_fit"), py::arg("amplitude_norm"), py::arg("hampel_k"), py::arg("hampel_sigmas"),
             py::arg("hampel_min_rel"), py::arg("hampel_min_abs"))
        .def("process_frame", [](Sanitizer& s, const c64_in& csi, py::array& amplitude, py::array& phase) {
          const auto& c = s.config();
          const std::vector<py::ssize_t> in{py::ssize_t(c.n_sub), py::ssize_t(c.n_rx), py::ssize_t(c.n_tx)};
          if (shape_of(csi) != in)
            throw std::invalid_argument("csi frame shape " + shape_str(shape_of(csi)) + " != configured " +
                                        shape_str(in));
          const std::vector<py::ssize_t> out{py::ssize_t(s.n_sub_out()), in[1], in[2]};
          s.process_frame(csi.data(), out_f32(amplitude, out, "amplitude"), out_f32(phase, out, "phase"));
        }, py::arg("csi"), py::arg("amplitude"), py::arg("phase"))
        .def("process_batch", [](Sanitizer& s, const c64_in& csi, py::array& amplitude, py::array& phase) {
          const auto& c = s.config();
          const py::ssize_t n = csi.ndim() == 4 ? csi.shape(0) : -1;
          const std::vector<py::ssize_t> in{n, py::ssize_t(c.n_sub), py::ssize_t(c.n_rx), py::ssize_t(c.n_tx)};
          if (shape_of(csi) != in)
            throw std::invalid_argument("csi batch shape " + shape_str(shape_of(csi)) + " != configured " +
                                        shape_str({-1, in[1], in[2], in[3]}));
          if (n == 0) throw std::invalid_argument("csi batch is empty");
          const std::vector<py::ssize_t> out{n, py::ssize_t(s.n_sub_out()), in[2], in[3]};
          float* a = out_f32(amplitude, out, "amplitude");
          float* p = out_f32(phase, out, "phase");
          py::gil_scoped_release release;
          s.process_batch(csi.data(), static_cast<size_t>(n), a, p);
        }, py::arg("csi"), py::arg("amplitude"), py::arg("phase"))
        .def("reset", &Sanitizer::reset)
        .def_property_readonly("n_sub_out", &Sanitizer::n_sub_out)
        .def_property_readonly("hampel_replaced", &Sanitizer::hampel_replaced);
  }
  // --- capture + ring buffer (native/src/capture.cpp) ---
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::system_error& e) {  // socket errors -> OSError(errno, message)
      PyErr_SetObject(PyExc_OSError, py::make_tuple(e.code().value(), e.what()).ptr());
    }
  });
  // Read-only numpy views of a claimed run; base keeps the ring's memory alive.
  static const auto ring_views = [](const FrameRing& r, const FrameRing::Run& run, py::handle base) {
    const auto k = static_cast<py::ssize_t>(run.count);
    const auto s = run.slot;
    const FrameShape sh = r.shape();
    py::dict d;
    auto put = [&](const char* name, py::array a) {
      a.attr("setflags")(py::arg("write") = false);
      d[name] = a;
    };
    put("csi", py::array_t<cf32>({k, py::ssize_t(sh.n_sub), py::ssize_t(sh.n_rx), py::ssize_t(sh.n_tx)},
                                 r.csi() + s * sh.values(), base));
    put("timestamp", py::array_t<double>({k}, r.timestamp() + s, base));
    put("seq", py::array_t<int64_t>({k}, r.seq() + s, base));
    put("arrival_ns", py::array_t<int64_t>({k}, r.arrival_ns() + s, base));
    put("rssi", py::array_t<int32_t>({k}, r.rssi() + s, base));
    put("noise", py::array_t<int32_t>({k}, r.noise() + s, base));
    put("core", py::array_t<int32_t>({k}, r.core() + s, base));
    put("spatial_stream", py::array_t<int32_t>({k}, r.spatial_stream() + s, base));
    put("source_id", py::array_t<int32_t>({k}, r.source_id() + s, base));
    put("mac", py::array_t<uint8_t>({k, py::ssize_t(6)}, r.mac() + s * 6, base));
    return py::make_tuple(run.first, d);
  };
  static const auto shape_tuple = [](FrameShape s) { return py::make_tuple(s.n_sub, s.n_rx, s.n_tx); };

  // Standalone ring (tests, in-process producers). The caller must use one producer and one consumer.
  py::class_<FrameRing, std::shared_ptr<FrameRing>>(m, "FrameRing")
      .def(py::init([](size_t capacity, uint32_t n_sub, uint32_t n_rx, uint32_t n_tx) {
             return std::make_shared<FrameRing>(capacity, FrameShape{n_sub, n_rx, n_tx});
           }), py::arg("capacity"), py::arg("n_sub"), py::arg("n_rx"), py::arg("n_tx"))
      .def("push", [](FrameRing& r, py::array_t<cf32, py::array::c_style | py::array::forcecast> csi,
                      double timestamp, int64_t seq, int64_t arrival_ns, int32_t rssi, int32_t noise, int32_t core,
                      int32_t spatial_stream, int32_t source_id, py::bytes mac) {
             if (static_cast<size_t>(csi.size()) != r.shape().values())
               throw std::invalid_argument("csi has the wrong number of values for this ring");
             RingMeta meta{timestamp, seq, arrival_ns, rssi, noise, core, spatial_stream, source_id, {}};
             std::string_view mv = mac;
             std::memcpy(meta.mac.data(), mv.data(), std::min<size_t>(mv.size(), 6));
             return r.push(csi.data(), meta);
           }, py::arg("csi"), py::arg("timestamp") = std::numeric_limits<double>::quiet_NaN(),
           py::arg("seq") = -1, py::arg("arrival_ns") = 0, py::arg("rssi") = kNoValue, py::arg("noise") = kNoValue,
           py::arg("core") = -1, py::arg("spatial_stream") = -1, py::arg("source_id") = -1,
           py::arg("mac") = py::bytes())
      .def("acquire", [](py::object self, size_t max_frames) {
             auto& r = self.cast<FrameRing&>();
             return ring_views(r, r.acquire(max_frames), self);
           }, py::arg("max_frames"))
      .def("release", &FrameRing::release, py::arg("count"))
      .def_property_readonly("available", &FrameRing::available)
      .def_property_readonly("held", &FrameRing::held)
      .def_property_readonly("capacity", &FrameRing::capacity)
      .def_property_readonly("shape", [](const FrameRing& r) { return shape_tuple(r.shape()); })
      .def_property_readonly("pushed", &FrameRing::pushed)
      .def_property_readonly("dropped_oldest", &FrameRing::dropped_oldest)
      .def_property_readonly("dropped_incoming", &FrameRing::dropped_incoming);

  py::class_<UdpCapture>(m, "UdpCapture")
      .def(py::init([](const std::string& host, uint16_t port, const std::string& format, uint32_t n_sub,
                       uint32_t n_rx, uint32_t n_tx, size_t capacity, int rcvbuf_bytes, unsigned batch,
                       unsigned max_datagram) {
             return std::make_unique<UdpCapture>(CaptureConfig{host, port, format, {n_sub, n_rx, n_tx}, capacity,
                                                               rcvbuf_bytes, batch, max_datagram});
           }), py::arg("host"), py::arg("port"), py::arg("format"), py::arg("n_sub"), py::arg("n_rx"),
           py::arg("n_tx"), py::arg("capacity") = 4096, py::arg("rcvbuf_bytes") = 32 << 20,
           py::arg("batch") = 64, py::arg("max_datagram") = 65536)
      .def("start", &UdpCapture::start)
      .def("stop", &UdpCapture::stop, py::call_guard<py::gil_scoped_release>())
      .def("wait_for", [](UdpCapture& c, size_t n, double timeout_s) {
             // Sleep in short slices without the GIL so Ctrl-C still interrupts a long wait.
             const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
             for (;;) {
               const double left =
                   std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
               bool ok;
               {
                 py::gil_scoped_release release;
                 ok = c.wait_for(n, std::min(left, 0.1));
               }
               if (ok || left <= 0.1 || !c.running()) return ok;
               if (PyErr_CheckSignals() != 0) throw py::error_already_set();
             }
           }, py::arg("n"), py::arg("timeout_s"))
      .def("acquire", [](py::object self, size_t max_frames) {
             auto& c = self.cast<UdpCapture&>();
             return ring_views(*c.ring(), c.ring()->acquire(max_frames), self);
           }, py::arg("max_frames"))
      .def("release", [](UdpCapture& c, size_t k) { c.ring()->release(k); }, py::arg("count"))
      .def_property_readonly("available", [](const UdpCapture& c) { return c.ring()->available(); })
      .def_property_readonly("held", [](const UdpCapture& c) { return c.ring()->held(); })
      .def_property_readonly("capacity", [](const UdpCapture& c) { return c.ring()->capacity(); })
      .def_property_readonly("shape", [](const UdpCapture& c) { return shape_tuple(c.ring()->shape()); })
      .def_property_readonly("port", &UdpCapture::port)
      .def_property_readonly("rcvbuf_bytes", &UdpCapture::rcvbuf_bytes)
      .def_property_readonly("running", &UdpCapture::running)
      .def_property_readonly("sources", &UdpCapture::sources)
      .def_property_readonly("stats", [](const UdpCapture& c) {
        const CaptureStats s = c.stats();
        py::dict d;
        d["packets"] = s.packets; d["bytes"] = s.bytes; d["frames"] = s.frames; d["malformed"] = s.malformed;
        d["skipped"] = s.skipped; d["shape_mismatch"] = s.shape_mismatch;
        d["dropped_overflow"] = s.dropped_overflow; d["dropped_oldest"] = s.dropped_oldest;
        d["dropped_incoming"] = s.dropped_incoming; d["unknown_sources"] = s.unknown_sources;
        return d;
      });

  // Test hook: C++ producer thread vs C++ consumer thread on one ring (see ring_stress.hpp).
  m.def("_ring_stress", [](uint64_t frames, size_t capacity, size_t max_batch, uint32_t hold_every,
                           uint32_t hold_spins, uint32_t producer_spins, uint64_t seed) {
    RingStressConfig cfg;
    cfg.frames = frames; cfg.capacity = capacity; cfg.max_batch = max_batch; cfg.hold_every = hold_every;
    cfg.hold_spins = hold_spins; cfg.producer_spins = producer_spins; cfg.seed = seed;
    RingStressResult r;
    {
      py::gil_scoped_release release;
      r = ring_stress(cfg);
    }
    py::dict d;
    d["pushed"] = r.pushed; d["rejected"] = r.rejected; d["received"] = r.received;
    d["dropped_oldest"] = r.dropped_oldest; d["dropped_incoming"] = r.dropped_incoming; d["gaps"] = r.gaps;
    d["out_of_order"] = r.out_of_order; d["corrupt"] = r.corrupt; d["changed_while_held"] = r.changed_while_held;
    d["last_seq"] = r.last_seq; d["seconds"] = r.seconds;
    return d;
  }, py::arg("frames"), py::arg("capacity"), py::arg("max_batch") = 64, py::arg("hold_every") = 16,
     py::arg("hold_spins") = 2000, py::arg("producer_spins") = 0, py::arg("seed") = 1);
}
