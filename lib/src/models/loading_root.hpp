// Which Model a deserialize_model on this thread is constructing.
//
// Boost constructs the loaded object in memory it allocates and, if loading then fails, leaves it
// to the caller without saying whether it was constructed. Model's constructor fills in the
// innermost LoadingRoot of its thread (the first Model constructed, i.e. the loaded object's base),
// and its destructor clears it again, so deserialize_model can destroy exactly what exists.
#pragma once

namespace modelreg {
class Model;
}

namespace modelreg::detail {

struct LoadingRoot {
  LoadingRoot() noexcept;
  ~LoadingRoot();
  LoadingRoot(const LoadingRoot&) = delete;
  LoadingRoot& operator=(const LoadingRoot&) = delete;

  Model* root = nullptr;
  LoadingRoot* outer = nullptr;  // a load in progress further up this thread's stack
};

// The innermost load in progress on this thread, or null.
LoadingRoot*& current_loading_root() noexcept;

}  // namespace modelreg::detail
