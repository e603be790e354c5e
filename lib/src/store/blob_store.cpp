#include "store/blob_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <sqlite3.h>
#include <xxhash.h>
#include <zstd.h>

#include <SQLiteCpp/Statement.h>

#include "store/database.hpp"
#include "store/sha256.hpp"

namespace modelreg::detail {
namespace {

std::int64_t chunk_checksum(const char* data, std::size_t size) {
  // Stored as SQLite INTEGER, which is signed 64-bit: keep the bits, not the value.
  XXH64_hash_t h = XXH3_64bits(data, size);
  std::int64_t out;
  std::memcpy(&out, &h, sizeof out);
  return out;
}

struct ZstdCCtxDeleter {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
};
struct BlobHandleCloser {
  void operator()(sqlite3_blob* b) const noexcept { sqlite3_blob_close(b); }
};

// A growable buffer that is never zero-filled: fresh pages are touched only when written.
struct Buffer {
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
  char* reserve(std::size_t size) {
    if (capacity < size) {
      data = std::make_unique_for_overwrite<char[]>(size);
      capacity = size;
    }
    return data.get();
  }
};

// One chunk on its way from the source to the database. `in` points into `in_buffer` or, for a
// source in memory, into the caller's bytes. `job` is declared last so that it is destroyed (and
// waited for) before the buffers it writes to.
struct Slot {
  Buffer in_buffer;
  Buffer out;
  const char* in = nullptr;
  std::size_t in_size = 0;
  std::size_t out_size = 0;
  std::int64_t checksum = 0;
  bool raw = false;
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxDeleter> cctx;
  std::future<void> job;
};

void compress_slot(Slot& s, int level) {
  if (level == 0) {
    s.raw = true;
    s.out_size = s.in_size;
    s.checksum = chunk_checksum(s.in, s.in_size);
    return;
  }
  std::size_t n = ZSTD_compressCCtx(s.cctx.get(), s.out.data.get(), s.out.capacity, s.in, s.in_size, level);
  if (ZSTD_isError(n)) {
    throw Error(Errc::io_error, fmt::format("zstd could not compress a chunk: {}", ZSTD_getErrorName(n)));
  }
  s.raw = false;
  s.out_size = n;
  s.checksum = chunk_checksum(s.out.data.get(), n);
}


}  // namespace

StoredBlob BlobStore::write(ByteSource& source, const BlobWriteSettings& settings,
                            const ProgressFn& progress) {
  const std::size_t chunk_size = settings.chunk_size;
  const int level = settings.level;
  const unsigned threads = std::max(1u, settings.threads);

  Savepoint savepoint(db_, "blob_write");
  // We hold the write lock, so the next id is ours. The blob row is written last: it seals the
  // chunks (triggers refuse chunk changes once it exists) and the FK from chunks is deferred.
  const std::int64_t blob_id = db_.execAndGet("SELECT coalesce(max(id), 0) + 1 FROM blobs").getInt64();

  ChunkWriter chunks(db_, blob_id);

  // threads + 1 slots: the workers compress while this thread reads, hashes and inserts.
  const std::size_t slot_count = threads + 1;
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<Slot*> free_slots;
  for (std::size_t i = 0; i < slot_count; ++i) {
    auto s = std::make_unique<Slot>();
    free_slots.push_back(s.get());
    slots.push_back(std::move(s));
  }
  std::deque<Slot*> in_flight;

  Sha256 sha;
  const std::optional<std::uint64_t> expected_total = source.size();
  // A blob that fits in one chunk is compressed on this thread: a worker would only add latency.
  const bool parallel = threads > 1 && (!expected_total || *expected_total > chunk_size);
  std::uint64_t raw_total = 0;     // read from the source
  std::uint64_t raw_written = 0;   // of which chunks are inserted
  std::uint64_t stored_total = 0;
  std::int64_t seq = 0;
  bool eof = false;

  while (true) {
    while (!eof && !free_slots.empty()) {
      Slot* s = free_slots.back();
      // Size buffers to what is left when the total is known: a small model never pays for a
      // whole chunk's worth of fresh pages.
      const std::size_t want =
          expected_total ? static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, *expected_total - raw_total))
                         : chunk_size;
      if (auto view = source.borrow(chunk_size)) {
        s->in = view->data();
        s->in_size = view->size();
      } else {
        char* buffer = s->in_buffer.reserve(std::max<std::size_t>(want, 1));
        s->in = buffer;
        s->in_size = source.read(buffer, want);
      }
      if (s->in_size < chunk_size) eof = true;
      if (s->in_size == 0) break;
      free_slots.pop_back();
      sha.update(s->in, s->in_size);
      raw_total += s->in_size;
      if (level > 0) {
        if (!s->cctx) s->cctx.reset(ZSTD_createCCtx());
        s->out.reserve(ZSTD_compressBound(s->in_size));
      }
      if (parallel) {
        s->job = std::async(std::launch::async, [s, level] { compress_slot(*s, level); });
      } else {
        compress_slot(*s, level);
      }
      in_flight.push_back(s);
    }
    if (in_flight.empty()) break;
    Slot* s = in_flight.front();
    in_flight.pop_front();
    if (s->job.valid()) s->job.get();
    const char* data = s->raw ? s->in : s->out.data.get();
    chunks.add(seq++, static_cast<std::int64_t>(s->in_size), s->checksum, data, s->out_size);
    stored_total += s->out_size;
    raw_written += s->in_size;
    free_slots.push_back(s);
    if (progress) progress(raw_written, expected_total);
  }

  StoredBlob result;
  result.info.sha256 = sha.hex_digest();
  result.info.raw_size = raw_total;
  result.info.stored_size = stored_total;
  result.info.codec = level == 0 ? "none" : "zstd";
  result.info.level = level;
  result.info.chunk_size = chunk_size;
  result.info.chunk_count = static_cast<std::uint64_t>(seq);

  std::optional<std::int64_t> existing;
  {
    SQLite::Statement q(db_, "SELECT id FROM blobs WHERE sha256 = ?");
    q.bind(1, result.info.sha256);
    if (q.executeStep()) existing = q.getColumn(0).getInt64();
  }
  if (existing) {
    // A stored checksum is a promise: the stored copy is reused only if it still keeps it.
    if (auto damaged = damage(*existing)) {
      repair(*existing, blob_id, result.info, *damaged, settings.created_at, settings.actor);
      savepoint.release();
      result.id = *existing;
      result.repaired = true;
      result.repair_reason = std::move(*damaged);
      return result;
    }
    savepoint.rollback();
    result.id = *existing;
    result.info = info(result.id);
    result.deduplicated = true;
    return result;
  }

  chunks.seal(result.info, settings.created_at);
  savepoint.release();
  result.id = blob_id;
  return result;
}

