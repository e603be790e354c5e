#include "store/sha256.hpp"

#include <openssl/evp.h>

#include "core/text_format.hpp"
#include "store/byte_source.hpp"
#include "modelreg/checksum.hpp"
#include "modelreg/error.hpp"

namespace modelreg::detail {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    if (ctx_->md != nullptr) EVP_MD_CTX_free(ctx_->md);
    throw Error(Errc::io_error, "OpenSSL could not initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_->md); }

void Sha256::update(const void* data, std::size_t size) {
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_->md, data, size) != 1) {
    throw Error(Errc::io_error, "OpenSSL SHA-256 update failed");
  }
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_->md, digest, &length) != 1) {
    throw Error(Errc::io_error, "OpenSSL SHA-256 final failed");
  }
  return to_hex(digest, length);
}

}  // namespace modelreg::detail

namespace modelreg {

std::string sha256_bytes(std::string_view bytes) {
  detail::Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex_digest();
}

std::string sha256_file(const std::filesystem::path& file) {
  detail::FileSource source(file);
  detail::Sha256 sha;
  std::string buffer(1 << 20, '\0');
  while (std::size_t n = source.read(buffer.data(), buffer.size())) sha.update(buffer.data(), n);
  return sha.hex_digest();
}

}  // namespace modelreg
