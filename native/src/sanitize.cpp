// CSI sanitization stages (see wdp/sanitize.hpp). Arithmetic is double; numpy reference: bench/numpy_sanitize.py.
#include "wdp/sanitize.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace wdp {

namespace {

constexpr double kPi = 3.141592653589793;  // == numpy.pi
constexpr double kTwoPi = 2 * kPi;
constexpr double kMadScale = 1.4826;       // MAD -> sigma for normal data
constexpr double kGridEps = 1e-6;          // grid periods: a grid point this close to a sample is "at" it
constexpr double kMaxGridIndex = 9007199254740992.0;  // 2^53: grid indices stay exact integers

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument(what); }

// numpy's float modulo: the result takes the divisor's sign.
double py_mod(double a, double b) {
  // The unwrap only needs a in [-b, 2b) (b > 0), where these give fmod's exact result and numpy's fix-up.
  if (a >= b && a < 2 * b) return a - b;  // exact (Sterbenz)
  if (a < 0 && a >= -b) return a + b;     // fmod(a, b) == a, then numpy adds b
  double r = std::fmod(a, b);
  if (r != 0) {
    if ((b < 0) != (r < 0)) r += b;
  } else {
    r = std::copysign(0.0, b);
  }
  return r;
}

// numpy.unwrap's correction for one step d = p[i] - p[i-1] (period 2 pi, discont pi), so results match it.
inline double unwrap_correction(double d) {
  if (std::abs(d) < kPi) return 0.0;
  double dd = py_mod(d + kPi, kTwoPi) - kPi;
  if (dd == -kPi && d > 0) dd = kPi;
  return dd - d;
}

}  // namespace

PhaseFit parse_phase_fit(std::string_view name) {
  if (name == "none") return PhaseFit::kNone;
  if (name == "endpoints") return PhaseFit::kEndpoints;
  if (name == "least_squares") return PhaseFit::kLeastSquares;
  if (name == "paper") return PhaseFit::kPaper;
  invalid("unknown phase fit '" + std::string(name) + "' (none, endpoints, least_squares, paper)");
}

AmplitudeNorm parse_amplitude_norm(std::string_view name) {
  if (name == "none") return AmplitudeNorm::kNone;
  if (name == "rms") return AmplitudeNorm::kRms;
  if (name == "zscore") return AmplitudeNorm::kZScore;
  invalid("unknown amplitude normalization '" + std::string(name) + "' (none, rms, zscore)");
}

namespace {
template <typename T>
void require_finite_impl(const T* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) invalid(std::string(what) + " contains NaN or Inf (element " + std::to_string(i) + ")");
  }
}
}  // namespace

void require_finite(const float* x, size_t n, const char* what) { require_finite_impl(x, n, what); }
void require_finite(const double* x, size_t n, const char* what) { require_finite_impl(x, n, what); }

void unwrap_subcarriers(double* frames, size_t n_frames, size_t n_sub, size_t n_link) {
  for (size_t f = 0; f < n_frames; ++f) {
    double* phase = frames + f * n_sub * n_link;
    for (size_t l = 0; l < n_link; ++l) {
      double prev = phase[l], cum = 0;
      for (size_t s = 1; s < n_sub; ++s) {
        double& p = phase[s * n_link + l];
        const double raw = p;
        cum += unwrap_correction(raw - prev);
        prev = raw;
        p = raw + cum;
      }
    }
  }
}

// ---------------------------------------------------------------- subcarrier axis

