#include "devices/proxy/proxy_device.h"

#include <cstring>

#include "base/logging.h"

namespace crosvm::devices::proxy {
namespace {

// A request for a BAR (or none); the other fields are set by the caller.
Request MakeRequest(RequestType type, int bar = 0, uint64_t addr = 0) {
  Request r;
  r.type = type;
  r.bar = static_cast<uint8_t>(bar);
  r.addr = addr;
  return r;
}

// The BAR accesses the server accepts (anything else is answered here, as no device).
bool ValidBarAccess(int bar, uint64_t offset, size_t size) {
  return bar >= 0 && bar < static_cast<int>(pci::kNumBars) && size > 0 && size <= kMaxBarAccess &&
         offset <= UINT64_MAX - size;
}

}  // namespace

base::Result<std::shared_ptr<ProxyDevice>> ProxyDevice::Create(std::string name, Channel channel,
                                                               pci::VmControl* vm,
                                                               pci::MsiRouter* router,
                                                               FailureCallback on_failure) {
  std::shared_ptr<ProxyDevice> d(
      new ProxyDevice(std::move(name), std::move(channel), vm, router, std::move(on_failure)));
  std::string why;
  std::optional<Reply> r;
  {
    std::lock_guard lock(d->mu_);
    r = d->CallLocked(MakeRequest(RequestType::kBars), &why);
  }
  if (!r) return base::Error(d->name_ + ": the device process does not answer: " + why);
  if (!r->state) return base::Error(d->name_ + ": the device process sent no state");
  return d;
}

ProxyDevice::ProxyDevice(std::string name, Channel channel, pci::VmControl* vm,
                         pci::MsiRouter* router, FailureCallback on_failure)
    : name_(std::move(name)),
      on_failure_(std::move(on_failure)),
      channel_(std::move(channel)),
      applier_(vm, router) {}

ProxyDevice::~ProxyDevice() = default;

std::optional<Reply> ProxyDevice::CallLocked(Request req, std::string* why) {
  if (failed_.load() || shut_down_.load()) {
    *why = shut_down_.load() ? "the device was shut down" : "the device process failed";
    return std::nullopt;
  }
  auto fail = [&](std::string reason) -> std::optional<Reply> {
    *why = name_ + ": " + reason;
    failed_.store(true);
    channel_.Shutdown();  // nothing more goes either way
    return std::nullopt;
  };
  req.seq = next_seq_++;
  const RequestType type = req.type;
  const char* type_name = RequestTypeName(type);
  auto bytes = EncodeRequest(req);
  requests_sent_.fetch_add(1);
  if (auto s = channel_.Send(bytes); !s.ok()) {
    return fail(std::string("cannot send ") + type_name +
                " to the device process: " + s.error().ToString());
  }
  for (;;) {
    auto m = channel_.Recv();
    if (!m.ok()) return fail("no reply to " + std::string(type_name) + ": " + m.error().ToString());
    if (!m->has_value()) {
      return fail(std::string("the device process closed its channel (exited?) during ") +
                  type_name);
    }
    auto reply = DecodeReply((*m)->bytes, std::move((*m)->fds));
    if (!reply.ok()) {
      return fail(std::string("bad reply to ") + type_name + ": " + reply.error().ToString());
    }
    if (reply->seq != req.seq || reply->type != type) {
      return fail("reply " + std::to_string(reply->seq) + " (" + RequestTypeName(reply->type) +
                  ") to request " + std::to_string(req.seq) + " (" + type_name + ")");
    }
    for (Effect& e : reply->effects) {
      EffectType et = e.type;
      auto s = applier_.Apply(std::move(e));
      if (!s.ok()) {
        // The device already believes it happened; this is what it would have logged.
        CROSVM_LOG_RATE_LIMITED(log_, WARNING)
            << name_ << ": " << EffectTypeName(et)
            << " for the device process failed: " << s.error().ToString();
      }
    }
    reply->effects.clear();
    if (reply->flags & kReplyMore) continue;
    if (reply->flags & kReplyRejected) {
      return fail(std::string("the device process rejected ") + type_name + ": " + reply->error);
    }
    if (reply->state) {
      std::lock_guard lock(cache_mu_);
      cache_ = *reply->state;
    }
    return std::move(reply).value();
  }
}

std::optional<Reply> ProxyDevice::Call(Request req) {
  std::string why;
  std::optional<Reply> r;
  bool was_failed = failed_.load();
  {
    std::lock_guard lock(mu_);
    r = CallLocked(std::move(req), &why);
  }
  if (!r && !was_failed && failed_.load()) ReportFailure(why);
  return r;
}

void ProxyDevice::ReportFailure(const std::string& why) {
  if (failure_reported_.exchange(true)) return;
  CROSVM_LOG(ERROR) << why;
  if (on_failure_) on_failure_(why);
}

void ProxyDevice::LogDropped(const char* what) {
  if (shut_down_.load()) return;
  CROSVM_LOG_RATE_LIMITED(log_, ERROR) << name_ << ": the device process is gone; " << what;
}

uint32_t ProxyDevice::ReadConfigRegister(size_t reg) {
  // What the server would refuse is answered here: a refusal fails the whole device.
  if (reg >= kConfigRegisters) return 0xffffffff;
  Request req = MakeRequest(RequestType::kReadConfigRegister);
  req.reg = static_cast<uint32_t>(reg);
  auto r = Call(std::move(req));
  if (!r) {
    LogDropped("configuration read returns all-ones");
    return 0xffffffff;
  }
  return static_cast<uint32_t>(r->value);
}

void ProxyDevice::WriteConfigRegister(size_t reg, size_t offset, std::span<const uint8_t> data) {
  if (reg >= kConfigRegisters || offset >= 4 || data.empty() || data.size() > 4 - offset) {
    return;  // not a config access
  }
  Request req = MakeRequest(RequestType::kWriteConfigRegister);
  req.reg = static_cast<uint32_t>(reg);
  req.offset = static_cast<uint8_t>(offset);
  req.data.assign(data.begin(), data.end());
  if (!Call(std::move(req))) LogDropped("configuration write dropped");
}

std::vector<pci::BarInfo> ProxyDevice::Bars() {
  std::lock_guard lock(cache_mu_);
  std::vector<pci::BarInfo> bars;
  for (const BarState& b : cache_.bars) bars.push_back(b.info);
  return bars;
}

uint64_t ProxyDevice::BarAddress(int bar) {
  std::lock_guard lock(cache_mu_);
  for (const BarState& b : cache_.bars) {
    if (b.info.index == bar) return b.address;
  }
  return 0;
}

uint16_t ProxyDevice::Command() {
  std::lock_guard lock(cache_mu_);
  return cache_.command;
}

base::Status ProxyDevice::SetBarAddress(int bar, uint64_t addr) {
  if (bar < 0 || bar >= static_cast<int>(pci::kNumBars)) {
    return base::Error(name_ + ": no BAR " + std::to_string(bar));
  }
  auto r = Call(MakeRequest(RequestType::kSetBarAddress, bar, addr));
  if (!r) return base::Error(name_ + ": the device process is gone");
  if (r->flags & kReplyStatusError) return base::Error(r->error);
  return base::Ok();
}

base::Result<std::vector<uint8_t>> ProxyDevice::DeviceControl(uint32_t op,
                                                              std::span<const uint8_t> payload) {
  // Refused here rather than by the server: a rejection would fail the whole device.
  if (payload.size() > kMaxControlPayload) {
    return base::Error(
        name_ + ": control payload of " + std::to_string(payload.size()) + " bytes is too long",
        EINVAL);
  }
  Request req = MakeRequest(RequestType::kDeviceControl);
  req.op = op;
  req.data.assign(payload.begin(), payload.end());
  auto r = Call(std::move(req));
  if (!r) return base::Error(name_ + ": the device process is gone", EIO);
  if (r->flags & kReplyStatusError) {
    // The errno is only a hint of the kind of failure; anything implausible becomes EIO.
    int err = r->value > 0 && r->value < 4096 ? static_cast<int>(r->value) : EIO;
    return base::Error(r->error, err);
  }
  return std::move(r->data);
}

base::Status ProxyDevice::AssignIntx(uint32_t gsi) {
  Request req = MakeRequest(RequestType::kAssignIntx);
  req.gsi = gsi;
  auto r = Call(std::move(req));
  if (!r) return base::Error(name_ + ": the device process is gone");
  if (r->flags & kReplyStatusError) return base::Error(r->error);
  return base::Ok();
}

void ProxyDevice::ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0xff, data.size());
  if (!ValidBarAccess(bar, offset, data.size())) return;
  Request req = MakeRequest(RequestType::kReadBar, bar, offset);
  req.len = static_cast<uint8_t>(data.size());
  auto r = Call(std::move(req));
  if (!r) {
    LogDropped("BAR read returns all-ones");
    return;
  }
  if (r->data.size() != data.size()) {
    // A reply of the wrong size is garbage like any other.
    bool first = !failed_.exchange(true);
    {
      std::lock_guard lock(mu_);
      channel_.Shutdown();
    }
    if (first) {
      ReportFailure(name_ + ": the device process answered a " + std::to_string(data.size()) +
                    "-byte BAR read with " + std::to_string(r->data.size()) + " bytes");
    }
    return;
  }
  std::memcpy(data.data(), r->data.data(), data.size());
}

