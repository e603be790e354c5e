// The fixed header in front of every model archive (layout: docs/model_format.md).
//
// Private to the library, and to tests that craft headers (a future version, another byte order).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "modelreg/model_archive.hpp"

namespace modelreg {
class ByteSpanBuffer;
class Model;
}  // namespace modelreg

namespace modelreg::detail {

inline constexpr char kArchiveMagic[8] = {'\x89', 'M', 'R', 'G', '\r', '\n', '\x1a', '\n'};
inline constexpr unsigned kHeaderVersion = 1;
// The first 20 bytes (magic, header version, header size, checksum) keep this layout in every
// header version, so that any version's checksum can be verified before its version is judged.
inline constexpr std::size_t kFrozenPrefix = 20;
inline constexpr std::size_t kChecksumOffset = 12;
inline constexpr std::size_t kFixedHeaderV1 = 38;  // before the type name
inline constexpr std::size_t kMaxTypeName = 127;   // Boost keys are at most 127 characters

// Every field of a version-1 header, as written.
struct RawHeader {
  std::uint16_t header_version = kHeaderVersion;
  std::uint8_t kind = static_cast<std::uint8_t>(ArchiveKind::boost_binary);
  std::uint8_t byte_order = 0;  // 1 little, 2 big
  std::uint16_t boost_library_version = 0;
  std::uint8_t int_size = sizeof(int);
  std::uint8_t long_size = sizeof(long);
  std::uint8_t size_t_size = sizeof(std::size_t);
  std::uint8_t double_size = sizeof(double);
  std::string type_name;
};

// This build's header for a model of `type_name`.
RawHeader native_header(std::string_view type_name);

// The header bytes for `header` followed by `payload`, with the sizes and the checksum filled in.
std::string encode_archive(const RawHeader& header, std::string_view payload);
// Fills in payload size and checksum of an archive whose header (of header_size bytes) was
// written by encode_archive with an empty payload and whose payload has been appended since.
void seal_archive(std::string& archive, std::size_t header_size);

// XXH3-64 of bytes [20, end) seeded with the XXH3-64 of bytes [0, 12): everything but the checksum.
std::uint64_t archive_checksum(std::string_view archive);

// Any header fits in this many bytes (its size is a 16-bit field).
inline constexpr std::size_t kMaxHeaderBytes = 65536;

// Checks the header as described in model_archive.hpp and returns what it says.
ArchiveInfo decode_header(std::string_view archive);
// The same checks, given the archive's first bytes (at least the whole header, or all of a shorter
// archive), its total size and its archive_checksum.
ArchiveInfo decode_header_fields(std::string_view first_bytes, std::uint64_t total_size, std::uint64_t checksum);
// The same checks over an archive pulled from `read` (until it returns 0) without holding it in
// memory: the first pass of a streamed load.
ArchiveInfo decode_header_stream(const std::function<std::size_t(char*, std::size_t)>& read);

// Deserializes the payload `payload` holds (positioned just after the header described by `info`);
// what deserialize_model does after decode_header. `payload` must end where the archive ends.
std::unique_ptr<Model> deserialize_payload(ByteSpanBuffer& payload, const ArchiveInfo& info,
                                           std::string_view expected_type);

}  // namespace modelreg::detail
