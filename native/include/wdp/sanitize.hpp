// CSI sanitization: phase unwrap + linear phase removal, subcarrier interpolation, amplitude normalization,
// Hampel outlier filter over time, resampling to a fixed rate. No Python in here.
//
// Layout: a frame is row-major (n_sub, n_link), n_link = n_rx * n_tx — the CsiFrame (S, R, T) layout with the
// antenna axes flattened, so each link is one column. Time-domain stages (Hampel, resampling) see a frame as
// n_channels independent values. Bad arguments throw std::invalid_argument (ValueError in Python).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "wdp/frame.hpp"

namespace wdp {

// How the linear (STO/SFO slope + CFO offset) part of the unwrapped phase is removed, per link.
// x_f is the subcarrier position (0..F-1, or the actual subcarrier indices when given), x̄ its mean.
enum class PhaseFit : uint8_t {
  kNone,
  // DensePose-from-WiFi step in a form that is exact for any linear phase: slope from the end points
  // a1 = (phi_F - phi_1) / (x_F - x_1), offset a0 = mean(phi); sanitized = phi - a1 (x - x̄) - a0.
  kEndpoints,
  // Least-squares line over x: a1 = Σ(x - x̄) phi / Σ(x - x̄)², same offset.
  kLeastSquares,
  // The paper's formula as printed: f = 1..F, a1 = (phi_F - phi_1) / (2 pi F), a0 = mean(phi),
  // sanitized = phi - (2 pi f a1 + a0). It leaves a residual slope of (true slope) / F and an offset:
  // kept only to reproduce the paper; kEndpoints is the corrected form.
  kPaper,
};

// Per frame and per link, over the subcarriers: kRms divides by sqrt(mean(a²)) (removes AGC gain steps);
// kZScore gives (a - mean) / std (population std). A link with zero RMS / zero std is left at 0 / a - mean.
enum class AmplitudeNorm : uint8_t { kNone, kRms, kZScore };

PhaseFit parse_phase_fit(std::string_view name);            // "none" | "endpoints" | "least_squares" | "paper"
AmplitudeNorm parse_amplitude_norm(std::string_view name);  // "none" | "rms" | "zscore"

// numpy.unwrap (period 2 pi) along the subcarrier axis of (n_frames, n_sub, n_link) frames, each link separately.
void unwrap_subcarriers(double* phase, size_t n_frames, size_t n_sub, size_t n_link);

// The subcarrier axis of a frame: positions used by the linear fit and by interpolation to n_out subcarriers.
class SubcarrierAxis {
 public:
  // positions: strictly increasing subcarrier indices (size n_sub), or empty for 0..n_sub-1.
  // n_out: 0 keeps n_sub subcarriers; otherwise >= 2 output subcarriers evenly spaced from the first to the
  // last position (linear interpolation on that axis).
  SubcarrierAxis(size_t n_sub, std::vector<double> positions, size_t n_out);

  size_t n_sub() const { return n_sub_; }
  size_t n_out() const { return n_out_ ? n_out_ : n_sub_; }
  bool interpolates() const { return n_out_ != 0; }

  // In place on (n_frames, n_sub, n_link) frames of unwrapped phase.
  void remove_linear_phase(double* phase, size_t n_frames, size_t n_link, PhaseFit fit) const;
  // (n_frames, n_sub, n_link) -> (n_frames, n_out, n_link).
  void interpolate(const double* in, double* out, size_t n_frames, size_t n_link) const;

 private:
  size_t n_sub_, n_out_;
  std::vector<double> pos_;        // positions of the input subcarriers
  double pos_mean_ = 0, pos_ss_ = 0;
  std::vector<uint32_t> left_;     // per output subcarrier: left neighbour and weight of the right one
  std::vector<double> weight_;
};

// In place on (n_frames, n_sub, n_link) frames of amplitudes.
void normalize_amplitude(double* amp, size_t n_frames, size_t n_sub, size_t n_link, AmplitudeNorm norm);

// Hampel filter over time, per channel: a sample further than
//   max(n_sigma * 1.4826 * MAD, min_rel * |median|, min_abs)
// from its window's median is replaced by that median (windows hold the raw samples, not earlier replacements).
// The floors matter for quantized CSI: in a 7-frame window of small integers the MAD is often 0 (or one LSB),
// and without a floor any 1-LSB step counts as an outlier. min_rel = min_abs = 0 is the classic Hampel filter.
// Centered: frame t's window is frames [t-k, t+k] (cut at the stream's ends), so output lags input by k frames.
// Causal: frame t's window is frames [t-2k, t] (same length, cut at the start), zero latency.
class HampelFilter {
 public:
  // min_rel, min_abs: finite and >= 0.
  HampelFilter(size_t n_channels, size_t k, double n_sigma, bool causal, double min_rel = 0, double min_abs = 0);

  // Takes one frame of n_channels values. Returns true when out received a filtered frame: always when causal;
  // centered, frame t-k once t >= k. x and out may alias.
  bool push(const float* x, float* out);
  // Centered: writes the frames still held (at most k, consecutive frames in out); returns how many. Causal: 0.
  // The filter then starts a new stream.
  size_t flush(float* out);
  void reset();

  size_t n_channels() const { return n_ch_; }
  size_t latency() const { return causal_ ? 0 : k_; }
  uint64_t replaced() const { return replaced_; }

