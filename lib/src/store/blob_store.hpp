// The blob store: a model's bytes as independent chunks in blob_chunks, each one zstd frame (or
// raw at level 0) with an XXH3-64 of its stored bytes, and one row in blobs naming the SHA-256 of
// the raw bytes. See docs/format.md.
//
// Writing streams: one thread reads and hashes, worker threads compress, chunks are inserted in
// order; memory stays at a few chunks whatever the blob's size. Reading verifies each chunk before
// it is handed on, and the SHA-256 of the whole at the end.
//
// Not thread-safe: a BlobStore uses the caller's connection, under the caller's lock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "modelreg/metadata.hpp"
#include "store/byte_source.hpp"
#include "modelreg/progress.hpp"

namespace modelreg::detail {

struct BlobWriteSettings {
  int level = 3;
  std::uint64_t chunk_size = 4u << 20;
  unsigned threads = 1;
  std::string created_at;
  std::string actor;  // recorded if the write repairs a stored blob
};

struct StoredBlob {
  std::int64_t id = 0;
  BlobInfo info;
  bool deduplicated = false;  // identical bytes were already stored (and verified); nothing new was written
  bool repaired = false;      // identical bytes were stored but failed verification; they were replaced
  std::string repair_reason;  // what verification of the stored copy found
};

// Receives verified raw bytes in order.
using ByteSink = std::function<void(const char* data, std::size_t size)>;

// Pulls a blob's raw bytes in pieces of the caller's size, verifying as BlobStore::read does:
// each chunk's XXH3 before any of its bytes are handed out (then streaming zstd, so memory is one
// stored chunk plus zstd's window, whatever the piece size), and at the end — the read() that
// returns 0 — the chunk count, the total size and the SHA-256. Throws Error(corruption) on any
// mismatch, Error(io_error) when SQLite cannot read a chunk. Uses the caller's connection, inside
// the caller's read transaction and lock, for its whole life.
class BlobReader {
 public:
  BlobReader(SQLite::Database& db, std::int64_t blob_id, std::string owner);
  ~BlobReader();
  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;

  // Up to `size` verified raw bytes (fewer only at a chunk's end); 0 at the verified end.
  std::size_t read(char* out, std::size_t size);
  const BlobInfo& info() const noexcept;
  std::uint64_t done() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Writes the rows of one new blob: its chunks as stored, in order, then the blobs row that seals
// them (triggers refuse chunk changes once it exists). The one place that inserts into blob_chunks
// and blobs; the caller holds the write transaction and has checked what it writes.
class ChunkWriter {
 public:
  ChunkWriter(SQLite::Database& db, std::int64_t blob_id);
  // One chunk: its raw size, the XXH3 of its stored bytes, and the stored bytes (not copied).
  void add(std::int64_t seq, std::int64_t raw_size, std::int64_t checksum, const char* data, std::size_t size);
  void seal(const BlobInfo& info, const std::string& created_at);

 private:
  SQLite::Database& db_;
  std::int64_t blob_id_;
  SQLite::Statement insert_;
};

class BlobStore {
 public:
  explicit BlobStore(SQLite::Database& db) : db_(db) {}

  // Stores the source's bytes. Must run inside a write transaction; on any failure the partial
  // chunks are rolled back to a savepoint. Identical bytes (same SHA-256) are stored once: the
  // stored copy is verified first, and replaced by the new bytes (repair) if it fails.
  StoredBlob write(ByteSource& source, const BlobWriteSettings& settings, const ProgressFn& progress);

  // Reads blob `blob_id` through and returns what is wrong with it, or nothing if it verifies.
  // Throws only for failures of this registry (io_error), not for rotten bytes.
  std::optional<std::string> damage(std::int64_t blob_id);

  // Replaces the chunks of the committed blob `id` with the unsealed chunks staged under
  // `staged_id` (written by a ChunkWriter that was not sealed, and verified by the caller against
  // the blob's SHA-256), recording the repair in blob_repairs. `verified` describes the staged
  // bytes; its sha256 must be the blob's. Must run inside a write transaction.
  void repair(std::int64_t id, std::int64_t staged_id, const BlobInfo& verified, const std::string& reason,
              const std::string& at, const std::string& actor);

  BlobInfo info(std::int64_t blob_id);

  // Copies blob `source_id` of the database `from` into this store as blob `id`: its chunks as
  // stored (never recompressed), then the blob row that seals them, stamped `created_at`. Must run
  // inside a write transaction of this store's database; `on_chunk` receives each chunk's stored
  // size. Returns the copied blob's info.
  BlobInfo copy_from(SQLite::Database& from, std::int64_t source_id, std::int64_t id, const std::string& created_at,
                     const std::function<void(std::uint64_t stored_bytes)>& on_chunk = {});

  // Streams the raw bytes of a blob to `sink`, verifying each chunk before the sink sees it and
  // the SHA-256 at the end. `owner` names the version in error messages ("fraud@7").
  // Throws Error(corruption) on any mismatch.
  void read(std::int64_t blob_id, std::string_view owner, const ByteSink& sink,
            const ProgressFn& progress);

 private:
  SQLite::Database& db_;
};

}  // namespace modelreg::detail
