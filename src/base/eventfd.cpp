#include "base/eventfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace crosvm::base {

Result<EventFd> EventFd::Create(unsigned flags) {
  int fd = eventfd(0, EFD_CLOEXEC | flags);
  if (fd < 0) return Error::FromErrno("eventfd");
  return EventFd(ScopedFd(fd));
}

Status EventFd::Write(uint64_t value) const {
  ssize_t n = ::write(fd_.get(), &value, sizeof(value));
  if (n != sizeof(value)) return Error::FromErrno("eventfd write");
  return Ok();
}

Result<uint64_t> EventFd::Read() const {
  uint64_t value = 0;
  ssize_t n = ::read(fd_.get(), &value, sizeof(value));
  if (n != sizeof(value)) return Error::FromErrno("eventfd read");
  return value;
}

}  // namespace crosvm::base
