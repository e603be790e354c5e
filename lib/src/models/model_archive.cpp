#include "modelreg/model_archive.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/basic_archive.hpp>
#include <boost/archive/detail/archive_serializer_map.hpp>
#include <boost/archive/detail/basic_pointer_iserializer.hpp>
#include <boost/archive/detail/basic_pointer_oserializer.hpp>
#include <boost/archive/detail/basic_iserializer.hpp>
#include <boost/serialization/extended_type_info_typeid.hpp>
#include <boost/serialization/singleton.hpp>
#include <fmt/format.h>
#include <xxhash.h>

#include "models/archive_header.hpp"
#include "models/loading_root.hpp"
#include "modelreg/error.hpp"
#include "modelreg/model_serialization.hpp"
#include "modelreg/training.hpp"

namespace modelreg {

// ---- the header ----------------------------------------------------------------------------------

namespace detail {

namespace {

std::uint8_t native_byte_order() { return std::endian::native == std::endian::little ? 1 : 2; }

void put_le(std::string& out, std::size_t offset, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) out[offset + i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

std::uint64_t get_le(std::string_view in, std::size_t offset, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) value |= std::uint64_t{static_cast<unsigned char>(in[offset + i])} << (8 * i);
  return value;
}

bool valid_type_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == ':' || c == '-';
}

bool valid_type_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxTypeName && std::all_of(name.begin(), name.end(), valid_type_char);
}

[[noreturn]] void corrupt(const std::string& what) {
  throw Error(Errc::corruption, "model archive: " + what);
}
[[noreturn]] void incompatible(const std::string& what) {
  throw Error(Errc::incompatible, "model archive: " + what);
}

}  // namespace

RawHeader native_header(std::string_view type_name) {
  RawHeader h;
  h.byte_order = native_byte_order();
  h.boost_library_version = static_cast<std::uint16_t>(boost::archive::BOOST_ARCHIVE_VERSION());
  h.type_name = std::string(type_name);
  return h;
}

std::uint64_t archive_checksum(std::string_view archive) {
  const std::uint64_t seed = XXH3_64bits(archive.data(), kChecksumOffset);
  return XXH3_64bits_withSeed(archive.data() + kFrozenPrefix, archive.size() - kFrozenPrefix, seed);
}

std::string encode_archive(const RawHeader& header, std::string_view payload) {
  const std::size_t header_size = kFixedHeaderV1 + header.type_name.size();
  std::string out(header_size, '\0');
  std::memcpy(out.data(), kArchiveMagic, sizeof kArchiveMagic);
  put_le(out, 8, header.header_version, 2);
  put_le(out, 10, header_size, 2);
  out[20] = static_cast<char>(header.kind);
  out[21] = static_cast<char>(header.byte_order);
  put_le(out, 22, header.boost_library_version, 2);
  out[24] = static_cast<char>(header.int_size);
  out[25] = static_cast<char>(header.long_size);
  out[26] = static_cast<char>(header.size_t_size);
  out[27] = static_cast<char>(header.double_size);
  put_le(out, 36, header.type_name.size(), 2);
  std::memcpy(out.data() + kFixedHeaderV1, header.type_name.data(), header.type_name.size());
  out.append(payload);
  seal_archive(out, header_size);
  return out;
}

void seal_archive(std::string& archive, std::size_t header_size) {
  put_le(archive, 28, archive.size() - header_size, 8);
  put_le(archive, kChecksumOffset, archive_checksum(archive), 8);
}

ArchiveInfo decode_header(std::string_view archive) {
  const std::uint64_t computed = archive.size() >= kFrozenPrefix ? archive_checksum(archive) : 0;
  return decode_header_fields(archive.substr(0, kMaxHeaderBytes), archive.size(), computed);
}

