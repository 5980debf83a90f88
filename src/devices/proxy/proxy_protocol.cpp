#include "devices/proxy/proxy_protocol.h"

#include <string>

namespace crosvm::devices::proxy {
namespace {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(v); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void I32(int32_t v) { Le(static_cast<uint32_t>(v), 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

// Reads fields front to back; the first field that does not fit is remembered and every
// later read fails, so a decoder can check once where it matters.
class Reader {
 public:
  Reader(std::span<const uint8_t> in, const char* what) : in_(in), what_(what) {}

  bool U8(uint8_t* v, const char* field) { return Le(v, 1, field); }
  bool U16(uint16_t* v, const char* field) { return Le(v, 2, field); }
  bool U32(uint32_t* v, const char* field) { return Le(v, 4, field); }
  bool I32(int32_t* v, const char* field) {
    uint32_t u = 0;
    if (!Le(&u, 4, field)) return false;
    *v = static_cast<int32_t>(u);
    return true;
  }
  bool U64(uint64_t* v, const char* field) { return Le(v, 8, field); }
  bool Bool(bool* v, const char* field) {
    uint8_t b = 0;
    if (!U8(&b, field)) return false;
    if (b > 1) return Fail(std::string(field) + " is " + std::to_string(b) + ", not 0 or 1");
    *v = b == 1;
    return true;
  }
  bool Bytes(std::vector<uint8_t>* v, size_t n, const char* field) {
    if (!ok()) return false;
    if (in_.size() - pos_ < n) return Truncated(field);
    v->assign(in_.begin() + static_cast<ptrdiff_t>(pos_),
              in_.begin() + static_cast<ptrdiff_t>(pos_ + n));
    pos_ += n;
    return true;
  }
  bool Fail(const std::string& why) {
    if (error_.empty()) error_ = std::string(what_) + ": " + why;
    return false;
  }
  bool ok() const { return error_.empty(); }
  // Ok when everything was read and nothing is left over.
  base::Status Finish() {
    if (ok() && pos_ != in_.size()) {
      Fail(std::to_string(in_.size() - pos_) + " trailing bytes");
    }
    if (!ok()) return base::Error(error_);
    return base::Ok();
  }

 private:
  template <typename T>
  bool Le(T* v, size_t n, const char* field) {
    if (!ok()) return false;
    if (in_.size() - pos_ < n) return Truncated(field);
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i) x |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
    pos_ += n;
    *v = static_cast<T>(x);
    return true;
  }
  bool Truncated(const char* field) { return Fail(std::string("truncated at ") + field); }

  std::span<const uint8_t> in_;
  const char* what_;
  size_t pos_ = 0;
  std::string error_;
};

bool KnownRequestType(uint8_t t) {
  return t >= static_cast<uint8_t>(RequestType::kReadConfigRegister) &&
         t <= static_cast<uint8_t>(RequestType::kDeviceControl);
}

bool KnownEffectType(uint8_t t) {
  return t >= static_cast<uint8_t>(EffectType::kRegisterIoeventfd) &&
         t <= static_cast<uint8_t>(EffectType::kRemoveRoute);
}

bool CheckBar(Reader& r, uint8_t bar) {
  if (bar >= pci::kNumBars) return r.Fail("BAR index " + std::to_string(bar));
  return true;
}

bool CheckAccess(Reader& r, uint64_t offset, uint8_t len) {
  if (len == 0 || len > kMaxBarAccess)
    return r.Fail("BAR access of " + std::to_string(len) + " bytes");
  if (offset > UINT64_MAX - len) return r.Fail("BAR access wraps around");
  return true;
}

}  // namespace

const char* RequestTypeName(RequestType type) {
  switch (type) {
    case RequestType::kReadConfigRegister:
      return "ReadConfigRegister";
    case RequestType::kWriteConfigRegister:
      return "WriteConfigRegister";
    case RequestType::kBars:
      return "Bars";
    case RequestType::kBarAddress:
      return "BarAddress";
    case RequestType::kCommand:
      return "Command";
    case RequestType::kSetBarAddress:
      return "SetBarAddress";
    case RequestType::kAssignIntx:
      return "AssignIntx";
    case RequestType::kReadBar:
      return "ReadBar";
    case RequestType::kWriteBar:
      return "WriteBar";
    case RequestType::kOnBarMapped:
      return "OnBarMapped";
    case RequestType::kOnBarUnmapped:
      return "OnBarUnmapped";
    case RequestType::kShutdown:
      return "Shutdown";
    case RequestType::kDeviceControl:
      return "DeviceControl";
  }
  return "unknown";
}

const char* EffectTypeName(EffectType type) {
  switch (type) {
    case EffectType::kRegisterIoeventfd:
      return "RegisterIoeventfd";
    case EffectType::kUnregisterIoeventfd:
      return "UnregisterIoeventfd";
    case EffectType::kRegisterIrqfd:
      return "RegisterIrqfd";
    case EffectType::kUnregisterIrqfd:
      return "UnregisterIrqfd";
    case EffectType::kSetMsiRoute:
      return "SetMsiRoute";
    case EffectType::kRemoveRoute:
      return "RemoveRoute";
  }
  return "unknown";
}

size_t Effect::fd_count() const {
  switch (type) {
    case EffectType::kRegisterIoeventfd:
    case EffectType::kUnregisterIoeventfd:
    case EffectType::kUnregisterIrqfd:
      return 1;
    case EffectType::kRegisterIrqfd:
      return resample_key >= 0 ? 2 : 1;
    case EffectType::kSetMsiRoute:
    case EffectType::kRemoveRoute:
      return 0;
  }
  return 0;
}

std::vector<uint8_t> EncodeRequest(const Request& r) {
  Writer w;
  w.U32(r.seq);
  w.U8(static_cast<uint8_t>(r.type));
  switch (r.type) {
    case RequestType::kReadConfigRegister:
      w.U32(r.reg);
      break;
    case RequestType::kWriteConfigRegister:
      w.U32(r.reg);
      w.U8(r.offset);
      w.U8(static_cast<uint8_t>(r.data.size()));
      w.Bytes(r.data);
      break;
    case RequestType::kBarAddress:
      w.U8(r.bar);
      break;
    case RequestType::kSetBarAddress:
    case RequestType::kOnBarMapped:
    case RequestType::kOnBarUnmapped:
      w.U8(r.bar);
      w.U64(r.addr);
      break;
    case RequestType::kAssignIntx:
      w.U32(r.gsi);
      break;
    case RequestType::kReadBar:
      w.U8(r.bar);
      w.U64(r.addr);
      w.U8(r.len);
      break;
    case RequestType::kWriteBar:
      w.U8(r.bar);
      w.U64(r.addr);
      w.U8(static_cast<uint8_t>(r.data.size()));
      w.Bytes(r.data);
      break;
    case RequestType::kDeviceControl:
      w.U32(r.op);
      w.U16(static_cast<uint16_t>(r.data.size()));
      w.Bytes(r.data);
      break;
    case RequestType::kBars:
    case RequestType::kCommand:
    case RequestType::kShutdown:
      break;
  }
  return w.Take();
}

base::Result<Request> DecodeRequest(std::span<const uint8_t> bytes) {
  Reader rd(bytes, "request");
  Request r;
  uint8_t type = 0;
  rd.U32(&r.seq, "seq");
  if (rd.U8(&type, "type") && !KnownRequestType(type)) {
    rd.Fail("unknown type " + std::to_string(type));
  }
  if (!rd.ok()) return rd.Finish().error();
  r.type = static_cast<RequestType>(type);
  switch (r.type) {
    case RequestType::kReadConfigRegister:
      if (rd.U32(&r.reg, "reg") && r.reg >= kConfigRegisters) {
        rd.Fail("config register " + std::to_string(r.reg));
      }
      break;
    case RequestType::kWriteConfigRegister: {
      uint8_t len = 0;
      if (rd.U32(&r.reg, "reg") && r.reg >= kConfigRegisters) {
        rd.Fail("config register " + std::to_string(r.reg));
      }
      rd.U8(&r.offset, "offset");
      if (rd.U8(&len, "len") && (len == 0 || r.offset >= 4 || len > 4 - r.offset)) {
        rd.Fail("config write of " + std::to_string(len) + " bytes at byte " +
                std::to_string(r.offset));
      }
      rd.Bytes(&r.data, len, "data");
      break;
    }
    case RequestType::kBarAddress:
      if (rd.U8(&r.bar, "bar")) CheckBar(rd, r.bar);
      break;
    case RequestType::kSetBarAddress:
    case RequestType::kOnBarMapped:
    case RequestType::kOnBarUnmapped:
      if (rd.U8(&r.bar, "bar")) CheckBar(rd, r.bar);
      rd.U64(&r.addr, "addr");
      break;
    case RequestType::kAssignIntx:
      rd.U32(&r.gsi, "gsi");
      break;
    case RequestType::kReadBar:
      if (rd.U8(&r.bar, "bar")) CheckBar(rd, r.bar);
      rd.U64(&r.addr, "offset");
      if (rd.U8(&r.len, "len")) CheckAccess(rd, r.addr, r.len);
      break;
    case RequestType::kWriteBar: {
      uint8_t len = 0;
      if (rd.U8(&r.bar, "bar")) CheckBar(rd, r.bar);
      rd.U64(&r.addr, "offset");
      if (rd.U8(&len, "len")) CheckAccess(rd, r.addr, len);
      rd.Bytes(&r.data, len, "data");
      break;
    }
    case RequestType::kDeviceControl: {
      uint16_t len = 0;
      rd.U32(&r.op, "op");
      if (rd.U16(&len, "payload length") && len > kMaxControlPayload) {
        rd.Fail("control payload of " + std::to_string(len) + " bytes");
      }
      rd.Bytes(&r.data, len, "payload");
      break;
    }
    case RequestType::kBars:
    case RequestType::kCommand:
    case RequestType::kShutdown:
      break;
  }
  auto s = rd.Finish();
  if (!s.ok()) return base::Error(s.error().message() + " (" + RequestTypeName(r.type) + ")");
  return r;
}

std::vector<uint8_t> EncodeReply(const Reply& r, std::vector<int>* fds) {
  Writer w;
  w.U32(r.seq);
  w.U8(static_cast<uint8_t>(r.type));
  w.U8(static_cast<uint8_t>(r.flags | (r.state ? kReplyHasState : 0)));
  w.U64(r.value);
  w.U16(static_cast<uint16_t>(r.error.size()));
  w.Bytes({reinterpret_cast<const uint8_t*>(r.error.data()), r.error.size()});
  if (r.type == RequestType::kDeviceControl) {
    w.U16(static_cast<uint16_t>(r.data.size()));
  } else {
    w.U8(static_cast<uint8_t>(r.data.size()));
  }
  w.Bytes(r.data);
  if (r.state) {
    w.U16(r.state->command);
    w.U8(static_cast<uint8_t>(r.state->bars.size()));
    for (const BarState& b : r.state->bars) {
      w.U8(static_cast<uint8_t>(b.info.index));
      w.U8(static_cast<uint8_t>(b.info.type));
      w.U8(b.info.prefetchable ? 1 : 0);
      w.U64(b.info.size);
      w.U64(b.address);
    }
  }
  w.U8(static_cast<uint8_t>(r.effects.size()));
  for (const Effect& e : r.effects) {
    w.U8(static_cast<uint8_t>(e.type));
    switch (e.type) {
      case EffectType::kRegisterIoeventfd:
      case EffectType::kUnregisterIoeventfd:
        w.I32(e.key);
        w.U64(e.addr);
        w.U32(e.len);
        w.U8(e.pio ? 1 : 0);
        w.U8(e.datamatch ? 1 : 0);
        w.U64(e.datamatch.value_or(0));
        break;
      case EffectType::kRegisterIrqfd:
        w.I32(e.key);
        w.U32(e.gsi);
        w.U8(e.resample_key >= 0 ? 1 : 0);
        w.I32(e.resample_key);
        break;
      case EffectType::kUnregisterIrqfd:
        w.I32(e.key);
        w.U32(e.gsi);
        break;
      case EffectType::kSetMsiRoute:
        w.U32(e.gsi);
        w.U64(e.addr);
        w.U32(e.data);
        break;
      case EffectType::kRemoveRoute:
        w.U32(e.gsi);
        break;
    }
    if (e.fd_count() >= 1) fds->push_back(e.fd.get());
    if (e.fd_count() == 2) fds->push_back(e.resample_fd ? e.resample_fd->get() : -1);
  }
  return w.Take();
}

base::Result<Reply> DecodeReply(std::span<const uint8_t> bytes, std::vector<base::ScopedFd> fds) {
  Reader rd(bytes, "reply");
  Reply r;
  uint8_t type = 0;
  uint8_t flags = 0;
  rd.U32(&r.seq, "seq");
  if (rd.U8(&type, "type") && !KnownRequestType(type)) {
    rd.Fail("unknown request type " + std::to_string(type));
  }
  r.type = static_cast<RequestType>(type);
  if (rd.U8(&flags, "flags") && (flags & ~kReplyKnownFlags)) {
    rd.Fail("unknown flags " + std::to_string(flags));
  }
  r.flags = flags & static_cast<uint8_t>(~kReplyHasState);
  rd.U64(&r.value, "value");
  uint16_t error_len = 0;
  if (rd.U16(&error_len, "error length") && error_len > kMaxErrorLength) {
    rd.Fail("error of " + std::to_string(error_len) + " bytes");
  }
  std::vector<uint8_t> error;
  rd.Bytes(&error, error_len, "error");
  r.error.assign(error.begin(), error.end());
  const bool failed = flags & (kReplyStatusError | kReplyRejected);
  if (rd.ok() && failed != !r.error.empty()) {
    rd.Fail(failed ? "error flag without a message" : "error message without the flag");
  }
  if (r.type == RequestType::kDeviceControl) {
    uint16_t data_len = 0;
    if (rd.U16(&data_len, "data length") && data_len > kMaxControlPayload) {
      rd.Fail("control reply of " + std::to_string(data_len) + " bytes");
    }
    rd.Bytes(&r.data, data_len, "data");
  } else {
    uint8_t data_len = 0;
    if (rd.U8(&data_len, "data length") && data_len > kMaxBarAccess) {
      rd.Fail("data of " + std::to_string(data_len) + " bytes");
    }
    rd.Bytes(&r.data, data_len, "data");
  }
  if (rd.ok() && (flags & kReplyHasState)) {
    DeviceState st;
    uint8_t count = 0;
    rd.U16(&st.command, "command");
    if (rd.U8(&count, "BAR count") && count > pci::kNumBars) {
      rd.Fail(std::to_string(count) + " BARs");
    }
    for (uint8_t i = 0; i < count && rd.ok(); ++i) {
      BarState b;
      uint8_t index = 0, bar_type = 0;
      if (rd.U8(&index, "BAR index")) CheckBar(rd, index);
      if (rd.U8(&bar_type, "BAR type") && bar_type > static_cast<uint8_t>(pci::BarType::kMem64)) {
        rd.Fail("BAR type " + std::to_string(bar_type));
      }
      rd.Bool(&b.info.prefetchable, "prefetchable");
      rd.U64(&b.info.size, "BAR size");
      rd.U64(&b.address, "BAR address");
      b.info.index = index;
      b.info.type = static_cast<pci::BarType>(bar_type);
      st.bars.push_back(b);
    }
    r.state = std::move(st);
  }
  uint8_t count = 0;
  if (rd.U8(&count, "effect count") && count > kMaxEffectsPerMessage) {
    rd.Fail(std::to_string(count) + " effects in one message");
  }
  size_t fds_needed = 0;
  for (uint8_t i = 0; i < count && rd.ok(); ++i) {
    Effect e;
    uint8_t et = 0;
    if (rd.U8(&et, "effect type") && !KnownEffectType(et)) {
      rd.Fail("unknown effect type " + std::to_string(et));
      break;
    }
    e.type = static_cast<EffectType>(et);
    switch (e.type) {
      case EffectType::kRegisterIoeventfd:
      case EffectType::kUnregisterIoeventfd: {
        bool has_match = false;
        uint64_t match = 0;
        rd.I32(&e.key, "fd key");
        rd.U64(&e.addr, "ioeventfd address");
        if (rd.U32(&e.len, "ioeventfd length") && e.len != 0 && e.len != 1 && e.len != 2 &&
            e.len != 4 && e.len != 8) {
          rd.Fail("ioeventfd length " + std::to_string(e.len));
        }
        rd.Bool(&e.pio, "pio");
        rd.Bool(&has_match, "has datamatch");
        rd.U64(&match, "datamatch");
        if (has_match) e.datamatch = match;
        break;
      }
      case EffectType::kRegisterIrqfd: {
        bool has_resample = false;
        rd.I32(&e.key, "fd key");
        rd.U32(&e.gsi, "gsi");
        rd.Bool(&has_resample, "has resample");
        if (rd.I32(&e.resample_key, "resample key") && has_resample != (e.resample_key >= 0)) {
          rd.Fail("resample key " + std::to_string(e.resample_key) + " does not match its flag");
        }
        break;
      }
      case EffectType::kUnregisterIrqfd:
        rd.I32(&e.key, "fd key");
        rd.U32(&e.gsi, "gsi");
        break;
      case EffectType::kSetMsiRoute:
        rd.U32(&e.gsi, "gsi");
        rd.U64(&e.addr, "MSI address");
        rd.U32(&e.data, "MSI data");
        break;
      case EffectType::kRemoveRoute:
        rd.U32(&e.gsi, "gsi");
        break;
    }
    if (rd.ok() && e.fd_count() > 0 && e.key < 0) rd.Fail("negative fd key");
    fds_needed += e.fd_count();
    r.effects.push_back(std::move(e));
  }
  if (rd.ok() && (flags & kReplyMore) &&
      (failed || r.value != 0 || !r.data.empty() || r.state.has_value())) {
    rd.Fail("a partial reply carries a result");
  }
  CROSVM_RETURN_IF_ERROR(rd.Finish());
  if (fds.size() != fds_needed) {
    return base::Error("reply: " + std::to_string(fds.size()) + " fds for effects that need " +
                       std::to_string(fds_needed));
  }
  size_t next = 0;
  for (Effect& e : r.effects) {
    if (e.fd_count() >= 1) e.fd = std::move(fds[next++]);
    if (e.fd_count() == 2) e.resample_fd = std::move(fds[next++]);
  }
  return r;
}

}  // namespace crosvm::devices::proxy
