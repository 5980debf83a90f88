#include "loader/cmdline.h"

#include <algorithm>

namespace crosvm::loader {
namespace {

bool Printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

base::Status KernelCmdline::Append(const std::string& text) {
  if (!Printable(text)) {
    return base::Error("kernel command line: \"" + text +
                       "\" has a non-printable character (only ASCII 0x20-0x7e is allowed)");
  }
  size_t needed = line_.size() + (line_.empty() ? 0 : 1) + text.size() + 1;
  if (needed > capacity_) {
    return base::Error("kernel command line is too long: " + std::to_string(needed) +
                       " bytes with the terminating NUL, the kernel takes at most " +
                       std::to_string(capacity_));
  }
  if (!line_.empty()) line_ += ' ';
  line_ += text;
  return base::Ok();
}

base::Status KernelCmdline::Insert(const std::string& key, const std::string& value) {
  if (key.empty() || key.find_first_of(" =\"") != std::string::npos) {
    return base::Error("kernel command line: bad parameter name \"" + key + "\"");
  }
  size_t quotes = std::count(value.begin(), value.end(), '"');
  bool quoted = value.size() >= 2 && value.front() == '"' && value.back() == '"' && quotes == 2;
  if (quotes != 0 && !quoted) {
    return base::Error("kernel command line: value of " + key +
                       " must be wholly quoted (\"...\") or have no quotes");
  }
  if (value.find(' ') != std::string::npos && !quoted) {
    return base::Error("kernel command line: value of " + key + " has a space and no quotes");
  }
  return Append(key + "=" + value);
}

base::Status KernelCmdline::InsertStr(const std::string& fragment) {
  // Leading/trailing blanks add nothing; an all-blank fragment is ignored.
  size_t b = fragment.find_first_not_of(' ');
  if (b == std::string::npos) return base::Ok();
  size_t e = fragment.find_last_not_of(' ');
  std::string trimmed = fragment.substr(b, e - b + 1);
  size_t quotes = 0;
  for (char c : trimmed) quotes += c == '"';
  if (quotes % 2)
    return base::Error("kernel command line: unbalanced quote in \"" + trimmed + "\"");
  return Append(trimmed);
}

}  // namespace crosvm::loader