ArchiveInfo decode_header_stream(const std::function<std::size_t(char*, std::size_t)>& read) {
  // The first kMaxHeaderBytes are kept (any header fits); the rest only goes through the checksum.
  std::string prefix;
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owner(state, &XXH3_freeState);
  bool seeded = false;
  std::uint64_t total = 0;
  std::vector<char> buffer(64u << 10);
  while (true) {
    const std::size_t n = read(buffer.data(), buffer.size());
    if (n == 0) break;
    std::string_view piece(buffer.data(), n);
    const std::uint64_t start = total;
    total += n;
    if (prefix.size() < kMaxHeaderBytes) {
      prefix.append(piece.substr(0, kMaxHeaderBytes - prefix.size()));
    }
    if (!seeded && total >= kFrozenPrefix) {
      // The seed covers bytes [0, 12); the checksum field [12, 20) is skipped.
      XXH3_64bits_reset_withSeed(state, XXH3_64bits(prefix.data(), kChecksumOffset));
      seeded = true;
      if (total > kFrozenPrefix) XXH3_64bits_update(state, piece.data() + (kFrozenPrefix - start), total - kFrozenPrefix);
    } else if (seeded) {
      XXH3_64bits_update(state, piece.data(), piece.size());
    }
  }
  return decode_header_fields(prefix, total, seeded ? XXH3_64bits_digest(state) : 0);
}

ArchiveInfo decode_header_fields(std::string_view archive, std::uint64_t total_size, std::uint64_t computed) {
  // `archive` holds the first bytes (all of the header when the archive is whole); total_size is
  // the archive's full size; `computed` its checksum (archive_checksum).
  const std::string_view magic(kArchiveMagic, sizeof kArchiveMagic);
  if (archive.substr(0, magic.size()) != magic.substr(0, std::min(archive.size(), magic.size()))) {
    corrupt("not a modelreg model archive (wrong magic bytes)");
  }
  if (total_size < kFrozenPrefix) corrupt(fmt::format("truncated: {} bytes, the header alone needs more", total_size));

  const auto header_version = static_cast<unsigned>(get_le(archive, 8, 2));
  const auto header_size = static_cast<std::size_t>(get_le(archive, 10, 2));
  const std::uint64_t stored = get_le(archive, kChecksumOffset, 8);
  if (stored != computed) {
    if (header_version == kHeaderVersion && header_size >= kFixedHeaderV1 && archive.size() >= kFixedHeaderV1) {
      const std::uint64_t expected = header_size + get_le(archive, 28, 8);
      if (total_size < expected) corrupt(fmt::format("truncated: {} of {} bytes", total_size, expected));
      if (total_size > expected) corrupt(fmt::format("{} bytes more than the {} the header declares", total_size - expected, expected));
    }
    corrupt(fmt::format("checksum mismatch (stored {:016x}, computed {:016x}): the bytes were altered", stored, computed));
  }
  if (header_version == 0) corrupt("header version 0");
  if (header_version > kHeaderVersion) {
    incompatible(fmt::format("header version {} is newer than this build reads ({}); upgrade modelreg", header_version,
                             kHeaderVersion));
  }
  if (header_size < kFixedHeaderV1 || header_size > archive.size()) corrupt(fmt::format("header size {}", header_size));
  // From here on every field read lies inside the header, which `archive` holds whole.

  ArchiveInfo info;
  info.header_version = header_version;
  info.header_size = header_size;
  const auto kind = static_cast<std::uint8_t>(archive[20]);
  if (kind != static_cast<std::uint8_t>(ArchiveKind::boost_binary)) {
    incompatible(fmt::format("archive kind {} is unknown to this build (it reads kind 1, boost_binary)", kind));
  }
  info.kind = ArchiveKind::boost_binary;
  const auto order = static_cast<std::uint8_t>(archive[21]);
  if (order != 1 && order != 2) corrupt(fmt::format("byte order {}", order));
  info.byte_order = order == 1 ? std::endian::little : std::endian::big;
  if (order != native_byte_order()) {
    incompatible(fmt::format("written on a {}-endian machine; this one is {}-endian (Boost binary archives are not "
                             "portable between them)",
                             order == 1 ? "little" : "big", native_byte_order() == 1 ? "little" : "big"));
  }
  info.boost_library_version = static_cast<unsigned>(get_le(archive, 22, 2));
  const unsigned ours = boost::archive::BOOST_ARCHIVE_VERSION();
  if (info.boost_library_version == 0) corrupt("Boost archive library version 0");
  if (info.boost_library_version > ours) {
    incompatible(fmt::format("written by Boost archive library version {}, newer than this build's {}",
                             info.boost_library_version, ours));
  }
  const RawHeader native = native_header("");
  const unsigned sizes[4] = {static_cast<unsigned char>(archive[24]), static_cast<unsigned char>(archive[25]),
                             static_cast<unsigned char>(archive[26]), static_cast<unsigned char>(archive[27])};
  const unsigned native_sizes[4] = {native.int_size, native.long_size, native.size_t_size, native.double_size};
  const char* names[4] = {"int", "long", "size_t", "double"};
  for (int i = 0; i < 4; ++i) {
    if (sizes[i] != native_sizes[i]) {
      incompatible(fmt::format("written where {} has {} bytes; here it has {}", names[i], sizes[i], native_sizes[i]));
    }
  }
  info.payload_size = get_le(archive, 28, 8);
  if (info.payload_size != total_size - header_size) {
    corrupt(fmt::format("header declares a {}-byte payload, {} bytes follow it", info.payload_size, total_size - header_size));
  }
  const auto name_size = static_cast<std::size_t>(get_le(archive, 36, 2));
  if (kFixedHeaderV1 + name_size != header_size) corrupt(fmt::format("type name of {} bytes in a {}-byte header", name_size, header_size));
  info.type_name = std::string(archive.substr(kFixedHeaderV1, name_size));
  if (!valid_type_name(info.type_name)) corrupt("the type name is not [A-Za-z0-9_.:-]{1,127}");
  return info;
}

}  // namespace detail

