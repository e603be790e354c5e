// Incremental SHA-256 (OpenSSL EVP), hex output. Not thread-safe; one per stream.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace modelreg::detail {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  // Lower-case hex of the digest; the object cannot be updated afterwards.
  std::string hex_digest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace modelreg::detail