void ProxyDevice::WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) {
  if (!ValidBarAccess(bar, offset, data.size())) return;
  Request req = MakeRequest(RequestType::kWriteBar, bar, offset);
  req.data.assign(data.begin(), data.end());
  if (!Call(std::move(req))) LogDropped("BAR write dropped");
}

void ProxyDevice::OnBarMapped(int bar, uint64_t addr) {
  if (bar < 0 || bar >= static_cast<int>(pci::kNumBars)) return;
  if (!Call(MakeRequest(RequestType::kOnBarMapped, bar, addr))) {
    LogDropped("BAR mapping not passed on");
  }
}

void ProxyDevice::OnBarUnmapped(int bar, uint64_t addr) {
  if (bar < 0 || bar >= static_cast<int>(pci::kNumBars)) return;
  if (!Call(MakeRequest(RequestType::kOnBarUnmapped, bar, addr))) {
    LogDropped("BAR unmapping not passed on");
  }
}

base::Status ProxyDevice::Shutdown() {
  std::string why;
  std::optional<Reply> r;
  {
    std::lock_guard lock(mu_);
    if (shut_down_.load()) return base::Ok();
    r = CallLocked(MakeRequest(RequestType::kShutdown), &why);
    shut_down_.store(true);
  }
  if (!r) return base::Error(why);
  return base::Ok();
}

}  // namespace crosvm::devices::proxy
