// modelreg/model_archive.hpp — a Model to bytes and back, through its base pointer.
//
// An archive is a small fixed header (magic, header version, checksum, archive kind, byte order,
// Boost archive library version, native word sizes, type name, payload length) followed by a
// Boost.Serialization binary archive of the model. The header layout is documented in
// docs/model_format.md. Built-in types and any type exported as model_serialization.hpp shows
// are handled the same way.
//
// Loading never trusts the bytes: the checksum is verified before Boost sees anything, every length
// inside the payload is checked against the bytes left (a crafted length cannot allocate more than
// the input's size), trees are checked for structural validity, and every failure — including
// every Boost exception — is a modelreg::Error:
//   corruption         not an archive, truncated, checksum mismatch, payload that does not decode
//                      or fails the type's own checks, trailing bytes
//   incompatible       written by a newer header version, a newer Boost archive library, a newer
//                      version of the model class, another byte order or word size, or an archive
//                      kind this build does not know
//   validation_failed  the type is not the expected one, or is not registered in this program
//
// Thread-safety: the functions may be called from several threads at once.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"
#include "modelreg/model.hpp"

namespace modelreg {

// How the payload after the header is encoded. Only one kind exists today.
enum class ArchiveKind : std::uint8_t {
  boost_binary = 1,  // Boost.Serialization binary archive, native byte order, without Boost's header
};

// What the header of an archive says.
struct MODELREG_API ArchiveInfo {
  unsigned header_version = 0;
  ArchiveKind kind = ArchiveKind::boost_binary;
  std::endian byte_order = std::endian::native;
  unsigned boost_library_version = 0;  // boost::archive::BOOST_ARCHIVE_VERSION() of the writer
  std::string type_name;
  std::uint64_t header_size = 0;   // bytes before the payload
  std::uint64_t payload_size = 0;
};

// The archive kind, header version and Boost archive library version this build writes.
MODELREG_API ArchiveInfo current_archive_format();

// The model as archive bytes. Throws Error(invalid_argument) when the model is untrained or its
// type is not exported under type_name() (the message says how to export it).
MODELREG_API std::string serialize_model(const Model& model);

// The model in `bytes`. When `expected_type` is not empty, a model of another type is
// Error(validation_failed) naming both (checked from the header, before deserializing).
// Throws as described at the top of this file.
MODELREG_API std::unique_ptr<Model> deserialize_model(std::string_view bytes, std::string_view expected_type = {});

// Reads and checks the header only (magic, checksum, versions, byte order, word sizes), without
// deserializing the payload. Throws corruption / incompatible as deserialize_model.
MODELREG_API ArchiveInfo inspect_model_archive(std::string_view bytes);

}  // namespace modelreg
