// ModelInputArchive: Boost's binary input archive with every length checked (see
// model_serialization.hpp).
//
// Its out-of-line members are compiled here, once, as Boost compiles binary_iarchive into
// libboost_serialization, and exported for programs that add their own model types. This file must
// not use any other archive: including Boost's .ipp files where binary_oarchive is used would
// instantiate a second, private copy of that archive's serializer map.
#include <boost/archive/impl/archive_serializer_map.ipp>
#include <boost/archive/impl/basic_binary_iarchive.ipp>
#include <boost/archive/impl/basic_binary_iprimitive.ipp>
#include <fmt/format.h>

#include <algorithm>

#include "modelreg/error.hpp"
#include "modelreg/model_serialization.hpp"

namespace boost::archive {
template class detail::archive_serializer_map<modelreg::ModelInputArchive>;
template class basic_binary_iprimitive<modelreg::ModelInputArchive, char, std::char_traits<char>>;
template class basic_binary_iarchive<modelreg::ModelInputArchive>;
template class binary_iarchive_impl<modelreg::ModelInputArchive, char, std::char_traits<char>>;
}  // namespace boost::archive

namespace modelreg {

ByteSpanBuffer::ByteSpanBuffer(std::string_view bytes) : total_(bytes.size()) {
  // std::streambuf wants char*; the get area is only ever read.
  char* begin = const_cast<char*>(bytes.data());
  setg(begin, begin, begin + bytes.size());
}

ByteSpanBuffer::ByteSpanBuffer(Source source, std::uint64_t total, std::size_t window)
    : source_(std::move(source)), window_(std::max<std::size_t>(window, 1)), total_(total) {
  setg(window_.data(), window_.data(), window_.data());
}

ByteSpanBuffer::int_type ByteSpanBuffer::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  base_ += static_cast<std::uint64_t>(gptr() - eback());
  setg(window_.data(), window_.data(), window_.data());
  if (!source_ || base_ >= total_) return traits_type::eof();
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(window_.size(), total_ - base_));
  std::size_t got = 0;
  while (got < want) {
    const std::size_t n = source_(window_.data() + got, want - got);
    if (n == 0) break;
    got += n;
  }
  if (got == 0) return traits_type::eof();
  setg(window_.data(), window_.data(), window_.data() + got);
  return traits_type::to_int_type(*gptr());
}

ModelInputArchive::ModelInputArchive(ByteSpanBuffer& buffer, unsigned library_version)
    : Impl(buffer, boost::archive::no_header | boost::archive::no_codecvt), buffer_(&buffer) {
  set_library_version(boost::serialization::library_version_type(library_version));
}

void ModelInputArchive::load(std::string& s) {
  std::size_t length = 0;
  Primitive::load(length);
  if (length > bytes_left()) throw_length_error(length, 1, bytes_left());
  s.resize(length);
  if (length > 0) load_binary(s.data(), length);
}

void ModelInputArchive::load(bool& b) {
  unsigned char v = 0;
  load_binary(&v, 1);
  if (v > 1) throw Error(Errc::corruption, fmt::format("archive: a bool holds {}", v));
  b = v == 1;
}

void ModelInputArchive::load_override(boost::serialization::collection_size_type& t) {
  Binary::load_override(t);
  if (static_cast<std::size_t>(t) > bytes_left()) throw_length_error(t, 1, bytes_left());
}

void throw_version_error(std::string_view type_name, unsigned version, unsigned supported) {
  throw Error(Errc::incompatible, fmt::format("the {} archive holds class version {}; this program reads up to version {} "
                                              "(written by a newer program?)", type_name, version, supported));
}

void throw_length_error(std::size_t count, std::size_t element_size, std::size_t left) {
  throw Error(Errc::corruption, fmt::format("archive: {} elements of {} bytes claimed, only {} bytes are left",
                                            count, element_size, left));
}

}  // namespace modelreg
