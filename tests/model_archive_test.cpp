// serialize_model / deserialize_model: round trips of every built-in type, and every way an
// archive can be wrong — each gives the right error code and never a crash.
#include <cstring>
#include <random>

#include <boost/archive/basic_archive.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "models/archive_header.hpp"
#include "model_test_support.hpp"
#include "modelreg/decision_tree.hpp"
#include "modelreg/gradient_boosted_trees.hpp"
#include "modelreg/logistic_regression.hpp"
#include "modelreg/model_archive.hpp"
#include "modelreg/model_serialization.hpp"
#include "modelreg/random_forest.hpp"
#include "modelreg/training.hpp"

using namespace modelreg;
using test::code_of;
using test::contains;
using test::message_of;

namespace {

std::unique_ptr<Model> trained(const std::string& type) {
  const auto& split = test::rows_for(type);
  std::map<std::string, std::string> params{{"seed", "2"}};
  if (type == "random_forest") params["n_estimators"] = "12";
  if (type == "gradient_boosted_trees") params["n_estimators"] = "12";
  return train_model(type, split.train, params);
}

// The archive with its header rewritten by `edit` and the checksum made valid again: what a
// different (but honest) writer would have produced.
std::string rewrite_header(const std::string& archive, const std::function<void(detail::RawHeader&)>& edit) {
  const ArchiveInfo info = inspect_model_archive(archive);
  detail::RawHeader header = detail::native_header(info.type_name);
  edit(header);
  return detail::encode_archive(header, std::string_view(archive).substr(info.header_size));
}

// The archive with its payload replaced and the checksum made valid again.
std::string with_payload(const std::string& archive, std::string_view payload) {
  const ArchiveInfo info = inspect_model_archive(archive);
  return detail::encode_archive(detail::native_header(info.type_name), payload);
}

std::string payload_of(const std::string& archive) {
  return archive.substr(inspect_model_archive(archive).header_size);
}

// Offset in `payload` of the first 8-byte little-endian `count` followed by `count` int32 tree
// features (the first tree's feature array; -1 marks leaves).
std::size_t feature_array_offset(const std::string& payload, std::uint64_t count) {
  char needle[8];
  std::memcpy(needle, &count, 8);
  const std::size_t at = payload.find(std::string_view(needle, 8));
  REQUIRE(at != std::string::npos);
  return at;
}

}  // namespace

TEST_CASE("every built-in type survives a round trip with bit-identical predictions") {
  const auto fresh = test::fresh_rows();
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    const auto model = trained(type);
    const std::string bytes = serialize_model(*model);
    const auto loaded = deserialize_model(bytes, type);
    CHECK(loaded->type_name() == type);
    CHECK(loaded->n_features() == model->n_features());
    CHECK(loaded->hyperparameters() == model->hyperparameters());
    const auto expected = model->predict_outputs(fresh.x);
    const auto got = loaded->predict_outputs(fresh.x);
    REQUIRE(got.size() == expected.size());
    CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(double)) == 0);
    // Saving the loaded model gives the same bytes: nothing is lost or added on the way.
    CHECK(serialize_model(*loaded) == bytes);
  }
}

TEST_CASE("the loaded forest has the very same trees") {
  const auto model = trained("random_forest");
  const auto loaded = deserialize_model(serialize_model(*model));
  const auto& a = dynamic_cast<const RandomForest&>(*model);
  const auto& b = dynamic_cast<const RandomForest&>(*loaded);
  CHECK(a.trees() == b.trees());
  CHECK(b.params().threads == 0);  // not saved: a loaded forest uses every core
}

TEST_CASE("the header says what the archive holds") {
  const auto model = trained("decision_tree");
  const std::string bytes = serialize_model(*model);
  const ArchiveInfo info = inspect_model_archive(bytes);
  CHECK(info.header_version == 1);
  CHECK(info.kind == ArchiveKind::boost_binary);
  CHECK(info.byte_order == std::endian::native);
  CHECK(info.boost_library_version == static_cast<unsigned>(boost::archive::BOOST_ARCHIVE_VERSION()));
  CHECK(info.type_name == "decision_tree");
  CHECK(info.header_size == 38 + std::string("decision_tree").size());
  CHECK(info.header_size + info.payload_size == bytes.size());
  CHECK(bytes.substr(0, 8) == std::string("\x89MRG\r\n\x1a\n", 8));
  CHECK(current_archive_format().boost_library_version == info.boost_library_version);
}

TEST_CASE("an archive truncated at any length is corruption") {
  const std::string bytes = serialize_model(*trained("decision_tree"));
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    CAPTURE(size);
    CHECK(code_of([&] { (void)deserialize_model(std::string_view(bytes).substr(0, size)); }) == Errc::corruption);
  }
  CHECK(contains(message_of([&] { (void)deserialize_model(std::string_view(bytes).substr(0, bytes.size() - 1)); }),
                 fmt::format("truncated: {} of {} bytes", bytes.size() - 1, bytes.size())));
}

