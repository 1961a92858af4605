// Runs a study: every cell through its measurement modes, one JSON line each, a report on stdout.
#pragma once

#include "study/study.h"

#include <ostream>
#include <string>

namespace attnbench {

struct RunOptions {
  bool force = false;            // rerun cells already in the results file
  std::string save_outputs_dir;  // write each cell's forward/step outputs as safetensors (else the study's)
  bool allow_inconsistent = false;  // an inconsistent cell (beyond a consistency gate) does not make the exit status 1
  bool color = false;               // say what is inconsistent in red (stdout is a terminal)
};

// Returns the process exit status: 0 when every cell is ok or skipped, 1 when any cell failed or is
// inconsistent (unless allow_inconsistent).
int run_study(const Study& study, const RunOptions& options, std::ostream& out);

// The cells as --dry-run lists them, with their modes, and their count.
void print_cells(const Study& study, std::ostream& out);

}  // namespace attnbench
