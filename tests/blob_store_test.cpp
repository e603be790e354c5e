#include <sys/resource.h>

#include <sstream>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "store/sha256.hpp"
#include "test_support.hpp"

using namespace modelreg;
using test::ref;
using test::spec;

namespace {

Options small_chunks() {
  Options o;
  o.chunk_size = 64 << 10;
  return o;
}

std::int64_t count(const std::filesystem::path& db, const std::string& sql) {
  auto d = test::raw(db, false);
  return d.execAndGet(sql).getInt64();
}

void checkpoint(const std::filesystem::path& db) {
  auto d = test::raw(db);
  d.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

// Bytes of the pages in use (the file's size minus its free pages).
std::int64_t used_bytes(const std::filesystem::path& db) {
  auto d = test::raw(db, false);
  return (d.execAndGet("PRAGMA page_count").getInt64() - d.execAndGet("PRAGMA freelist_count").getInt64()) *
         d.execAndGet("PRAGMA page_size").getInt64();
}

}  // namespace

TEST_CASE("bytes round-trip at compression levels 0, 1, 3 and 19") {
  test::TempDir dir;
  Registry reg(dir / "r.db", small_chunks());
  for (int level : {0, 1, 3, 19}) {
    CAPTURE(level);
    // Different bytes per level: identical bytes would be deduplicated to the first level's blob.
    const std::string bytes = test::compressible_bytes(300'000, static_cast<unsigned>(level));
    auto s = spec(fmt::format("m{}", level));
    s.level = level;
    auto v = reg.register_bytes(s, bytes);
    CHECK(v.blob.raw_size == bytes.size());
    CHECK(v.blob.level == level);
    CHECK(v.blob.codec == (level == 0 ? "none" : "zstd"));
    CHECK(v.blob.chunk_count == 5);  // 300,000 bytes in 64 KiB chunks
    if (level == 0) {
      CHECK(v.blob.stored_size == bytes.size());
    } else {
      CHECK(v.blob.stored_size < bytes.size() / 2);
    }
    CHECK(reg.load_bytes(ModelRef::number(s.model, 1)) == bytes);
  }
}

TEST_CASE("a blob of many chunks streams in from a file and out to a stream and a file") {
  test::TempDir dir;
  Registry reg(dir / "r.db", small_chunks());
  const std::string bytes = test::random_bytes((64 << 10) * 9 + 123, 2);
  const auto in = dir / "model.bin";
  { std::ofstream(in, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size())); }

  std::uint64_t last_progress = 0;
  auto v = reg.register_file(spec("big"), in, [&](std::uint64_t done, std::optional<std::uint64_t> total) {
    CHECK(done > last_progress);
    CHECK(total == bytes.size());
    last_progress = done;
  });
  CHECK(last_progress == bytes.size());
  CHECK(v.blob.chunk_count == 10);

  std::ostringstream out;
  reg.load_to(ref("big@1"), out);
  CHECK(out.str() == bytes);

  const auto copy = dir / "copy.bin";
  reg.load_to_file(ref("big@1"), copy);
  std::ifstream f(copy, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(back == bytes);
  CHECK_FALSE(std::filesystem::exists(copy.string() + ".modelreg-partial"));

  std::istringstream stream_in(bytes);
  auto v2 = reg.register_stream(spec("big2"), stream_in);
  CHECK(v2.blob.sha256 == v.blob.sha256);
}

TEST_CASE("identical bytes are stored once") {
  test::TempDir dir;
  Registry reg(dir / "r.db", small_chunks());
  const std::string bytes = test::compressible_bytes(200'000, 3);
  auto a = reg.register_bytes(spec("a"), bytes);
  auto b = reg.register_bytes(spec("b"), bytes);
  auto c = reg.register_bytes(spec("a"), bytes);
  CHECK(a.blob.sha256 == b.blob.sha256);
  CHECK(c.id.number == 2);
  CHECK(count(dir / "r.db", "SELECT count(*) FROM blobs") == 1);
  CHECK(count(dir / "r.db", "SELECT count(*) FROM blob_chunks") == static_cast<std::int64_t>(a.blob.chunk_count));
  CHECK(reg.load_bytes(ref("b@1")) == bytes);
}

TEST_CASE("registering bytes whose stored copy rotted repairs it, healing every version that shares it") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db, small_chunks());
  const std::string bytes = test::compressible_bytes(300'000, 11);
  const std::string other = test::compressible_bytes(100'000, 12);
  auto a = reg.register_bytes(spec("a"), bytes);
  reg.register_bytes(spec("b"), bytes);
  reg.register_bytes(spec("c"), other);
  reg.promote(ref("a@1"));
  REQUIRE(a.blob.chunk_count >= 3);
  const std::string blob = fmt::format("(SELECT id FROM blobs WHERE sha256 = '{}')", a.blob.sha256);

  SUBCASE("a flipped byte, the new copy at another level") {
    test::flip_chunk_byte(db, fmt::format("SELECT rowid FROM blob_chunks WHERE blob_id = {} AND seq = 1", blob), 5);
    NewVersion s = spec("d");
    s.level = 0;  // stored differently: the blob's codec and sizes change, its id and checksum do not
    reg.register_bytes(s, bytes);
    CHECK(count(db, fmt::format("SELECT codec = 'none' FROM blobs WHERE id = {}", blob)) == 1);
  }
  SUBCASE("a missing chunk") {
    {
      auto d = test::raw(db);
      const std::string trigger = d.execAndGet("SELECT sql FROM sqlite_master WHERE name = 'blob_chunks_kept'").getString();
      d.exec("DROP TRIGGER blob_chunks_kept");
      d.exec(fmt::format("DELETE FROM blob_chunks WHERE blob_id = {} AND seq = 2", blob));
      d.exec(trigger);
    }
    reg.register_bytes(spec("d"), bytes);
  }
  // One blob, healed in place: every version that shares it loads the original bytes again.
  CHECK(count(db, "SELECT count(*) FROM blobs") == 2);
  for (const char* r : {"a@1", "b@1", "d@1"}) {
    CAPTURE(r);
    CHECK_NOTHROW(reg.verify(ref(r)));
    CHECK(reg.load_bytes(ref(r)) == bytes);
  }
  CHECK(reg.load_bytes(ref("c@1")) == other);
  CHECK(reg.check().ok());
  // The repair is on record: which blob, why, who, and the register event says so.
  CHECK(count(db, fmt::format("SELECT count(*) FROM blob_repairs WHERE blob_id = {} AND in_progress = 0 AND "
                              "reason LIKE '%corrupt%' AND sha256 = '{}'",
                              blob, a.blob.sha256)) == 1);
  CHECK(reg.history("d").back().details.find("repaired") != std::string::npos);
  // Registering the now sound bytes again deduplicates without another repair.
  reg.register_bytes(spec("e"), bytes);
  CHECK(count(db, "SELECT count(*) FROM blob_repairs") == 1);
}

TEST_CASE("a repair that fails part way changes nothing") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db, small_chunks());
  const std::string bytes = test::compressible_bytes(300'000, 13);
  auto a = reg.register_bytes(spec("a"), bytes);
  test::flip_chunk_byte(db, "SELECT rowid FROM blob_chunks WHERE seq = 0", 3);
  const std::string before = test::dump(db);
  // The version row is refused after the bytes are written and repaired: the whole registration,
  // repair included, rolls back.
  NewVersion s = spec("a");
  {
    auto d = test::raw(db);
    d.exec("CREATE TRIGGER refuse_versions BEFORE INSERT ON versions BEGIN SELECT RAISE(ABORT, 'refused'); END");
  }
  CHECK_THROWS_AS(reg.register_bytes(s, bytes), std::exception);
  test::raw(db).exec("DROP TRIGGER refuse_versions");
  CHECK(test::dump(db) == before);
  CHECK_THROWS_AS(reg.verify(ref("a@1")), Error);
}

TEST_CASE("an empty blob round-trips and has the SHA-256 of nothing") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  auto v = reg.register_bytes(spec("empty"), "");
  CHECK(v.blob.raw_size == 0);
  CHECK(v.blob.chunk_count == 0);
  CHECK(v.blob.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(reg.load_bytes(ref("empty@1")).empty());
  CHECK_NOTHROW(reg.verify(ref("empty@1")));
}

TEST_CASE("a flipped byte in any stored chunk is a corruption error naming the version") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db, small_chunks());
  const std::string good = test::compressible_bytes(200'000, 4);
  const std::string victim = test::compressible_bytes(300'000, 5);
  reg.register_bytes(spec("fraud"), good);
  auto v = reg.register_bytes(spec("fraud"), victim);
  auto raw = reg.register_bytes([] { auto s = spec("fraud"); s.level = 0; return s; }(), test::random_bytes(150'000, 6));
  REQUIRE(v.blob.chunk_count >= 4);

  for (const auto& target : {v, raw}) {
    for (std::int64_t seq = 0; seq < static_cast<std::int64_t>(target.blob.chunk_count); ++seq) {
      CAPTURE(seq);
      // Flip one bit of the chunk (at a different offset for each chunk), check, flip it back.
      const std::string chunk = fmt::format("SELECT rowid FROM blob_chunks WHERE blob_id = (SELECT id FROM blobs "
                                            "WHERE sha256 = '{}') AND seq = {}",
                                            target.blob.sha256, seq);
      const int length = static_cast<int>(test::raw(db, false)
                                              .execAndGet(fmt::format("SELECT length(data) FROM blob_chunks WHERE rowid = ({})", chunk))
                                              .getInt());
      const int offset = static_cast<int>((seq * 7919) % length);
      test::flip_chunk_byte(db, chunk, offset, 0x10);
      try {
        (void)reg.load_bytes(ModelRef::number("fraud", target.id.number));
        FAIL("corrupt chunk was loaded");
      } catch (const Error& e) {
        CHECK(e.code() == Errc::corruption);
        CHECK(std::string(e.what()).find(target.ref_string()) != std::string::npos);
      }
      std::ostringstream sink;
      CHECK_THROWS_AS(reg.load_to(ModelRef::number("fraud", target.id.number), sink), Error);
      // Nothing from the corrupt chunk reached the stream: only whole verified chunks before it.
      CHECK(sink.str().size() == static_cast<std::size_t>(seq) * (64 << 10));
      CHECK_THROWS_AS(reg.load_to_file(ModelRef::number("fraud", target.id.number), dir / "out.bin"), Error);
      CHECK_FALSE(std::filesystem::exists(dir / "out.bin"));
      CHECK(reg.load_bytes(ref("fraud@1")) == good);
      test::flip_chunk_byte(db, chunk, offset, 0x10);
      CHECK_NOTHROW(reg.verify(ModelRef::number("fraud", target.id.number)));
    }
  }
}

TEST_CASE("a missing or truncated chunk is a corruption error, never a crash") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db, small_chunks());
  const std::string bytes = test::compressible_bytes(200'000, 7);
  reg.register_bytes(spec("m"), bytes);
  {
    auto d = test::raw(db);
    d.exec("DROP TRIGGER blob_chunks_immutable");
    d.exec("UPDATE blob_chunks SET data = substr(data, 1, length(data) / 2) WHERE seq = 1");
  }
  CHECK_THROWS_WITH_AS(reg.verify(ref("m@1")), doctest::Contains("m@1"), Error);
  {
    auto d = test::raw(db);
    d.exec("DROP TRIGGER blob_chunks_kept");
    d.exec("DELETE FROM blob_chunks WHERE seq = 1");
  }
  try {
    reg.verify(ref("m@1"));
    FAIL("missing chunk not noticed");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::corruption);
    CHECK(std::string(e.what()).find("chunk 1 is missing") != std::string::npos);
  }
}

TEST_CASE("registering a 1 MB incompressible blob grows the file by less than 2% over the stored size") {
  test::TempDir dir;
  const auto db = dir / "r.db";
  Registry reg(db);
  reg.register_bytes(spec("warmup"), "tiny");  // creates the first model and event rows
  checkpoint(db);
  const auto before = std::filesystem::file_size(db);
  const auto used_before = used_bytes(db);
  auto s = spec("m");
  s.metrics = {{"f1", 0.9}, {"auc", 0.95}};
  s.params = {{"C", "1.0"}};
  s.features = {{"a"}, {"b"}, {"c"}};
  s.tags = {{"team", "risk"}};
  s.label = "v1";
  auto v = reg.register_bytes(s, test::random_bytes(1 << 20, 8));
  checkpoint(db);
  const auto after = std::filesystem::file_size(db);
  const double growth = static_cast<double>(after - before);
  const double used_growth = static_cast<double>(used_bytes(db) - used_before);
  MESSAGE("stored ", v.blob.stored_size, " bytes; file grew ", growth, " bytes, pages in use ", used_growth,
          " bytes (", 100.0 * (used_growth / static_cast<double>(v.blob.stored_size) - 1.0), "% overhead)");
  CHECK(v.blob.stored_size >= (1u << 20));  // incompressible: zstd stores it (nearly) raw
  CHECK(growth < 1.02 * static_cast<double>(v.blob.stored_size));
  CHECK(used_growth < 1.02 * static_cast<double>(v.blob.stored_size));
}

namespace {

// An input stream of `size` deterministic, moderately compressible bytes made on the fly, hashing
// what it hands out: a model far larger than what the test ever holds in memory.
class GeneratedBuf : public std::streambuf {
 public:
  explicit GeneratedBuf(std::uint64_t size) : left_(size), buffer_(1 << 16) {}
  std::string digest() { return sha_.hex_digest(); }

 protected:
  int_type underflow() override {
    if (left_ == 0) return traits_type::eof();
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, buffer_.size()));
    for (std::size_t i = 0; i < n; ++i) {
      state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
      buffer_[i] = static_cast<char>('a' + ((state_ >> 60) & 7));
    }
    sha_.update(buffer_.data(), n);
    left_ -= n;
    setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::uint64_t left_;
  std::uint64_t state_ = 42;
  std::vector<char> buffer_;
  detail::Sha256 sha_;
};

// An output stream that keeps nothing but a hash and a count.
class HashingBuf : public std::streambuf {
 public:
  std::string digest() { return sha_.hex_digest(); }
  std::uint64_t count = 0;

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    sha_.update(s, static_cast<std::size_t>(n));
    count += static_cast<std::uint64_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      char ch = static_cast<char>(c);
      xsputn(&ch, 1);
    }
    return c;
  }

