// Deterministic pseudo-random numbers for training and data generation.
//
// std::mt19937 is exactly specified but std::uniform_int_distribution and friends are not (each
// standard library maps bits to values its own way), so models trained with the same seed would
// differ between libstdc++ and libc++. This generator (xoshiro256**, seeded through splitmix64)
// and its value mappings are fully specified here.
//
// Thread-safety: an Rng is used by one thread at a time; give each task its own stream.
#pragma once

#include <cmath>
#include <cstdint>

namespace modelreg::detail {

inline std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  // Stream `stream` of `seed`: different streams of one seed are independent (used for per-tree
  // generators, so that a tree's randomness does not depend on which thread trains it).
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) noexcept {
    std::uint64_t s = seed ^ (stream * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL);
    for (auto& word : state_) word = splitmix64(s);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, n), unbiased (rejects the top partial range). n > 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const std::uint64_t x = next();
      if (x >= threshold) return x % n;
    }
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Standard normal (Marsaglia's polar method; the second value of each pair is discarded so the
  // stream position does not depend on call history).
  double normal() noexcept {
    for (;;) {
      const double u = 2 * uniform() - 1;
      const double v = 2 * uniform() - 1;
      const double s = u * u + v * v;
      if (s > 0 && s < 1) return u * std::sqrt(-2 * std::log(s) / s);
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4];
};

}  // namespace modelreg::detail
