// Reservoir graphs: the sparse recurrent matrix W of ReservoirAttention, for each topology, with its
// degree statistics and a spectral radius from a real (Arnoldi) eigensolver.
#pragma once

#include <Eigen/SparseCore>

#include <cstdint>
#include <string>
#include <vector>

namespace attnbench::reservoir {

using SparseMatrix = Eigen::SparseMatrix<float, Eigen::RowMajor, int64_t>;

struct GraphSpec {
  int64_t size = 256;         // N nodes
  double density = 0.01;      // target nnz / N^2
  std::string topology = "uniform";
  uint64_t seed = 0;
  double radius = 0;          // geometric: connection radius; 0 derives it from density
  int64_t local_radius = 1;   // smallworld: lattice links within this Manhattan distance
};

struct DegreeStats {
  int64_t nodes = 0, nnz = 0, min_degree = 0, max_degree = 0, empty_rows = 0;
  double mean_degree = 0, density = 0;
};

const std::vector<std::string>& topologies();

// W with values drawn U(-0.5, 0.5), not yet scaled. Throws std::invalid_argument for bad specs.
//  - uniform: exactly round(density * N^2) positions drawn without replacement (at least 1).
//  - geometric: N points uniform in the unit square; i and j linked (both directions, independent values)
//    when closer than the radius. radius 0: the round(density * N^2 / 2) closest pairs, so density holds.
//  - smallworld: N nodes row by row on a ceil(sqrt(N))-wide lattice (the last row may be partial); links to
//    lattice nodes within local_radius, plus long-range links drawn with probability ~ d^-2 (Kleinberg),
//    as many per node as density leaves after the lattice links, at least one. Density below the lattice's
//    own (about 4 / N for local_radius 1) cannot be reached; the achieved value is reported.
SparseMatrix make_graph(const GraphSpec& spec);

DegreeStats degree_stats(const SparseMatrix& w);

// Largest |eigenvalue| of w: Arnoldi (Spectra) for large N, a dense eigen-decomposition for small N or
// when Arnoldi does not converge.
double spectral_radius(const SparseMatrix& w);

}  // namespace attnbench::reservoir
