// modelreg/model_serialization.hpp — for authors of their own Model types: what it takes to save
// and load a custom model through serialize_model / deserialize_model.
//
// This is the one public header that includes Boost (Boost.Serialization, Debian's
// libboost-serialization-dev). Include it only in the .cpp that defines your model's serialization;
// every other header of modelreg is Boost-free. Link your program with Boost.Serialization.
//
// **Example**
//
//   // my_model.cpp
//   #include <modelreg/model_serialization.hpp>   // first: the archives must precede the export
//
//   class Threshold final : public modelreg::Model {
//    public:
//     std::string type_name() const override { return "threshold"; }
//     std::size_t n_features() const override { return n_; }
//     std::map<std::string, std::string> hyperparameters() const override { return {}; }
//     template <class Archive> void serialize(Archive& ar, unsigned version) {
//       modelreg::check_class_version<Threshold>(version, "threshold");
//       ar & boost::serialization::base_object<modelreg::Model>(*this);
//       ar & n_ & cut_;
//     }
//    protected:
//     void compute(modelreg::MatrixView x, std::span<double> out) const override {...}
//    private:
//     std::uint64_t n_ = 0;
//     double cut_ = 0;
//   };
//   BOOST_CLASS_VERSION(Threshold, 1)
//   BOOST_CLASS_EXPORT_GUID(Threshold, "threshold")   // the key must equal type_name()
//
// Rules: give the type a public default constructor (or Boost's load_construct_data); check the
// class version first (Boost 1.74 does not refuse versions newer than BOOST_CLASS_VERSION); export it
// in exactly one translation unit of the program, under its type_name(); use fixed-width integer
// types (std::uint64_t, not std::size_t or long) so archives do not depend on the platform; use
// modelreg::serialize_vector (below) for arrays — it is compact and bounds-checked on load. The
// archive loads through ModelInputArchive, which checks every string and collection length
// against the bytes left, so Boost's own containers are safe to use as well.
//
// Thread-safety: as Boost.Serialization: archives are not shared between threads; registration
// (the export macros) happens during static initialization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include <boost/archive/binary_iarchive_impl.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/serialization/array_optimization.hpp>
#include <boost/serialization/array_wrapper.hpp>
#include <boost/serialization/assume_abstract.hpp>
#include <boost/serialization/base_object.hpp>
#include <boost/serialization/collection_size_type.hpp>
#include <boost/serialization/split_member.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/tracking.hpp>
#include <boost/serialization/version.hpp>

#include "modelreg/export.hpp"
#include "modelreg/model.hpp"
#include "modelreg/tree.hpp"

BOOST_SERIALIZATION_ASSUME_ABSTRACT(modelreg::Model)
BOOST_CLASS_VERSION(modelreg::Model, 1)
// A tree is always a member (never shared through pointers): no object tracking.
BOOST_CLASS_VERSION(modelreg::Tree, 1)
BOOST_CLASS_TRACKING(modelreg::Tree, boost::serialization::track_never)

namespace modelreg {

// A read-only stream buffer that knows how many bytes are left: over bytes the caller keeps alive,
// or over `total` bytes pulled from a source through a small window (so that a large archive is
// deserialized without ever being in memory whole).
class MODELREG_API ByteSpanBuffer : public std::streambuf {
 public:
  // Fills `buffer` with up to `size` bytes; returns how many (0 only when there are no more).
  using Source = std::function<std::size_t(char* buffer, std::size_t size)>;

  explicit ByteSpanBuffer(std::string_view bytes);
  ByteSpanBuffer(Source source, std::uint64_t total, std::size_t window = 64u << 10);
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(total_ - consumed()); }
  std::size_t consumed() const noexcept { return static_cast<std::size_t>(base_ + static_cast<std::uint64_t>(gptr() - eback())); }

 protected:
  int_type underflow() override;

 private:
  Source source_;
  std::vector<char> window_;
  std::uint64_t total_ = 0;
  std::uint64_t base_ = 0;  // bytes consumed before the current window
};

// Archives are written with Boost's binary_oarchive (flags no_header | no_codecvt; the modelreg
// header replaces Boost's) ...
using ModelOutputArchive = boost::archive::binary_oarchive;