SubcarrierAxis::SubcarrierAxis(size_t n_sub, std::vector<double> positions, size_t n_out)
    : n_sub_(n_sub), n_out_(n_out), pos_(std::move(positions)) {
  if (n_sub < 2) invalid("need at least 2 subcarriers, got " + std::to_string(n_sub));
  if (n_out == 1) invalid("n_sub_out must be 0 (keep) or >= 2");
  if (pos_.empty()) {
    pos_.resize(n_sub);
    for (size_t s = 0; s < n_sub; ++s) pos_[s] = static_cast<double>(s);
  } else if (pos_.size() != n_sub) {
    invalid("subcarrier_index has " + std::to_string(pos_.size()) + " entries for " + std::to_string(n_sub) +
            " subcarriers");
  }
  for (size_t s = 0; s < n_sub; ++s) {
    if (!std::isfinite(pos_[s])) invalid("subcarrier_index contains NaN or Inf");
    if (s && !(pos_[s] > pos_[s - 1])) invalid("subcarrier_index must be strictly increasing");
  }
  for (double p : pos_) pos_mean_ += p;
  pos_mean_ /= static_cast<double>(n_sub);
  for (double p : pos_) pos_ss_ += (p - pos_mean_) * (p - pos_mean_);

  if (n_out_) {
    // Same rule as the numpy reference: left = searchsorted(pos, u, 'right') - 1 clipped to [0, n_sub - 2].
    left_.resize(n_out_);
    weight_.resize(n_out_);
    const double lo = pos_.front(), hi = pos_.back();
    for (size_t j = 0; j < n_out_; ++j) {
      const double u =
          (j + 1 == n_out_) ? hi : lo + static_cast<double>(j) * (hi - lo) / static_cast<double>(n_out_ - 1);
      size_t i = static_cast<size_t>(std::upper_bound(pos_.begin(), pos_.end(), u) - pos_.begin());
      i = std::min(std::max<size_t>(i, 1) - 1, n_sub - 2);
      left_[j] = static_cast<uint32_t>(i);
      weight_[j] = (u - pos_[i]) / (pos_[i + 1] - pos_[i]);
    }
  }
}

void SubcarrierAxis::remove_linear_phase(double* frames, size_t n_frames, size_t n_link, PhaseFit fit) const {
  if (fit == PhaseFit::kNone) return;
  const size_t n = n_sub_;
  for (size_t f = 0; f < n_frames; ++f) {
    double* phase = frames + f * n * n_link;
    for (size_t l = 0; l < n_link; ++l) {
      double sum = 0;
      for (size_t s = 0; s < n; ++s) sum += phase[s * n_link + l];
      const double mean = sum / static_cast<double>(n);
      const double first = phase[l], last = phase[(n - 1) * n_link + l];
      if (fit == PhaseFit::kPaper) {
        // phi - (2 pi f a1 + a0) with a1 = (phi_F - phi_1) / (2 pi F), f = 1..F.
        const double a1 = (last - first) / (kTwoPi * static_cast<double>(n));
        for (size_t s = 0; s < n; ++s) phase[s * n_link + l] -= kTwoPi * static_cast<double>(s + 1) * a1 + mean;
        continue;
      }
      double slope;
      if (fit == PhaseFit::kEndpoints) {
        slope = (last - first) / (pos_[n - 1] - pos_[0]);
      } else {
        double sxy = 0;
        for (size_t s = 0; s < n; ++s) sxy += (pos_[s] - pos_mean_) * phase[s * n_link + l];
        slope = sxy / pos_ss_;
      }
      for (size_t s = 0; s < n; ++s) phase[s * n_link + l] -= slope * (pos_[s] - pos_mean_) + mean;
    }
  }
}

void SubcarrierAxis::interpolate(const double* in, double* out, size_t n_frames, size_t n_link) const {
  for (size_t f = 0; f < n_frames; ++f) {
    const double* frame = in + f * n_sub_ * n_link;
    for (size_t j = 0; j < n_out_; ++j) {
      const double* a = frame + static_cast<size_t>(left_[j]) * n_link;
      const double* b = a + n_link;
      const double w = weight_[j];
      double* o = out + (f * n_out_ + j) * n_link;
      for (size_t l = 0; l < n_link; ++l) o[l] = a[l] * (1.0 - w) + b[l] * w;
    }
  }
}