std::optional<std::string> BlobStore::damage(std::int64_t blob_id) {
  try {
    read(blob_id, "the stored copy", [](const char*, std::size_t) {}, {});
    return std::nullopt;
  } catch (const Error& e) {
    if (e.code() != Errc::corruption) throw;
    return std::string(e.what());
  }
}

void BlobStore::repair(std::int64_t id, std::int64_t staged_id, const BlobInfo& verified, const std::string& reason,
                       const std::string& at, const std::string& actor) {
  SQLite::Statement open(db_,
                         "INSERT INTO blob_repairs(blob_id, sha256, reason, repaired_at, repaired_by) "
                         "VALUES (?, ?, ?, ?, ?)");
  open.bind(1, id);
  open.bind(2, verified.sha256);
  open.bind(3, reason);
  open.bind(4, at);
  open.bind(5, actor);
  open.exec();
  const std::int64_t repair_id = db_.getLastInsertRowid();
  SQLite::Statement drop(db_, "DELETE FROM blob_chunks WHERE blob_id = ?");
  drop.bind(1, id);
  drop.exec();
  SQLite::Statement move(db_,
                         "INSERT INTO blob_chunks(blob_id, seq, raw_size, checksum, data) "
                         "SELECT ?1, seq, raw_size, checksum, data FROM blob_chunks WHERE blob_id = ?2 ORDER BY seq");
  move.bind(1, id);
  move.bind(2, staged_id);
  move.exec();
  SQLite::Statement unstage(db_, "DELETE FROM blob_chunks WHERE blob_id = ?");
  unstage.bind(1, staged_id);
  unstage.exec();
  SQLite::Statement row(db_,
                        "UPDATE blobs SET raw_size = ?, stored_size = ?, codec = ?, level = ?, chunk_size = ?, "
                        "chunk_count = ? WHERE id = ? AND sha256 = ?");
  row.bind(1, static_cast<std::int64_t>(verified.raw_size));
  row.bind(2, static_cast<std::int64_t>(verified.stored_size));
  row.bind(3, verified.codec);
  row.bind(4, verified.level);
  row.bind(5, static_cast<std::int64_t>(verified.chunk_size));
  row.bind(6, static_cast<std::int64_t>(verified.chunk_count));
  row.bind(7, id);
  row.bind(8, verified.sha256);
  if (row.exec() != 1) {
    throw Error(Errc::corruption, fmt::format("blob {} changed while it was being repaired", id));
  }
  SQLite::Statement close(db_, "UPDATE blob_repairs SET in_progress = 0 WHERE id = ?");
  close.bind(1, repair_id);
  close.exec();
}

