// The kernel command line: crosvm's own parameters, then the user's -p strings, checked to be
// printable and to fit the kernel's limit.
#pragma once

#include <string>

#include "base/error.h"

namespace crosvm::loader {

class KernelCmdline {
 public:
  explicit KernelCmdline(size_t capacity) : capacity_(capacity) {}

  // Appends `key=value` (key: no spaces, '=' or quotes; value: no spaces unless quoted).
  base::Status Insert(const std::string& key, const std::string& value);
  // Appends a raw fragment such as "ro quiet" or `foo="a b"`.
  base::Status InsertStr(const std::string& fragment);

  const std::string& str() const { return line_; }
  // Bytes needed in guest memory, the terminating NUL included.
  size_t size_with_nul() const { return line_.size() + 1; }

 private:
  base::Status Append(const std::string& text);
  size_t capacity_;
  std::string line_;
};

}  // namespace crosvm::loader