void normalize_amplitude(double* frames, size_t n_frames, size_t n_sub, size_t n_link, AmplitudeNorm norm) {
  if (norm == AmplitudeNorm::kNone) return;
  const double n = static_cast<double>(n_sub);
  for (size_t f = 0; f < n_frames; ++f) {
    double* amp = frames + f * n_sub * n_link;
    for (size_t l = 0; l < n_link; ++l) {
      if (norm == AmplitudeNorm::kRms) {
        double ss = 0;
        for (size_t s = 0; s < n_sub; ++s) ss += amp[s * n_link + l] * amp[s * n_link + l];
        const double rms = std::sqrt(ss / n);
        if (rms > 0) {
          for (size_t s = 0; s < n_sub; ++s) amp[s * n_link + l] /= rms;
        }
      } else {
        double sum = 0;
        for (size_t s = 0; s < n_sub; ++s) sum += amp[s * n_link + l];
        const double mean = sum / n;
        double ss = 0;
        for (size_t s = 0; s < n_sub; ++s) ss += (amp[s * n_link + l] - mean) * (amp[s * n_link + l] - mean);
        const double sd = std::sqrt(ss / n);
        for (size_t s = 0; s < n_sub; ++s) {
          double& a = amp[s * n_link + l];
          a = sd > 0 ? (a - mean) / sd : a - mean;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- Hampel
// A full window is the whole ring: all channels are sorted at once by an odd-even transposition network over
// rows of n_channels values (the min/max loops vectorize across channels), and median and MAD are read off the
// sorted rows without branches. Windows cut at a stream's ends (at most 3k frames per stream) go channel by
// channel. Both give numpy.median's values exactly.

namespace {

constexpr size_t kMaxNetworkWindow = 31;  // n²/2 comparators: beyond this the per-channel sort is cheaper

inline void minmax_rows(float* __restrict a, float* __restrict b, size_t n) {
  for (size_t c = 0; c < n; ++c) {
    const float x = a[c], y = b[c];
    const float lo = std::min(x, y), hi = std::max(x, y);  // this form vectorizes (minps/maxps)
    a[c] = lo;
    b[c] = hi;
  }
}

// Median and MAD of the sorted window s[0..n), n >= 1 (even n: mean of the two middle values, as numpy.median).
inline void median_mad(const float* s, size_t n, double& med, double& mad) {
  const size_t h = n / 2;
  med = (n & 1) ? static_cast<double>(s[h]) : 0.5 * (static_cast<double>(s[h - 1]) + static_cast<double>(s[h]));
  // Deviations grow leftwards from h-1 and rightwards from h: merge them up to rank n/2.
  const size_t r1 = (n - 1) / 2, r2 = h;
  ptrdiff_t i = static_cast<ptrdiff_t>(h) - 1;
  size_t j = h;
  double d1 = 0, d = 0;
  for (size_t r = 0; r <= r2; ++r) {
    const double left = i >= 0 ? med - static_cast<double>(s[i]) : std::numeric_limits<double>::infinity();
    const double right = j < n ? static_cast<double>(s[j]) - med : std::numeric_limits<double>::infinity();
    if (left <= right) {
      d = left;
      --i;
    } else {
      d = right;
      ++j;
    }
    if (r == r1) d1 = d;
  }
  mad = (n & 1) ? d : 0.5 * (d1 + d);
}

}  // namespace

HampelFilter::HampelFilter(size_t n_channels, size_t k, double n_sigma, bool causal, double min_rel,
                           double min_abs)
    : n_ch_(n_channels), k_(k), win_(2 * k + 1), min_rel_(min_rel), min_abs_(min_abs), causal_(causal) {
  if (n_channels == 0) invalid("Hampel filter needs at least one channel");
  if (k > 10000) invalid("Hampel half-window k is too large (" + std::to_string(k) + ")");
  if (!std::isfinite(n_sigma) || n_sigma < 0) invalid("Hampel n_sigma must be finite and >= 0");
  if (!std::isfinite(min_rel) || min_rel < 0) invalid("Hampel min_rel must be finite and >= 0");
  if (!std::isfinite(min_abs) || min_abs < 0) invalid("Hampel min_abs must be finite and >= 0");
  threshold_scale_ = n_sigma * kMadScale;
  ring_.assign(win_ * n_ch_, 0.0f);
  window_.resize(win_);
  if (win_ <= kMaxNetworkWindow) {
    sorted_.resize(win_ * n_ch_);
    mad_.resize(n_ch_);
  }
}

void HampelFilter::reset() { pushed_ = emitted_ = 0; }

void HampelFilter::decide(const float* x, double med, double mad, float* out, size_t c) {
  // Same operations and order as the numpy reference's _hampel_decide, so both decide identically.
  const double threshold = std::max(std::max(threshold_scale_ * mad, min_rel_ * std::abs(med)), min_abs_);
  if (std::abs(static_cast<double>(x[c]) - med) > threshold) {
    out[c] = static_cast<float>(med);
    ++replaced_;
  } else {
    out[c] = x[c];
  }
}

void HampelFilter::emit(uint64_t frame, uint64_t lo, uint64_t hi, float* out) {
  const size_t n = static_cast<size_t>(hi - lo + 1);
  const float* self = ring_.data() + static_cast<size_t>(frame % win_) * n_ch_;
  ++emitted_;
  if (n == win_ && !sorted_.empty()) {
    const size_t h = k_, cn = n_ch_;
    float* v = sorted_.data();
    std::copy(ring_.begin(), ring_.end(), v);  // the window in any order
    for (size_t r = 0; r < n; ++r) {
      for (size_t i = r & 1; i + 1 < n; i += 2) minmax_rows(v + i * cn, v + (i + 1) * cn, cn);
    }
    // Deviations from the median: A_i = med - v[h-i] and B_j = v[h+j] - med, each ascending in i, j. The MAD is
    // the h-th smallest of A ∪ B (the 0 at v[h] is the smallest), i.e. min over i + j = h of max(A_i, B_j).
    const float* mid = v + h * cn;
    double* mad = mad_.data();
    for (size_t c = 0; c < cn; ++c) mad[c] = static_cast<double>(v[2 * h * cn + c]) - static_cast<double>(mid[c]);
    for (size_t i = 1; i <= h; ++i) {
      const float* left = v + (h - i) * cn;
      const float* right = v + (2 * h - i) * cn;
      for (size_t c = 0; c < cn; ++c) {
        const double med = mid[c];
        const double a = med - static_cast<double>(left[c]), b = static_cast<double>(right[c]) - med;
        const double m = a > b ? a : b;
        mad[c] = m < mad[c] ? m : mad[c];
      }
    }
    for (size_t c = 0; c < cn; ++c) decide(self, mid[c], mad[c], out, c);
    return;
  }
  float* w = window_.data();
  for (size_t c = 0; c < n_ch_; ++c) {
    for (size_t i = 0; i < n; ++i) w[i] = ring_[static_cast<size_t>((lo + i) % win_) * n_ch_ + c];
    if (n <= 32) {
      for (size_t i = 1; i < n; ++i) {
        const float x = w[i];
        size_t j = i;
        for (; j > 0 && w[j - 1] > x; --j) w[j] = w[j - 1];
        w[j] = x;
      }
    } else {
      std::sort(w, w + n);
    }
    double med, mad;
    median_mad(w, n, med, mad);
    decide(self, med, mad, out, c);
  }
}

bool HampelFilter::push(const float* x, float* out) {
  const uint64_t t = pushed_;
  std::copy(x, x + n_ch_, ring_.begin() + static_cast<std::ptrdiff_t>((t % win_) * n_ch_));  // out may alias x
  ++pushed_;
  // The window is now frames [t - 2k, t]: the causal window of t and the centered window of t - k.
  const uint64_t lo = t >= 2 * k_ ? t - 2 * k_ : 0;
  if (causal_) {
    emit(t, lo, t, out);
    return true;
  }
  if (t < k_) return false;
  emit(t - k_, lo, t, out);
  return true;
}

size_t HampelFilter::flush(float* out) {
  size_t n = 0;
  if (!causal_) {
    for (const uint64_t last = pushed_ - 1; emitted_ < pushed_; ++n) {
      const uint64_t j = emitted_;
      emit(j, j >= k_ ? j - k_ : 0, last, out + n * n_ch_);  // frame j's window is [j - k, last]
    }
  }
  reset();
  return n;
}

uint64_t hampel_filter(const float* x, size_t n_frames, size_t n_channels, size_t k, double n_sigma, bool causal,
                       float* out, double min_rel, double min_abs) {
  if (n_frames == 0) invalid("Hampel filter: no frames");
  HampelFilter f(n_channels, k, n_sigma, causal, min_rel, min_abs);
  size_t written = 0;
  // Centered output lags by k frames, so out row (t - k) is written after x row t was read: aliasing is safe.
  for (size_t t = 0; t < n_frames; ++t) {
    if (f.push(x + t * n_channels, out + written * n_channels)) ++written;
  }
  f.flush(out + written * n_channels);
  return f.replaced();
}

// ---------------------------------------------------------------- resampling

LinearResampler::LinearResampler(size_t n_channels, double rate_hz, bool unwrap_phase, double max_gap_s)
    : n_ch_(n_channels), rate_(rate_hz), max_gap_(max_gap_s), unwrap_(unwrap_phase) {
  if (n_channels == 0) invalid("resampler needs at least one channel");
  if (!std::isfinite(rate_hz) || rate_hz <= 0) invalid("rate_hz must be finite and > 0");
  if (std::isnan(max_gap_s) || max_gap_s <= 0) invalid("max_gap_s must be > 0 (inf: fill every gap)");
  prev_.resize(n_ch_);
  raw_prev_.resize(n_ch_);
  cum_.resize(n_ch_);
  cur_.resize(n_ch_);
}

void LinearResampler::reset() {
  started_ = false;
  dropped_ = 0;
}

size_t LinearResampler::push(double t, const float* x, std::vector<double>& t_out, std::vector<float>& x_out) {
  if (!std::isfinite(t)) invalid("resample: timestamp is NaN or Inf");
  require_finite(x, n_ch_, "resample: sample");
  if (!started_) {
    origin_ = std::floor(t);
  }
  const double tr = t - origin_;
  if (!(std::abs(tr * rate_) < kMaxGridIndex)) invalid("resample: timestamp too far from the stream's start");
  if (started_ && !(tr > t_prev_)) {
    ++dropped_;
    return 0;
  }
  const auto last = static_cast<int64_t>(std::floor(tr * rate_ + kGridEps));
  size_t n = 0;
  if (!started_ || tr - t_prev_ > max_gap_) {
    // First sample, or after a gap that is not filled: only a grid point at this sample is emitted.
    const auto first = static_cast<int64_t>(std::ceil(tr * rate_ - kGridEps));
    for (size_t c = 0; c < n_ch_; ++c) {
      if (!started_) cum_[c] = 0;
      // Keep unwrapping across the gap so the phase stays continuous with what was already emitted.
      if (started_ && unwrap_) cum_[c] += unwrap_correction(static_cast<double>(x[c]) - raw_prev_[c]);
      raw_prev_[c] = x[c];
      prev_[c] = unwrap_ ? x[c] + cum_[c] : x[c];
    }
    next_ = started_ ? std::max(next_, first) : first;
    started_ = true;
    for (; next_ <= last; ++next_, ++n) {
      t_out.push_back(origin_ + static_cast<double>(next_) / rate_);
      for (size_t c = 0; c < n_ch_; ++c) x_out.push_back(static_cast<float>(prev_[c]));
    }
    t_prev_ = tr;
    return n;
  }
  for (size_t c = 0; c < n_ch_; ++c) {
    const double raw = x[c];
    if (unwrap_) cum_[c] += unwrap_correction(raw - raw_prev_[c]);
    raw_prev_[c] = raw;
    cur_[c] = raw + cum_[c];
  }
  const double dt = tr - t_prev_;
  for (; next_ <= last; ++next_, ++n) {
    const double tg = static_cast<double>(next_) / rate_;
    const double w = std::min(1.0, std::max(0.0, (tg - t_prev_) / dt));
    t_out.push_back(origin_ + tg);
    for (size_t c = 0; c < n_ch_; ++c) x_out.push_back(static_cast<float>(prev_[c] + w * (cur_[c] - prev_[c])));
  }
  std::swap(prev_, cur_);
  t_prev_ = tr;
  return n;
}

void resample_linear(const double* t, const float* x, size_t n, size_t n_channels, double rate_hz, bool unwrap_phase,
                     double max_gap_s, std::vector<double>& t_out, std::vector<float>& x_out) {
  if (n == 0) invalid("resample: no samples");
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(t[i])) invalid("resample: timestamp " + std::to_string(i) + " is NaN or Inf");
    if (i && !(t[i] > t[i - 1]))
      invalid("resample: timestamps must be strictly increasing (index " + std::to_string(i) + ")");
  }
  require_finite(x, n * n_channels, "resample: samples");
  LinearResampler r(n_channels, rate_hz, unwrap_phase, max_gap_s);
  // Bound the output before allocating it (a wrong unit, e.g. µs timestamps read as seconds, would ask for TBs).
  const double frames = (t[n - 1] - t[0]) * rate_hz + 2;
  if (!(frames * static_cast<double>(n_channels) <= 2147483648.0))
    invalid("resample: output would exceed 2^31 values (" + std::to_string(frames) +
            " frames); resample in chunks or stream with LinearResampler");
  t_out.reserve(t_out.size() + static_cast<size_t>(frames));
  x_out.reserve(x_out.size() + static_cast<size_t>(frames) * n_channels);
  for (size_t i = 0; i < n; ++i) r.push(t[i], x + i * n_channels, t_out, x_out);
}

// ---------------------------------------------------------------- Sanitizer

Sanitizer::Sanitizer(SanitizerConfig cfg)
    : cfg_(std::move(cfg)),
      n_link_(cfg_.n_rx * cfg_.n_tx),
      axis_(cfg_.n_sub, cfg_.subcarrier_index, cfg_.n_sub_out),
      hampel_(std::max<size_t>(axis_.n_out() * std::max<size_t>(n_link_, 1), 1), cfg_.hampel_k, cfg_.hampel_sigmas,
              /*causal=*/true, cfg_.hampel_min_rel, cfg_.hampel_min_abs) {
  if (cfg_.n_rx == 0 || cfg_.n_tx == 0) invalid("n_rx and n_tx must be >= 1");
  amp_.resize(frame_in_size());
  phase_.resize(frame_in_size());
  amp_out_.resize(frame_out_size());
  phase_out_.resize(frame_out_size());
  amp_f_.resize(frame_out_size());
}

void Sanitizer::run(const cf32* csi, float* amplitude, float* phase) {
  const size_t n_in = frame_in_size(), n_out = frame_out_size();
  for (size_t i = 0; i < n_in; ++i) {
    const double re = csi[i].real(), im = csi[i].imag();
    amp_[i] = std::sqrt(re * re + im * im);  // float inputs: squares exact in double, no overflow
    phase_[i] = std::atan2(im, re);
  }
  unwrap_subcarriers(phase_.data(), 1, cfg_.n_sub, n_link_);
  axis_.remove_linear_phase(phase_.data(), 1, n_link_, cfg_.phase_fit);
  const double* amp = amp_.data();
  const double* ph = phase_.data();
  if (axis_.interpolates()) {
    axis_.interpolate(amp_.data(), amp_out_.data(), 1, n_link_);
    axis_.interpolate(phase_.data(), phase_out_.data(), 1, n_link_);
    amp = amp_out_.data();
    ph = phase_out_.data();
  }
  for (size_t i = 0; i < n_out; ++i) amp_f_[i] = static_cast<float>(amp[i]);
  if (cfg_.hampel_k) hampel_.push(amp_f_.data(), amp_f_.data());
  double* norm = amp_out_.data();  // free again: the interpolated amplitude now lives in amp_f_
  for (size_t i = 0; i < n_out; ++i) norm[i] = amp_f_[i];
  normalize_amplitude(norm, 1, axis_.n_out(), n_link_, cfg_.amplitude_norm);
  for (size_t i = 0; i < n_out; ++i) {
    amplitude[i] = static_cast<float>(norm[i]);
    phase[i] = static_cast<float>(ph[i]);
  }
}

void Sanitizer::process_frame(const cf32* csi, float* amplitude, float* phase) {
  require_finite(reinterpret_cast<const float*>(csi), 2 * frame_in_size(), "csi frame");
  run(csi, amplitude, phase);
}

void Sanitizer::process_batch(const cf32* csi, size_t n_frames, float* amplitude, float* phase) {
  require_finite(reinterpret_cast<const float*>(csi), 2 * frame_in_size() * n_frames, "csi batch");
  const size_t in = frame_in_size(), out = frame_out_size();
  for (size_t i = 0; i < n_frames; ++i) run(csi + i * in, amplitude + i * out, phase + i * out);
}

}  // namespace wdp