 private:
  void emit(uint64_t frame, uint64_t lo, uint64_t hi, float* out);  // frame against window [lo, hi]
  void decide(const float* x, double med, double mad, float* out, size_t c);
  size_t n_ch_, k_, win_;
  double threshold_scale_;  // n_sigma * 1.4826
  double min_rel_, min_abs_;  // threshold floors: min_rel * |median|, min_abs
  bool causal_;
  std::vector<float> ring_;    // win_ frames, frame t at slot t % win_
  std::vector<float> sorted_;  // full windows: win_ rows of n_ch_, sorted per channel
  std::vector<double> mad_;
  std::vector<float> window_;  // one channel of a cut window
  uint64_t pushed_ = 0, emitted_ = 0, replaced_ = 0;
};

// Batch Hampel over x (n_frames, n_channels) -> out (may alias x); same result as streaming. Returns replacements.
uint64_t hampel_filter(const float* x, size_t n_frames, size_t n_channels, size_t k, double n_sigma, bool causal,
                       float* out, double min_rel = 0, double min_abs = 0);

// Linear-interpolation resampler of an irregular timestamped stream to rate_hz. The output grid is
// origin + j / rate_hz with origin = floor(first timestamp) (whole seconds: for an integer rate such as 100 Hz
// that is the absolute grid j / rate_hz, shared by every stream). Grid points from the first to the last timestamp are
// emitted (a point within 1e-6 periods of a sample counts as reached). unwrap_phase: the values are phases;
// each channel is first made continuous over time (numpy.unwrap) and the output is the unwrapped phase.
// Gaps longer than max_gap_s are not filled: the grid points strictly inside such a gap are skipped (so one bad
// timestamp cannot make millions of frames); inf fills every gap.
class LinearResampler {
 public:
  LinearResampler(size_t n_channels, double rate_hz, bool unwrap_phase, double max_gap_s = 1.0);

  // Takes one sample; appends the grid frames in (t_prev, t] (first sample: at t) to t_out / x_out and returns
  // how many. A sample not later than the previous one is dropped and counted (late/duplicate packet).
  size_t push(double t, const float* x, std::vector<double>& t_out, std::vector<float>& x_out);
  void reset();

  size_t n_channels() const { return n_ch_; }
  uint64_t dropped() const { return dropped_; }

 private:
  size_t n_ch_;
  double rate_, max_gap_;
  bool unwrap_;
  bool started_ = false;
  double origin_ = 0, t_prev_ = 0;  // t_prev_ relative to origin_
  int64_t next_ = 0;                // next grid index
  // Previous (unwrapped) value, previous raw value, accumulated unwrap correction, current value.
  std::vector<double> prev_, raw_prev_, cum_, cur_;
  uint64_t dropped_ = 0;
};

// Batch resampling of x (n, n_channels) at strictly increasing times t; appends to t_out / x_out.
void resample_linear(const double* t, const float* x, size_t n, size_t n_channels, double rate_hz, bool unwrap_phase,
                     double max_gap_s, std::vector<double>& t_out, std::vector<float>& x_out);

struct SanitizerConfig {
  size_t n_sub = 0, n_rx = 0, n_tx = 0;  // input frame shape (S, R, T)
  size_t n_sub_out = 0;                  // 0 keeps n_sub
  std::vector<double> subcarrier_index;  // optional positions for the fit and the interpolation
  PhaseFit phase_fit = PhaseFit::kEndpoints;
  AmplitudeNorm amplitude_norm = AmplitudeNorm::kRms;
  size_t hampel_k = 3;                   // 0: off; else causal Hampel on the amplitude
  double hampel_sigmas = 3.0;
  // Threshold floors on the raw amplitude (see HampelFilter): relative to the window median, and absolute in
  // raw CSI units (1 LSB for the integer-CSI chips). Defaults and the measurements behind them: SanitizeConfig
  // in python/wdp/csi/sanitize.py.
  double hampel_min_rel = 0.25;
  double hampel_min_abs = 3.0;
};

// The per-frame pipeline: amplitude |h| and phase arg h (double) -> phase unwrapped along subcarriers -> linear
// phase removed -> both interpolated to n_sub_out -> causal Hampel on the amplitude (before normalization, so a
// spike cannot rescale its whole link) -> amplitude normalization -> float32 out, shape (n_sub_out, n_rx, n_tx).
// Buffers are allocated once; process_batch(n) == n process_frame calls (the Hampel state runs on).
class Sanitizer {
 public:
  explicit Sanitizer(SanitizerConfig cfg);

  const SanitizerConfig& config() const { return cfg_; }
  size_t n_sub_out() const { return axis_.n_out(); }
  size_t frame_in_size() const { return cfg_.n_sub * n_link_; }
  size_t frame_out_size() const { return axis_.n_out() * n_link_; }
  uint64_t hampel_replaced() const { return hampel_.replaced(); }

  // Throws std::invalid_argument (state untouched) when the frame holds NaN/Inf.
  void process_frame(const cf32* csi, float* amplitude, float* phase);
  // csi (n, S, R, T) -> (n, S_out, R, T); the whole batch is checked before any frame is processed.
  void process_batch(const cf32* csi, size_t n_frames, float* amplitude, float* phase);
  void reset() { hampel_.reset(); }

 private:
  void run(const cf32* csi, float* amplitude, float* phase);

  SanitizerConfig cfg_;
  size_t n_link_;
  SubcarrierAxis axis_;
  HampelFilter hampel_;
  std::vector<double> amp_, phase_, amp_out_, phase_out_;
  std::vector<float> amp_f_;
};

// Throws std::invalid_argument naming what when any of the n values is NaN/Inf.
void require_finite(const float* x, size_t n, const char* what);
void require_finite(const double* x, size_t n, const char* what);

}  // namespace wdp
