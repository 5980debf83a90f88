#include "sandbox/seccomp_filter.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "sandbox/seccomp_lowering.h"

namespace crosvm::sandbox {

using base::Error;
using base::Result;
using base::Status;

namespace {

// libseccomp returns -errno.
Error SeccompError(const std::string& what, int rc) {
  return Error::FromErrno(what, -rc);
}

scmp_compare CompareOp(LoweredCheck::Op op) {
  switch (op) {
    case LoweredCheck::Op::kEq:
      return SCMP_CMP_EQ;
    case LoweredCheck::Op::kNe:
      return SCMP_CMP_NE;
    case LoweredCheck::Op::kLt:
      return SCMP_CMP_LT;
    case LoweredCheck::Op::kLe:
      return SCMP_CMP_LE;
    case LoweredCheck::Op::kGt:
      return SCMP_CMP_GT;
    case LoweredCheck::Op::kGe:
      return SCMP_CMP_GE;
    case LoweredCheck::Op::kMaskedEq:
      return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

scmp_arg_cmp ToLibseccomp(const LoweredCheck& c) {
  scmp_arg_cmp cmp{};
  cmp.arg = static_cast<unsigned>(c.arg);
  cmp.op = CompareOp(c.op);
  if (c.op == LoweredCheck::Op::kMaskedEq) {
    cmp.datum_a = c.mask;
    cmp.datum_b = c.value;
  } else {
    cmp.datum_a = c.value;
  }
  return cmp;
}

Status AddRule(scmp_filter_ctx ctx, const PolicyRule& rule) {
  auto fail = [&](int rc) {
    return SeccompError(rule.location + ": libseccomp rejected the rule for " + rule.syscall, rc);
  };
  int rc = 0;
  switch (rule.action) {
    case PolicyRule::Action::kAllow:
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, rule.syscall_nr, 0);
      break;
    case PolicyRule::Action::kErrno:
      rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(rule.errno_value), rule.syscall_nr, 0);
      break;
    case PolicyRule::Action::kAllowIf: {
      auto lowered = LowerCondition(rule.condition);
      if (!lowered.ok()) return lowered.error().Wrap(rule.location);
      for (const std::vector<LoweredCheck>& alternative : *lowered) {
        std::vector<scmp_arg_cmp> cmps;
        for (const LoweredCheck& c : alternative) cmps.push_back(ToLibseccomp(c));
        rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, rule.syscall_nr,
                                    static_cast<unsigned>(cmps.size()), cmps.data());
        if (rc < 0) return fail(rc);
      }
      break;
    }
  }
  if (rc < 0) return fail(rc);
  return base::Ok();
}

uint32_t LibseccompAction(DefaultAction action) {
  switch (action) {
    case DefaultAction::kTrap:
      return SCMP_ACT_TRAP;
    case DefaultAction::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
    case DefaultAction::kLog:
      return SCMP_ACT_LOG;
  }
  return SCMP_ACT_KILL_PROCESS;
}

}  // namespace

int BpfProgram::InstallAsyncSignalSafe() const {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(instructions_.size());
  prog.filter = const_cast<sock_filter*>(instructions_.data());
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc < 0) return errno;
  // A positive result is the id of a thread that could not be synchronised.
  if (rc > 0) return ESRCH;
  return 0;
}

Status BpfProgram::Install() const {
  if (instructions_.empty() || instructions_.size() > BPF_MAXINSNS) {
    return Error("seccomp program has " + std::to_string(instructions_.size()) +
                 " instructions (1.." + std::to_string(BPF_MAXINSNS) + ")");
  }
  int err = InstallAsyncSignalSafe();
  if (err == ESRCH) return Error("installing seccomp program: a thread could not be synchronised");
  if (err != 0) return Error::FromErrno("installing seccomp program", err);
  return base::Ok();
}

CompiledFilter::CompiledFilter(CompiledFilter&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

CompiledFilter& CompiledFilter::operator=(CompiledFilter&& other) noexcept {
  if (this != &other) {
    if (ctx_) seccomp_release(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

CompiledFilter::~CompiledFilter() {
  if (ctx_) seccomp_release(ctx_);
}

Status CompiledFilter::Load() const {
  int rc = seccomp_load(ctx_);
  if (rc < 0) return SeccompError("loading seccomp filter", rc);
  return base::Ok();
}

Result<base::ScopedFd> CompiledFilter::ExportBpfFd() const {
  base::ScopedFd fd(memfd_create("crosvm-seccomp-bpf", MFD_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("memfd_create for seccomp BPF");
  int rc = seccomp_export_bpf(ctx_, fd.get());
  if (rc < 0) return SeccompError("exporting seccomp BPF", rc);
  if (lseek(fd.get(), 0, SEEK_SET) < 0) return Error::FromErrno("lseek seccomp BPF memfd");
  return fd;
}

Result<BpfProgram> CompiledFilter::ExportBpf() const {
  CROSVM_ASSIGN_OR_RETURN(base::ScopedFd fd, ExportBpfFd());
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error::FromErrno("fstat seccomp BPF memfd");
  if (st.st_size <= 0 || st.st_size % sizeof(sock_filter) != 0) {
    return Error("seccomp BPF export has a bad size " + std::to_string(st.st_size));
  }
  std::vector<sock_filter> insns(st.st_size / sizeof(sock_filter));
  size_t done = 0;
  auto* bytes = reinterpret_cast<char*>(insns.data());
  while (done < static_cast<size_t>(st.st_size)) {
    ssize_t n = pread(fd.get(), bytes + done, st.st_size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::FromErrno("reading seccomp BPF memfd", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  return BpfProgram(std::move(insns));
}

Result<CompiledFilter> Compile(const SeccompPolicy& policy, DefaultAction default_action) {
  scmp_filter_ctx raw = seccomp_init(LibseccompAction(default_action));
  if (!raw) return Error("seccomp_init failed");
  CompiledFilter filter(raw);
  struct Attr {
    scmp_filter_attr attr;
    uint32_t value;
    const char* name;
  };
  const Attr attrs[] = {
      {SCMP_FLTATR_CTL_NNP, 1, "no_new_privs"},
      {SCMP_FLTATR_CTL_TSYNC, 1, "thread sync"},
      // A syscall made through another architecture's entry (int 0x80) must not slip past
      // rules written for x86_64 numbers.
      {SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "bad-arch action"},
  };
  for (const Attr& a : attrs) {
    int rc = seccomp_attr_set(raw, a.attr, a.value);
    if (rc < 0) return SeccompError(std::string("setting seccomp attribute ") + a.name, rc);
  }
  for (const PolicyRule& rule : policy.rules()) CROSVM_RETURN_IF_ERROR(AddRule(raw, rule));
  return filter;
}

}  // namespace crosvm::sandbox
