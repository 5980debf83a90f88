// Errors as values: an Error carries a message with context and, when it came from a system
// call, the errno. Result<T> is a T or an Error; Status is Result<void>.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace crosvm::base {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message, int errnum = 0)
      : message_(std::move(message)), errno_(errnum) {}

  // An error from a failed system call: "what: strerror(errno)".
  static Error FromErrno(std::string what, int errnum = errno) {
    return Error(std::move(what), errnum);
  }

  int errnum() const { return errno_; }
  const std::string& message() const { return message_; }
  // The message, with ": <strerror>" when the error carries an errno.
  std::string ToString() const;

  // Adds outer context: Error("open x").Wrap("loading kernel") -> "loading kernel: open x".
  Error Wrap(const std::string& context) const& { return Error(context + ": " + message_, errno_); }

 private:
  std::string message_;
  int errno_ = 0;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() {
  return Status();
}

}  // namespace crosvm::base

// Evaluates a Status-returning expression and returns its error from the enclosing function.
#define CROSVM_RETURN_IF_ERROR(expr) \
  do {                               \
    auto _crosvm_status = (expr);    \
    if (!_crosvm_status.ok()) {      \
      return _crosvm_status.error(); \
    }                                \
  } while (0)

#define CROSVM_CONCAT_INNER(a, b) a##b
#define CROSVM_CONCAT(a, b) CROSVM_CONCAT_INNER(a, b)

// CROSVM_ASSIGN_OR_RETURN(auto x, MakeX()); declares x from the value or returns the error.
#define CROSVM_ASSIGN_OR_RETURN(decl, expr) \
  CROSVM_ASSIGN_OR_RETURN_IMPL(CROSVM_CONCAT(_crosvm_result_, __LINE__), decl, expr)
#define CROSVM_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.error();                  \
  decl = std::move(tmp).value()
