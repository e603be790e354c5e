// Files the registry writes for the user (`get -o`, bundles): written under a temporary name of
// their own beside the target and moved into place only complete, so that two commands writing
// one path never share a temporary file and the target is always absent, the old file, or a
// complete new one.
#pragma once

#include <filesystem>

namespace modelreg::detail {

// A new, empty file beside `target` (same directory, random suffix), created with O_EXCL: no
// other writer can be using it. Error(io_error) naming `target` and the reason (e.g. its
// directory does not exist).
std::filesystem::path new_partial_file(const std::filesystem::path& target);

// Moves the finished `partial` to `target` in one step. With `replace`, an existing `target` is
// replaced (rename(2)); without, it never is: when `target` exists by now (another command
// created it while this one wrote), Error(already_exists) saying so, and `partial` is left for
// the caller to remove. Error(io_error) for any other failure.
void publish_file(const std::filesystem::path& partial, const std::filesystem::path& target, bool replace);

}  // namespace modelreg::detail
