// Dense linear algebra shared by the linear models: small symmetric positive definite solves.
#pragma once

#include <cstddef>
#include <vector>

namespace modelreg::detail {

// Solves A·x = b for a symmetric positive definite A (n × n, row-major; only the lower triangle is
// read) by Cholesky; `x` holds b on entry and the solution on return. Returns false when A is not
// numerically positive definite (x is then unspecified).
bool cholesky_solve(std::vector<double> a, std::size_t n, std::vector<double>& x);

}  // namespace modelreg::detail