ChunkWriter::ChunkWriter(SQLite::Database& db, std::int64_t blob_id)
    : db_(db),
      blob_id_(blob_id),
      insert_(db, "INSERT INTO blob_chunks(blob_id, seq, raw_size, checksum, data) VALUES (?, ?, ?, ?, ?)") {}

void ChunkWriter::add(std::int64_t seq, std::int64_t raw_size, std::int64_t checksum, const char* data,
                      std::size_t size) {
  insert_.bind(1, blob_id_);
  insert_.bind(2, seq);
  insert_.bind(3, raw_size);
  insert_.bind(4, checksum);
  insert_.bindNoCopy(5, data, static_cast<int>(size));
  insert_.exec();
  insert_.reset();
}

void ChunkWriter::seal(const BlobInfo& info, const std::string& created_at) {
  SQLite::Statement q(db_,
                      "INSERT INTO blobs(id, sha256, raw_size, stored_size, codec, level, chunk_size, chunk_count, "
                      "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  q.bind(1, blob_id_);
  q.bind(2, info.sha256);
  q.bind(3, static_cast<std::int64_t>(info.raw_size));
  q.bind(4, static_cast<std::int64_t>(info.stored_size));
  q.bind(5, info.codec);
  q.bind(6, info.level);
  q.bind(7, static_cast<std::int64_t>(info.chunk_size));
  q.bind(8, static_cast<std::int64_t>(info.chunk_count));
  q.bind(9, created_at);
  q.exec();
}

BlobInfo BlobStore::copy_from(SQLite::Database& from, std::int64_t source_id, std::int64_t id,
                             const std::string& created_at, const std::function<void(std::uint64_t)>& on_chunk) {
  const BlobInfo source = BlobStore(from).info(source_id);
  SQLite::Statement chunks(from, "SELECT seq, raw_size, checksum, data FROM blob_chunks WHERE blob_id = ? ORDER BY seq");
  chunks.bind(1, source_id);
  ChunkWriter out(db_, id);
  while (chunks.executeStep()) {
    const auto data = chunks.getColumn(3);
    out.add(chunks.getColumn(0).getInt64(), chunks.getColumn(1).getInt64(), chunks.getColumn(2).getInt64(),
            static_cast<const char*>(data.getBlob()), static_cast<std::size_t>(data.getBytes()));
    if (on_chunk) on_chunk(static_cast<std::uint64_t>(data.getBytes()));
  }
  out.seal(source, created_at);
  return source;
}

BlobInfo BlobStore::info(std::int64_t blob_id) {
  SQLite::Statement q(db_,
                      "SELECT sha256, raw_size, stored_size, codec, level, chunk_size, chunk_count "
                      "FROM blobs WHERE id = ?");
  q.bind(1, blob_id);
  if (!q.executeStep()) {
    throw Error(Errc::corruption, fmt::format("blob {} is missing from the blobs table", blob_id));
  }
  BlobInfo b;
  b.sha256 = q.getColumn(0).getString();
  b.raw_size = static_cast<std::uint64_t>(q.getColumn(1).getInt64());
  b.stored_size = static_cast<std::uint64_t>(q.getColumn(2).getInt64());
  b.codec = q.getColumn(3).getString();
  b.level = q.getColumn(4).getInt();
  b.chunk_size = static_cast<std::uint64_t>(q.getColumn(5).getInt64());
  b.chunk_count = static_cast<std::uint64_t>(q.getColumn(6).getInt64());
  return b;
}

// ---- reading ------------------------------------------------------------------------------------

struct BlobReader::State {
  SQLite::Database& db;
  std::string owner;
  BlobInfo blob;
  SQLite::Statement chunks;
  std::unique_ptr<sqlite3_blob, BlobHandleCloser> cursor;
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter> dctx;
  Buffer stored;                   // the current chunk as stored
  std::size_t stored_size = 0;
  std::size_t stored_pos = 0;      // codec none: bytes handed out; zstd: bytes consumed
  std::int64_t seq = -1;           // the current chunk; -1 before the first
  std::uint64_t chunk_raw = 0;     // its raw size
  std::uint64_t chunk_out = 0;     // raw bytes of it handed out so far
  bool in_chunk = false;
  bool frame_done = false;         // zstd: the current chunk's frame has ended
  bool finished = false;
  std::uint64_t expected_seq = 0;
  std::uint64_t done = 0;
  Sha256 sha;

  State(SQLite::Database& d, std::int64_t blob_id, std::string o)
      : db(d),
        owner(std::move(o)),
        blob(BlobStore(d).info(blob_id)),
        chunks(d, "SELECT rowid, seq, raw_size, checksum FROM blob_chunks WHERE blob_id = ? ORDER BY seq") {
    if (blob.codec != "zstd" && blob.codec != "none") throw corrupt(fmt::format("unknown codec '{}'", blob.codec));
    chunks.bind(1, blob_id);
    if (blob.codec == "zstd") {
      dctx.reset(ZSTD_createDCtx());
      if (!dctx) throw Error(Errc::io_error, "out of memory for a zstd decompression context");
      // A frame never needs a window larger than its chunk: refuse crafted frames that ask for more.
      int log = 10;
      while ((std::uint64_t{1} << log) < blob.chunk_size && log < 30) ++log;
      ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, log);
    }
  }

  Error corrupt(const std::string& what) const {
    return Error(Errc::corruption, fmt::format("{}: stored bytes are corrupt: {}; nothing was loaded — restore the "
                                               "database from a backup or register the model again",
                                               owner, what));
  }

  // Reads and verifies the next chunk's stored bytes; false when there are no more chunks.
  bool next_chunk() {
    if (!chunks.executeStep()) return false;
    const std::int64_t rowid = chunks.getColumn(0).getInt64();
    seq = chunks.getColumn(1).getInt64();
    const std::int64_t raw_size = chunks.getColumn(2).getInt64();
    const std::int64_t checksum = chunks.getColumn(3).getInt64();
    if (seq < 0 || static_cast<std::uint64_t>(seq) != expected_seq) {
      throw corrupt(fmt::format("chunk {} is missing (found chunk {} instead)", expected_seq, seq));
    }
    if (raw_size < 0 || static_cast<std::uint64_t>(raw_size) > blob.chunk_size) {
      throw corrupt(fmt::format("chunk {} claims {} raw bytes, above the chunk size {}", seq, raw_size, blob.chunk_size));
    }
    sqlite3* handle = db.getHandle();
    int rc = SQLITE_OK;
    if (!cursor) {
      // Incremental blob I/O reads the value straight into our reused buffer.
      sqlite3_blob* b = nullptr;
      rc = sqlite3_blob_open(handle, "main", "blob_chunks", "data", rowid, 0, &b);
      cursor.reset(b);
    } else {
      rc = sqlite3_blob_reopen(cursor.get(), rowid);
    }
    if (rc != SQLITE_OK) {
      throw Error(Errc::io_error, fmt::format("{}: cannot read chunk {}: {}", owner, seq, sqlite3_errmsg(handle)));
    }
    stored_size = static_cast<std::size_t>(sqlite3_blob_bytes(cursor.get()));
    stored.reserve(stored_size);
    rc = sqlite3_blob_read(cursor.get(), stored.data.get(), static_cast<int>(stored_size), 0);
    if (rc != SQLITE_OK) {
      throw Error(Errc::io_error, fmt::format("{}: cannot read chunk {}: {}", owner, seq, sqlite3_errstr(rc)));
    }
    if (chunk_checksum(stored.data.get(), stored_size) != checksum) {
      throw corrupt(fmt::format("chunk {} of {} fails its checksum", seq + 1, blob.chunk_count));
    }
    if (dctx) ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
    stored_pos = 0;
    frame_done = false;
    chunk_raw = static_cast<std::uint64_t>(raw_size);
    chunk_out = 0;
    in_chunk = true;
    return true;
  }

  void end_chunk() {
    if (chunk_out != chunk_raw) {
      throw corrupt(fmt::format("chunk {} holds {} bytes, expected {}", seq + 1, chunk_out, chunk_raw));
    }
    in_chunk = false;
    ++expected_seq;
  }

  void finish() {
    if (expected_seq != blob.chunk_count) {
      throw corrupt(fmt::format("{} of {} chunks are present", expected_seq, blob.chunk_count));
    }
    if (done != blob.raw_size) throw corrupt(fmt::format("{} bytes read, expected {}", done, blob.raw_size));
    const std::string digest = sha.hex_digest();
    if (digest != blob.sha256) throw corrupt(fmt::format("SHA-256 is {}, expected {}", digest, blob.sha256));
    finished = true;
    // The cursor and statement hold the read transaction's snapshot open: let go of them now.
    cursor.reset();
    chunks.reset();
  }

  // Up to `size` bytes of the current chunk; 0 when it has ended (and was checked).
  std::size_t from_chunk(char* out, std::size_t size) {
    std::size_t n = 0;
    if (!dctx) {
      n = std::min(size, stored_size - stored_pos);
      std::memcpy(out, stored.data.get() + stored_pos, n);
      stored_pos += n;
    } else {
      if (frame_done) {
        end_chunk();
        return 0;
      }
      ZSTD_outBuffer o{out, size, 0};
      ZSTD_inBuffer in{stored.data.get(), stored_size, stored_pos};
      // Until output appears or the frame ends (a frame may consume input without output).
      while (o.pos == 0) {
        const std::size_t hint = ZSTD_decompressStream(dctx.get(), &o, &in);
        if (ZSTD_isError(hint)) {
          throw corrupt(fmt::format("chunk {} does not decompress: {}", seq + 1, ZSTD_getErrorName(hint)));
        }
        if (hint == 0) {
          frame_done = true;
          break;
        }
        if (in.pos == in.size && o.pos < o.size) {
          throw corrupt(fmt::format("chunk {} ends in the middle of its zstd frame", seq + 1));
        }
      }
      stored_pos = in.pos;
      if (frame_done && in.pos != in.size) {
        throw corrupt(fmt::format("chunk {} has {} bytes after its zstd frame", seq + 1, in.size - in.pos));
      }
      n = o.pos;
      if (n == 0) {
        end_chunk();
        return 0;
      }
    }
    if (chunk_out + n > chunk_raw) {
      throw corrupt(fmt::format("chunk {} holds more than the {} bytes it declares", seq + 1, chunk_raw));
    }
    chunk_out += n;
    if (n == 0) end_chunk();
    return n;
  }
};

