#include "base/error.h"

#include <cstring>

namespace crosvm::base {

std::string Error::ToString() const {
  if (errno_ == 0) return message_;
  return message_ + ": " + std::strerror(errno_);
}

}  // namespace crosvm::base