// ---- the API -------------------------------------------------------------------------------------

namespace {

// Appends everything written to it to a string.
class StringSink : public std::streambuf {
 public:
  explicit StringSink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& out_;
};

std::string known_types() {
  std::string list;
  for (const auto& t : built_in_model_types()) list += (list.empty() ? "" : ", ") + t;
  return list;
}

Error from_archive_exception(const boost::archive::archive_exception& e, std::string_view type) {
  using boost::archive::archive_exception;
  switch (e.code) {
    case archive_exception::unsupported_version:
    case archive_exception::unsupported_class_version:
      return Error(Errc::incompatible,
                   fmt::format("model archive: the {} was written by a newer version of its class or of Boost ({}); "
                               "upgrade to load it", type, e.what()));
    case archive_exception::unregistered_class:
      return Error(Errc::validation_failed,
                   fmt::format("model archive: the {} payload names a class this program does not know ({})", type, e.what()));
    default:
      return Error(Errc::corruption, fmt::format("model archive: the {} payload does not decode ({})", type, e.what()));
  }
}

}  // namespace

ArchiveInfo current_archive_format() {
  ArchiveInfo info;
  info.header_version = detail::kHeaderVersion;
  info.kind = ArchiveKind::boost_binary;
  info.byte_order = std::endian::native;
  info.boost_library_version = boost::archive::BOOST_ARCHIVE_VERSION();
  return info;
}

// How the model travels: Boost finds the serializers of the model's dynamic type through its
// export registry (the type's key is its type_name()), and the object is written and read *by
// value* with them — the same serializers Boost uses behind a polymorphic pointer, minus the class
// id, class name and pointer tracking Boost would put in front. The class is named once, in our
// header. This keeps Boost's pointer loader, which indexes its class table with class ids read
// from the input without checking them, out of the path of untrusted bytes.
std::string serialize_model(const Model& model) {
  const std::string type = model.type_name();
  if (model.n_features() == 0) {
    throw Error(Errc::invalid_argument, fmt::format("cannot save an untrained {} model", type));
  }
  if (!detail::valid_type_name(type)) {
    throw Error(Errc::invalid_argument, fmt::format("type name '{}' is not [A-Za-z0-9_.:-]{{1,127}}", type));
  }
  const boost::serialization::extended_type_info* derived =
      boost::serialization::singleton<boost::serialization::extended_type_info_typeid<Model>>::get_const_instance()
          .get_derived_extended_type_info(model);
  const char* key = derived != nullptr ? derived->get_key() : nullptr;
  if (key == nullptr) {
    throw Error(Errc::invalid_argument,
                fmt::format("the {} model's class ({}) is not exported for serialization: add "
                            "BOOST_CLASS_EXPORT_GUID(YourClass, \"{}\") after including modelreg/model_serialization.hpp",
                            type, typeid(model).name(), type));
  }
  if (type != key) {
    throw Error(Errc::invalid_argument,
                fmt::format("the class is exported as '{}' but its type_name() is '{}'; they must be equal", key, type));
  }
  const auto* saver = static_cast<const boost::archive::detail::basic_pointer_oserializer*>(
      boost::archive::detail::archive_serializer_map<ModelOutputArchive>::find(*derived));
  if (saver == nullptr) {
    throw Error(Errc::invalid_argument,
                fmt::format("the {} class is exported, but not for modelreg's archives: include "
                            "modelreg/model_serialization.hpp before BOOST_CLASS_EXPORT_GUID", type));
  }

  std::string out = detail::encode_archive(detail::native_header(type), {});
  const std::size_t header_size = out.size();
  try {
    StringSink sink(out);
    ModelOutputArchive archive(sink, boost::archive::no_header | boost::archive::no_codecvt);
    saver->save_object_ptr(archive, dynamic_cast<const void*>(&model));  // the most derived object
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(Errc::invalid_argument, fmt::format("cannot serialize the {} model: {}", type, e.what()));
  }
  detail::seal_archive(out, header_size);
  return out;
}