BlobReader::BlobReader(SQLite::Database& db, std::int64_t blob_id, std::string owner)
    : s_(std::make_unique<State>(db, blob_id, std::move(owner))) {}
BlobReader::~BlobReader() = default;
const BlobInfo& BlobReader::info() const noexcept { return s_->blob; }
std::uint64_t BlobReader::done() const noexcept { return s_->done; }

std::size_t BlobReader::read(char* out, std::size_t size) {
  State& s = *s_;
  if (s.finished || size == 0) return 0;
  while (true) {
    if (!s.in_chunk && !s.next_chunk()) {
      s.finish();
      return 0;
    }
    const std::size_t n = s.from_chunk(out, size);
    if (n > 0) {
      s.sha.update(out, n);
      s.done += n;
      return n;
    }
  }
}

void BlobStore::read(std::int64_t blob_id, std::string_view owner, const ByteSink& sink,
                     const ProgressFn& progress) {
  BlobReader reader(db_, blob_id, std::string(owner));
  const BlobInfo& blob = reader.info();
  if (progress) progress(0, blob.raw_size);  // lets the caller size its output before the first bytes
  // Pieces of up to one chunk: the sink sees as few, as large, calls as before.
  Buffer piece;
  const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::uint64_t>(blob.raw_size, 1),
                                                                            blob.chunk_size));
  piece.reserve(size);
  while (true) {
    std::size_t filled = 0;
    while (filled < size) {
      const std::size_t n = reader.read(piece.data.get() + filled, size - filled);
      if (n == 0) break;
      filled += n;
    }
    if (filled == 0) break;
    sink(piece.data.get(), filled);
    if (progress) progress(reader.done(), blob.raw_size);
  }
}

}  // namespace modelreg::detail