TEST_CASE("any flipped bit or byte is corruption") {
  for (const std::string type : {"decision_tree", "logistic_regression"}) {
    const std::string bytes = serialize_model(*trained(type));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (unsigned char mask : {0x01, 0x80, 0xff}) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        CAPTURE(type);
        CAPTURE(i);
        CHECK(code_of([&] { (void)deserialize_model(bad); }) == Errc::corruption);
      }
    }
  }
}

TEST_CASE("bytes that are not an archive are corruption") {
  for (std::string_view junk : {std::string_view(""), std::string_view("hello"), std::string_view("SQLite format 3\0", 16),
                                std::string_view("\x89MRG\r\n\x1a\n")}) {
    CHECK(code_of([&] { (void)deserialize_model(junk); }) == Errc::corruption);
  }
  CHECK(contains(message_of([] { (void)deserialize_model("not a model at all"); }), "not a modelreg model archive"));
}

TEST_CASE("a model of another type than expected is validation_failed, naming both") {
  const std::string bytes = serialize_model(*trained("decision_tree"));
  CHECK(code_of([&] { (void)deserialize_model(bytes, "random_forest"); }) == Errc::validation_failed);
  const std::string message = message_of([&] { (void)deserialize_model(bytes, "random_forest"); });
  CHECK(contains(message, "holds a decision_tree model, expected a random_forest"));
}

TEST_CASE("a type this program does not know is validation_failed") {
  const std::string bytes = serialize_model(*trained("decision_tree"));
  const std::string renamed = rewrite_header(bytes, [](detail::RawHeader& h) { h.type_name = "isolation_forest"; });
  CHECK(code_of([&] { (void)deserialize_model(renamed); }) == Errc::validation_failed);
  CHECK(contains(message_of([&] { (void)deserialize_model(renamed); }), "'isolation_forest' is not registered"));
  // Known, but not what the payload holds: the header lies.
  const std::string mislabeled = rewrite_header(bytes, [](detail::RawHeader& h) { h.type_name = "random_forest"; });
  CHECK(code_of([&] { (void)deserialize_model(mislabeled); }) == Errc::corruption);
}

TEST_CASE("archives from another byte order, word size, newer format or unknown kind are incompatible") {
  const std::string bytes = serialize_model(*trained("logistic_regression"));
  const std::function<void(detail::RawHeader&)> edits[] = {
      [](detail::RawHeader& h) { h.byte_order = h.byte_order == 1 ? 2 : 1; },
      [](detail::RawHeader& h) { h.header_version = 2; },
      [](detail::RawHeader& h) { h.boost_library_version = static_cast<std::uint16_t>(h.boost_library_version + 1); },
      [](detail::RawHeader& h) { h.size_t_size = 4; },
      [](detail::RawHeader& h) { h.long_size = 4; },
      [](detail::RawHeader& h) { h.kind = 2; },
  };
  for (const auto& edit : edits) {
    const std::string other = rewrite_header(bytes, edit);
    CHECK(code_of([&] { (void)deserialize_model(other); }) == Errc::incompatible);
    CHECK(code_of([&] { (void)inspect_model_archive(other); }) == Errc::incompatible);
  }
  const std::string big_endian = rewrite_header(bytes, [](detail::RawHeader& h) { h.byte_order = 2; });
  CHECK(contains(message_of([&] { (void)deserialize_model(big_endian); }), "big-endian machine"));
  const std::string future = rewrite_header(bytes, [](detail::RawHeader& h) { h.header_version = 9; });
  CHECK(contains(message_of([&] { (void)deserialize_model(future); }), "header version 9 is newer"));
}

TEST_CASE("a model class version newer than this program's is incompatible") {
  // The payload starts with the class's tracking level (1 byte) and version (uint32; 2 today).
  const std::string bytes = serialize_model(*trained("decision_tree"));
  std::string payload = payload_of(bytes);
  REQUIRE(payload.substr(1, 4) == std::string("\x02\0\0\0", 4));
  payload[1] = 3;
  const std::string newer = with_payload(bytes, payload);
  CHECK(code_of([&] { (void)deserialize_model(newer); }) == Errc::incompatible);
  CHECK(contains(message_of([&] { (void)deserialize_model(newer); }), "holds class version 3; this program reads up to version 2"));
}

TEST_CASE("an archive written by an older Boost archive library still loads") {
  // Boost's binary format for these types has not changed since library version 17 (Boost 1.68).
  const auto model = trained("random_forest");
  const std::string bytes = serialize_model(*model);
  const std::string older = rewrite_header(bytes, [](detail::RawHeader& h) { h.boost_library_version = 17; });
  const auto fresh = test::fresh_rows();
  CHECK(deserialize_model(older)->predict_proba(fresh.x) == model->predict_proba(fresh.x));
}

