#include "measure/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace attnbench {

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  double pos = q / 100.0 * static_cast<double>(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

Stats summarize(std::vector<double> samples, double unstable_cv) {
  Stats s;
  s.samples = samples;
  s.n = static_cast<int64_t>(samples.size());
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.min = samples.front();
  s.max = samples.back();
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  double ss = 0;
  for (double v : samples) ss += (v - s.mean) * (v - s.mean);
  s.stdev = s.n > 1 ? std::sqrt(ss / static_cast<double>(s.n - 1)) : 0.0;
  s.median = percentile(samples, 50);
  s.p10 = percentile(samples, 10);
  s.p90 = percentile(samples, 90);
  s.p99 = percentile(samples, 99);
  s.cv = s.mean > 0 ? s.stdev / s.mean : 0.0;
  s.unstable = s.n > 1 && s.cv > unstable_cv;
  return s;
}

nlohmann::json to_json(const Stats& s, bool with_samples) {
  nlohmann::json j = {{"median", s.median}, {"mean", s.mean}, {"stdev", s.stdev}, {"p10", s.p10},
                      {"p90", s.p90},       {"p99", s.p99},   {"min", s.min},     {"max", s.max},
                      {"n", s.n},           {"cv", s.cv},     {"unstable", s.unstable}};
  if (with_samples) j["samples"] = s.samples;
  return j;
}

}  // namespace attnbench