 private:
  detail::Sha256 sha_;
};

long max_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMeasuresMemory = false;  // ASan's quarantine and shadow memory make RSS meaningless
#else
constexpr bool kMeasuresMemory = true;
#endif

}  // namespace

TEST_CASE("a 384 MB model streams in and out with memory bounded by a few chunks") {
  test::TempDir dir;
  Registry reg(dir / "r.db");
  constexpr std::uint64_t kSize = 384ull << 20;
  const long before = max_rss_kib();

  GeneratedBuf gen(kSize);
  std::istream in(&gen);
  NewVersion s = spec("huge");
  s.level = 1;
  auto v = reg.register_stream(s, in);
  CHECK(v.blob.raw_size == kSize);
  CHECK(v.blob.sha256 == gen.digest());
  CHECK(v.blob.chunk_count == kSize / (4 << 20));

  HashingBuf sink;
  std::ostream out(&sink);
  reg.load_to(ref("huge@1"), out);
  CHECK(sink.count == kSize);
  CHECK(sink.digest() == v.blob.sha256);

  const long grown_mib = (max_rss_kib() - before) / 1024;
  MESSAGE("peak RSS grew by ", grown_mib, " MiB for a ", kSize >> 20, " MiB model");
  if (kMeasuresMemory) CHECK(grown_mib < 96);
}
