#include "topology.h"

#include <Eigen/Eigenvalues>
#include <Spectra/GenEigsSolver.h>
#include <Spectra/MatOp/SparseGenMatProd.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_set>

namespace attnbench::reservoir {
namespace {

using Triplet = Eigen::Triplet<float, int64_t>;

float weight(std::mt19937_64& rng) { return std::uniform_real_distribution<float>(-0.5f, 0.5f)(rng); }

int64_t target_nnz(const GraphSpec& spec) {
  return std::max<int64_t>(1, std::llround(spec.density * static_cast<double>(spec.size) * static_cast<double>(spec.size)));
}

std::vector<Triplet> uniform(const GraphSpec& spec, std::mt19937_64& rng) {
  const int64_t n = spec.size, nnz = target_nnz(spec);
  std::unordered_set<int64_t> taken;
  std::vector<Triplet> out;
  std::uniform_int_distribution<int64_t> pick(0, n * n - 1);
  // Rejection sampling is fast while density is small; above one half, draw the complement instead.
  if (nnz * 2 <= n * n) {
    while (static_cast<int64_t>(out.size()) < nnz) {
      int64_t p = pick(rng);
      if (taken.insert(p).second) out.emplace_back(p / n, p % n, weight(rng));
    }
  } else {
    while (static_cast<int64_t>(taken.size()) < n * n - nnz) taken.insert(pick(rng));
    for (int64_t p = 0; p < n * n; ++p) {
      if (!taken.count(p)) out.emplace_back(p / n, p % n, weight(rng));
    }
  }
  return out;
}

std::vector<Triplet> geometric(const GraphSpec& spec, std::mt19937_64& rng) {
  const int64_t n = spec.size;
  std::vector<double> xs(n), ys(n);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int64_t i = 0; i < n; ++i) xs[i] = unit(rng), ys[i] = unit(rng);
  struct Pair {
    double d2;
    int64_t i, j;
  };
  std::vector<Pair> pairs;
  pairs.reserve(static_cast<size_t>(n * (n - 1) / 2));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      double dx = xs[i] - xs[j], dy = ys[i] - ys[j];
      pairs.push_back({dx * dx + dy * dy, i, j});
    }
  }
  size_t keep = 0;
  if (spec.radius > 0) {
    const double r2 = spec.radius * spec.radius;
    auto end = std::partition(pairs.begin(), pairs.end(), [&](const Pair& p) { return p.d2 < r2; });
    keep = static_cast<size_t>(end - pairs.begin());
    std::sort(pairs.begin(), end, [](const Pair& a, const Pair& b) { return a.i != b.i ? a.i < b.i : a.j < b.j; });
  } else {
    keep = std::min(pairs.size(), static_cast<size_t>(std::max<int64_t>(1, target_nnz(spec) / 2)));
    std::nth_element(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(keep - 1), pairs.end(),
                     [](const Pair& a, const Pair& b) { return a.d2 < b.d2; });
    std::sort(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(keep),
              [](const Pair& a, const Pair& b) { return a.i != b.i ? a.i < b.i : a.j < b.j; });
  }
  std::vector<Triplet> out;
  for (size_t k = 0; k < keep; ++k) {
    out.emplace_back(pairs[k].i, pairs[k].j, weight(rng));
    out.emplace_back(pairs[k].j, pairs[k].i, weight(rng));
  }
  return out;
}

std::vector<Triplet> smallworld(const GraphSpec& spec, std::mt19937_64& rng) {
  const int64_t n = spec.size;
  const int64_t side = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  auto row = [&](int64_t v) { return v / side; };
  auto col = [&](int64_t v) { return v % side; };
  auto dist = [&](int64_t a, int64_t b) { return std::abs(row(a) - row(b)) + std::abs(col(a) - col(b)); };
  std::vector<std::vector<int64_t>> links(n);
  int64_t local_total = 0;
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t dr = -spec.local_radius; dr <= spec.local_radius; ++dr) {
      for (int64_t dc = -spec.local_radius; dc <= spec.local_radius; ++dc) {
        if ((dr == 0 && dc == 0) || std::abs(dr) + std::abs(dc) > spec.local_radius) continue;
        int64_t r = row(v) + dr, c = col(v) + dc;
        if (r < 0 || c < 0 || c >= side) continue;
        int64_t u = r * side + c;
        if (u < n) links[v].push_back(u);
      }
    }
    local_total += static_cast<int64_t>(links[v].size());
  }
  const double wanted_per_node = static_cast<double>(target_nnz(spec) - local_total) / static_cast<double>(n);
  const int64_t long_range = std::max<int64_t>(1, std::llround(wanted_per_node));
  std::vector<double> weights(n);
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t u = 0; u < n; ++u) {
      int64_t d = dist(u, v);
      weights[u] = d > spec.local_radius ? 1.0 / static_cast<double>(d * d) : 0.0;
    }
    // Distinct targets: draw with replacement and skip repeats, with a bound for tiny graphs where
    // fewer than long_range candidates exist.
    const int64_t candidates = std::count_if(weights.begin(), weights.end(), [](double w) { return w > 0; });
    if (candidates == 0) continue;
    std::discrete_distribution<int64_t> pick(weights.begin(), weights.end());
    std::unordered_set<int64_t> chosen;
    for (int64_t tries = 0; static_cast<int64_t>(chosen.size()) < std::min(long_range, candidates) && tries < 100 * long_range; ++tries) {
      int64_t u = pick(rng);
      if (chosen.insert(u).second) links[v].push_back(u);
    }
  }
  std::vector<Triplet> out;
  for (int64_t v = 0; v < n; ++v) {
    std::sort(links[v].begin(), links[v].end());
    for (int64_t u : links[v]) out.emplace_back(v, u, weight(rng));
  }
  return out;
}