ArchiveInfo inspect_model_archive(std::string_view bytes) { return detail::decode_header(bytes); }

std::unique_ptr<Model> deserialize_model(std::string_view bytes, std::string_view expected_type) {
  const ArchiveInfo info = detail::decode_header(bytes);
  ByteSpanBuffer buffer(bytes.substr(info.header_size));
  return detail::deserialize_payload(buffer, info, expected_type);
}

namespace detail {

std::unique_ptr<Model> deserialize_payload(ByteSpanBuffer& buffer, const ArchiveInfo& info, std::string_view expected_type) {
  if (!expected_type.empty() && info.type_name != expected_type) {
    throw Error(Errc::validation_failed,
                fmt::format("the archive holds a {} model, expected a {}", info.type_name, expected_type));
  }
  const boost::serialization::extended_type_info* eti =
      boost::serialization::extended_type_info::find(info.type_name.c_str());
  const auto* loader = eti == nullptr ? nullptr
                                      : static_cast<const boost::archive::detail::basic_pointer_iserializer*>(
                                            boost::archive::detail::archive_serializer_map<ModelInputArchive>::find(*eti));
  if (loader == nullptr) {
    throw Error(Errc::validation_failed,
                fmt::format("model type '{}' is not registered in this program (built in: {}; a custom type must be "
                            "linked in and exported under that name)", info.type_name, known_types()));
  }

  detail::LoadingRoot watch;  // Model's constructor records the model being loaded here
  void* storage = nullptr;
  try {
    ModelInputArchive archive(buffer, info.boost_library_version);
    storage = loader->heap_allocation();  // raw memory: load_object_ptr constructs, then loads
    loader->load_object_ptr(archive, storage, loader->get_basic_serializer().version());
  } catch (...) {
    // Boost leaves a half-loaded object to the caller. Destroy it if it was constructed (its Model
    // base registered itself), else free the raw memory.
    if (watch.root != nullptr) {
      delete watch.root;
    } else if (storage != nullptr) {
      ::operator delete(storage);
    }
    try {
      throw;
    } catch (const Error&) {
      throw;
    } catch (const boost::archive::archive_exception& e) {
      throw from_archive_exception(e, info.type_name);
    } catch (const std::bad_alloc&) {
      throw Error(Errc::corruption, fmt::format("model archive: the {} payload asks for more memory than exists", info.type_name));
    } catch (const std::exception& e) {
      throw Error(Errc::corruption, fmt::format("model archive: the {} payload does not decode ({})", info.type_name, e.what()));
    }
  }
  if (watch.root == nullptr) {  // an exported class, but not a Model
    loader->get_basic_serializer().destroy(storage);
    throw Error(Errc::validation_failed, fmt::format("model archive: '{}' is not a modelreg::Model", info.type_name));
  }
  std::unique_ptr<Model> model(watch.root);
  watch.root = nullptr;
  if (buffer.remaining() != 0) {
    throw Error(Errc::corruption, fmt::format("model archive: {} bytes after the {} model", buffer.remaining(), info.type_name));
  }
  if (model->type_name() != info.type_name) {
    throw Error(Errc::corruption, fmt::format("model archive: the header says {} but the class is a {}",
                                              info.type_name, model->type_name()));
  }
  if (model->n_features() == 0) {
    throw Error(Errc::corruption, fmt::format("model archive: the {} model has no features", info.type_name));
  }
  return model;
}

}  // namespace detail

}  // namespace modelreg