// ... and read with this: Boost's binary input archive, except that every length it reads — a
// string's, a collection's — must fit in the bytes that are left, and a bool must be 0 or 1.
// Violations throw Error(corruption) instead of allocating or asserting.
class MODELREG_API ModelInputArchive
    : public boost::archive::binary_iarchive_impl<ModelInputArchive, char, std::char_traits<char>> {
  using Impl = boost::archive::binary_iarchive_impl<ModelInputArchive, char, std::char_traits<char>>;
  using Primitive = boost::archive::basic_binary_iprimitive<ModelInputArchive, char, std::char_traits<char>>;
  using Binary = boost::archive::basic_binary_iarchive<ModelInputArchive>;
  friend class boost::archive::detail::interface_iarchive<ModelInputArchive>;
  friend class boost::archive::basic_binary_iarchive<ModelInputArchive>;
  friend class boost::archive::basic_binary_iprimitive<ModelInputArchive, char, std::char_traits<char>>;
  friend class boost::archive::load_access;

 public:
  // Reads what Boost archive library version `library_version` wrote into `buffer`.
  ModelInputArchive(ByteSpanBuffer& buffer, unsigned library_version);

  std::size_t bytes_left() const noexcept { return buffer_->remaining(); }

 protected:
  using Primitive::load;
  void load(std::string& s);
  void load(bool& b);
  template <class T>
  void load_override(T& t) {
    Impl::load_override(t);
  }
  void load_override(boost::serialization::collection_size_type& t);

 private:
  const ByteSpanBuffer* buffer_;
};

// Error(incompatible): "the <type> archive holds class version N; this program reads up to M".
[[noreturn]] MODELREG_API void throw_version_error(std::string_view type_name, unsigned version, unsigned supported);

// Error(corruption): "archive claims N elements of S bytes, only L bytes are left".
[[noreturn]] MODELREG_API void throw_length_error(std::size_t count, std::size_t element_size, std::size_t left);

// Writes or reads a vector of arithmetic values (or of bitwise-serializable structs) as a count
// and the raw elements. On load the count is checked against the bytes left before anything is
// allocated.
template <class Archive, class T>
void serialize_vector(Archive& archive, std::vector<T>& values) {
  static_assert(boost::serialization::is_bitwise_serializable<T>::value);
  if constexpr (Archive::is_saving::value) {
    boost::serialization::collection_size_type count(values.size());
    archive << count;
    if (!values.empty()) archive << boost::serialization::make_array(values.data(), values.size());
  } else {
    boost::serialization::collection_size_type count;
    archive >> count;  // ModelInputArchive: count <= bytes left
    if (static_cast<std::size_t>(count) > archive.bytes_left() / sizeof(T)) {
      throw_length_error(static_cast<std::size_t>(count), sizeof(T), archive.bytes_left());
    }
    values.resize(count);
    if (!values.empty()) archive >> boost::serialization::make_array(values.data(), values.size());
  }
}

// Call first in serialize(): throws Error(incompatible) when the archive holds a newer version of
// class T than this program knows (BOOST_CLASS_VERSION). Boost 1.74 no longer checks this itself.
template <class T>
void check_class_version(unsigned version, std::string_view type_name) {
  if (version > boost::serialization::version<T>::value) throw_version_error(type_name, version, boost::serialization::version<T>::value);
}

// Error(corruption) unless `labels` is a valid ClassLabels (distinct, non-empty strings): what
// ClassLabels::serialize checks after loading.
MODELREG_API void check_loaded_labels(const ClassLabels& labels);

template <class Archive>
void ClassLabels::serialize(Archive& archive, unsigned /*version*/) {
  archive & are_integers_;
  serialize_vector(archive, integers_);
  if constexpr (Archive::is_saving::value) {
    boost::serialization::collection_size_type count(strings_.size());
    archive << count;
    for (auto& s : strings_) archive << s;
  } else {
    boost::serialization::collection_size_type count;
    archive >> count;
    // Each string is at least its length field.
    if (static_cast<std::size_t>(count) > archive.bytes_left() / sizeof(std::uint64_t)) {
      throw_length_error(static_cast<std::size_t>(count), sizeof(std::uint64_t), archive.bytes_left());
    }
    strings_.assign(count, std::string());
    for (auto& s : strings_) archive >> s;
    check_loaded_labels(*this);
  }
}

template <class Archive>
void Model::serialize(Archive& /*archive*/, unsigned version) {
  check_class_version<Model>(version, "modelreg::Model");
}

}  // namespace modelreg

BOOST_SERIALIZATION_REGISTER_ARCHIVE(modelreg::ModelInputArchive)
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(modelreg::ModelInputArchive)

// Last, so that the export macros in the including file see every archive above.
#include <boost/serialization/export.hpp>
