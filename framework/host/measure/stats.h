// Summary statistics of repeated measurements: the one place they are computed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace attnbench {

struct Stats {
  double median = 0, mean = 0, stdev = 0, p10 = 0, p90 = 0, p99 = 0, min = 0, max = 0;
  int64_t n = 0;
  double cv = 0;          // stdev / mean
  bool unstable = false;  // cv above the study's measure.unstable_cv
  std::vector<double> samples;
};

// Percentiles interpolate linearly between order statistics (numpy's default), so p50 == median.
double percentile(std::vector<double> sorted_or_not, double q);
Stats summarize(std::vector<double> samples, double unstable_cv);
nlohmann::json to_json(const Stats& stats, bool with_samples = true);

}  // namespace attnbench