double dense_radius(const SparseMatrix& w) {
  Eigen::MatrixXd dense = Eigen::MatrixXd(w.cast<double>());
  Eigen::EigenSolver<Eigen::MatrixXd> solver(dense, /*computeEigenvectors=*/false);
  return solver.eigenvalues().cwiseAbs().maxCoeff();
}

}  // namespace

const std::vector<std::string>& topologies() {
  static const std::vector<std::string> names{"uniform", "geometric", "smallworld"};
  return names;
}

SparseMatrix make_graph(const GraphSpec& spec) {
  if (spec.size < 2) throw std::invalid_argument("reservoir: res_size must be >= 2, got " + std::to_string(spec.size));
  if (!(spec.density > 0 && spec.density <= 1)) {
    throw std::invalid_argument("reservoir: density must be in (0, 1], got " + std::to_string(spec.density));
  }
  if (spec.radius < 0) throw std::invalid_argument("reservoir: radius must be >= 0");
  if (spec.local_radius < 1) throw std::invalid_argument("reservoir: local_radius must be >= 1");
  std::mt19937_64 rng(spec.seed);
  std::vector<Triplet> triplets;
  if (spec.topology == "uniform") triplets = uniform(spec, rng);
  else if (spec.topology == "geometric") triplets = geometric(spec, rng);
  else if (spec.topology == "smallworld") triplets = smallworld(spec, rng);
  else {
    throw std::invalid_argument("reservoir: unknown topology '" + spec.topology + "'; valid: uniform, geometric, smallworld");
  }
  SparseMatrix w(spec.size, spec.size);
  w.setFromTriplets(triplets.begin(), triplets.end());
  w.makeCompressed();
  return w;
}

DegreeStats degree_stats(const SparseMatrix& w) {
  DegreeStats s;
  s.nodes = w.rows();
  s.nnz = w.nonZeros();
  s.min_degree = INT64_MAX;
  for (int64_t r = 0; r < w.rows(); ++r) {
    int64_t d = w.outerIndexPtr()[r + 1] - w.outerIndexPtr()[r];
    s.min_degree = std::min(s.min_degree, d);
    s.max_degree = std::max(s.max_degree, d);
    s.empty_rows += d == 0;
  }
  s.mean_degree = static_cast<double>(s.nnz) / static_cast<double>(s.nodes);
  s.density = static_cast<double>(s.nnz) / (static_cast<double>(s.nodes) * static_cast<double>(s.nodes));
  return s;
}

double spectral_radius(const SparseMatrix& w) {
  const int64_t n = w.rows();
  // Dense QR is exact and cheap below a few hundred nodes' worth of work; Arnoldi needs ncv < n.
  if (n <= 64) return dense_radius(w);
  Eigen::SparseMatrix<double, Eigen::ColMajor> m = w.cast<double>();
  Spectra::SparseGenMatProd<double> op(m);
  // Several eigenvalues, since a random real matrix often has its largest as a complex pair.
  const Eigen::Index nev = std::min<Eigen::Index>(6, n - 2);
  const Eigen::Index ncv = std::min<Eigen::Index>(n, std::max<Eigen::Index>(2 * nev + 1, 30));
  Spectra::GenEigsSolver<Spectra::SparseGenMatProd<double>> solver(op, nev, ncv);
  solver.init();
  solver.compute(Spectra::SortRule::LargestMagn, 1000, 1e-10);
  if (solver.info() != Spectra::CompInfo::Successful) {
    if (n <= 4096) return dense_radius(w);
    throw std::runtime_error("reservoir: the eigensolver did not converge for N=" + std::to_string(n));
  }
  return solver.eigenvalues().cwiseAbs().maxCoeff();
}

}  // namespace attnbench::reservoir
