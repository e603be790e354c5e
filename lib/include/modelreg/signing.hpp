// modelreg/signing.hpp — keys for signed versions.
//
// A registry opened with Options::signing_key signs every version it writes with an HMAC-SHA256
// over the version's blob checksum and its immutable metadata, and refuses to promote, roll back
// to or load a version that is unsigned or whose signature does not verify under that key — before
// any of its bytes are deserialized. Anyone who can write the database file can plant a row;
// nobody without the key can plant one that verifies. See README.md, "Signed versions", and
// docs/format.md, "Signatures", for the signed message.
//
// A key is a file holding at least 16 bytes of secret, readable only by its owner
// (create_signing_key writes 32 random bytes as 64 hex digits, mode 0600). Trailing whitespace (the newline an editor adds) is not part of it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "modelreg/export.hpp"

namespace modelreg {

// The key held in `file` (a symlink is followed). Error(not_found) if it does not exist,
// Error(io_error) if it cannot be opened or read, Error(invalid_argument) if it is not a regular
// file, holds fewer than 16 bytes or more than 64 KiB, or — as ssh refuses private keys — if its
// group or others have any permission on it (the message says: chmod 600 FILE).
MODELREG_API std::string read_signing_key(const std::filesystem::path& file);

// Writes a new random key to `file` (created with mode 0600; an existing file is never
// overwritten: Error(already_exists)). Returns the key.
MODELREG_API std::string create_signing_key(const std::filesystem::path& file);

// A short public name for a key: the first 16 hex digits of SHA-256("modelreg-key-id:" + key).
// Stored with each signature, so an error can say "signed with key X, yours is Y".
MODELREG_API std::string signing_key_id(std::string_view key);

}  // namespace modelreg