TEST_CASE("a crafted length cannot make loading allocate: it is corruption") {
  const auto model = trained("decision_tree");
  const auto& tree = dynamic_cast<const DecisionTree&>(*model).tree();
  const std::string bytes = serialize_model(*model);
  const std::string payload = payload_of(bytes);
  const std::size_t at = feature_array_offset(payload, tree.node_count());
  for (std::uint64_t huge : {std::uint64_t{1} << 62, std::uint64_t{1} << 40, std::uint64_t{payload.size()}, ~std::uint64_t{0}}) {
    std::string crafted = payload;
    std::memcpy(crafted.data() + at, &huge, 8);
    const std::string message = message_of([&] { (void)deserialize_model(with_payload(bytes, crafted)); });
    CHECK(code_of([&] { (void)deserialize_model(with_payload(bytes, crafted)); }) == Errc::corruption);
    CHECK(contains(message, "bytes are left"));
  }
}

TEST_CASE("a stored tree that is not a tree, or tests a missing feature, is corruption") {
  const auto model = trained("decision_tree");
  const auto& tree = dynamic_cast<const DecisionTree&>(*model).tree();
  const std::string bytes = serialize_model(*model);
  const std::string payload = payload_of(bytes);
  const std::size_t features = feature_array_offset(payload, tree.node_count()) + 8;
  const std::size_t last = features + 4 * (tree.node_count() - 1);  // the last node: a leaf

  std::string internal_leaf = payload;  // a leaf turned into an internal node lacks children
  std::int32_t feature = 0;
  std::memcpy(internal_leaf.data() + last, &feature, 4);
  CHECK(contains(message_of([&] { (void)deserialize_model(with_payload(bytes, internal_leaf)); }), "do not form a tree"));

  std::string early_leaf = payload;  // the root turned into a leaf leaves nodes after the tree
  feature = -1;
  std::memcpy(early_leaf.data() + features, &feature, 4);
  CHECK(code_of([&] { (void)deserialize_model(with_payload(bytes, early_leaf)); }) == Errc::corruption);

  std::string missing_feature = payload;  // the root tests feature 10 of 10
  feature = 10;
  std::memcpy(missing_feature.data() + features, &feature, 4);
  CHECK(contains(message_of([&] { (void)deserialize_model(with_payload(bytes, missing_feature)); }), "feature 10 of 10"));

  std::string negative = payload;
  feature = -7;
  std::memcpy(negative.data() + features, &feature, 4);
  CHECK(code_of([&] { (void)deserialize_model(with_payload(bytes, negative)); }) == Errc::corruption);
}

TEST_CASE("a classification tree whose leaf is not a probability is corruption; a boosted tree's log-odds leaf loads") {
  // Found by fuzz/archive_fuzz: a leaf of -4 loaded, and predict_proba answered -4.
  for (const std::string type : {"decision_tree", "random_forest", "gradient_boosted_trees"}) {
    CAPTURE(type);
    const auto model = trained(type);
    const Tree& tree = type == "decision_tree" ? dynamic_cast<const DecisionTree&>(*model).tree()
                       : type == "random_forest" ? dynamic_cast<const RandomForest&>(*model).trees().front()
                                                 : dynamic_cast<const GradientBoostedTrees&>(*model).trees().front();
    const std::string bytes = serialize_model(*model);
    const std::string payload = payload_of(bytes);
    // The first tree: its feature array, then its value array (8-byte count, then floats).
    const std::size_t values = feature_array_offset(payload, tree.node_count()) + 8 + 4 * tree.node_count() + 8;
    const std::size_t last = values + 4 * (tree.node_count() - 1);  // the last node: a leaf
    for (float leaf : {-4.0f, 1.5f}) {
      std::string crafted = payload;
      std::memcpy(crafted.data() + last, &leaf, 4);
      if (type == "gradient_boosted_trees") {
        CHECK_NOTHROW((void)deserialize_model(with_payload(bytes, crafted)));
      } else {
        const std::string message = message_of([&] { (void)deserialize_model(with_payload(bytes, crafted)); });
        CHECK(code_of([&] { (void)deserialize_model(with_payload(bytes, crafted)); }) == Errc::corruption);
        CHECK(contains(message, "not a probability in [0, 1]"));
      }
    }
  }
}

TEST_CASE("bytes after the model are corruption") {
  const std::string bytes = serialize_model(*trained("gradient_boosted_trees"));
  const std::string longer = with_payload(bytes, payload_of(bytes) + "extra");
  CHECK(contains(message_of([&] { (void)deserialize_model(longer); }), "5 bytes after"));
}

TEST_CASE("random payloads behind a valid header never crash: every one is a modelreg::Error") {
  // Checksums stop accidental damage; this is what a deliberately crafted archive meets.
  std::mt19937_64 rng(12345);
  const auto fresh = test::fresh_rows(20);
  for (const auto& type : built_in_model_types()) {
    const std::string bytes = serialize_model(*trained(type));
    const std::string payload = payload_of(bytes);
    for (int round = 0; round < 300; ++round) {
      std::string mutated = payload;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        const std::size_t i = rng() % mutated.size();
        switch (rng() % 4) {
          case 0: mutated[i] = static_cast<char>(rng()); break;
          case 1: mutated[i] = static_cast<char>(0xff); break;
          case 2: mutated.resize(i); break;
          default: mutated.insert(i, 1 + rng() % 9, static_cast<char>(rng())); break;
        }
        if (mutated.empty()) mutated = "x";
      }
      CAPTURE(type);
      CAPTURE(round);
      try {
        const auto loaded = deserialize_model(with_payload(bytes, mutated));
        // A mutation no check can notice (a changed threshold) still gives a usable model.
        if (loaded->n_features() == 10) CHECK(loaded->predict_outputs(fresh.x).size() == fresh.rows() * loaded->n_outputs());
      } catch (const Error& e) {
        CHECK((e.code() == Errc::corruption || e.code() == Errc::incompatible || e.code() == Errc::validation_failed));
      }
    }
  }
}

TEST_CASE("an untrained model cannot be saved") {
  CHECK(contains(message_of([] { (void)serialize_model(RandomForest()); }), "untrained random_forest"));
}

namespace {

// What the streamed path makes of `bytes`, pulled in pieces of `piece` bytes: the header pass,
// then the payload through a ByteSpanBuffer window of `window` bytes. "ok:<type>" or the error.
std::string streamed(const std::string& bytes, std::size_t piece, std::size_t window) {
  auto pull_from = [piece](std::string_view data) {
    auto pos = std::make_shared<std::size_t>(0);
    return [data, pos, piece](char* out, std::size_t size) {
      const std::size_t n = std::min({size, piece, data.size() - *pos});
      std::memcpy(out, data.data() + *pos, n);
      *pos += n;
      return n;
    };
  };
  try {
    const ArchiveInfo info = detail::decode_header_stream(pull_from(bytes));
    ByteSpanBuffer payload(pull_from(std::string_view(bytes).substr(info.header_size)), info.payload_size, window);
    return "ok:" + detail::deserialize_payload(payload, info, "")->type_name();
  } catch (const Error& e) {
    return fmt::format("error {}", static_cast<int>(e.code()));
  }
}

std::string whole(const std::string& bytes) {
  try {
    return "ok:" + deserialize_model(bytes)->type_name();
  } catch (const Error& e) {
    return fmt::format("error {}", static_cast<int>(e.code()));
  }
}

}  // namespace

TEST_CASE("streamed loading (header pass, then payload through a small window) agrees with loading in memory") {
  for (const auto& type : built_in_model_types()) {
    CAPTURE(type);
    const std::string bytes = serialize_model(*trained(type));
    for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, bytes.size()}) {
      for (std::size_t window : {std::size_t{1}, std::size_t{13}, std::size_t{65536}}) {
        CAPTURE(piece);
        CAPTURE(window);
        CHECK(streamed(bytes, piece, window) == "ok:" + type);
      }
    }
    // The same model, bit for bit.
    const auto fresh = test::fresh_rows(50);
    const ArchiveInfo info = detail::decode_header(bytes);
    ByteSpanBuffer payload(
        [&, pos = std::size_t{info.header_size}](char* out, std::size_t size) mutable {
          const std::size_t n = std::min(size, bytes.size() - pos);
          std::memcpy(out, bytes.data() + pos, n);
          pos += n;
          return n;
        },
        info.payload_size, 100);
    CHECK(detail::deserialize_payload(payload, info, type)->predict_outputs(fresh.x) ==
          deserialize_model(bytes)->predict_outputs(fresh.x));
  }
  // Truncations, flips and extensions: the same verdict either way.
  const std::string bytes = serialize_model(*trained("decision_tree"));
  std::mt19937_64 rng(7);
  for (int round = 0; round < 400; ++round) {
    std::string bad = bytes;
    switch (round % 3) {
      case 0: bad.resize(rng() % bytes.size()); break;
      case 1: bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255); break;
      default: bad += std::string(1 + rng() % 40, 'x'); break;
    }
    CAPTURE(round);
    const std::string expected = whole(bad);
    CHECK(expected != "ok:decision_tree");
    CHECK(streamed(bad, 1 + rng() % 64, 1 + rng() % 512) == expected);
  }
}
