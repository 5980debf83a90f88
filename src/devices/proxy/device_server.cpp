#include "devices/proxy/device_server.h"

#include <algorithm>

#include "base/logging.h"

namespace crosvm::devices::proxy {
namespace {

// The device's command register and BARs, for the proxy's cache.
DeviceState StateOf(pci::PciDevice* device) {
  DeviceState st;
  st.command = device->Command();
  for (const pci::BarInfo& b : device->Bars()) {
    if (st.bars.size() == pci::kNumBars) break;
    st.bars.push_back(BarState{b, device->BarAddress(b.index)});
  }
  return st;
}

}  // namespace

base::Status DeviceServer::Run() {
  for (;;) {
    CROSVM_ASSIGN_OR_RETURN(auto m, channel_.Recv());
    if (!m) return base::Ok();  // the VM process is gone or done with us
    if (!m->fds.empty()) {
      // No request carries fds; they are closed with the message.
      CROSVM_RETURN_IF_ERROR(SendRejection(0, 0, "a request with fds"));
      continue;
    }
    auto req = DecodeRequest(m->bytes);
    if (!req.ok()) {
      // The header, if it is there, lets the proxy match the rejection to its request.
      uint32_t seq = 0;
      uint8_t type = 0;
      if (m->bytes.size() >= 5) {
        for (int i = 0; i < 4; ++i) seq |= static_cast<uint32_t>(m->bytes[i]) << (8 * i);
        type = m->bytes[4];
      }
      CROSVM_LOG_RATE_LIMITED(log_, ERROR)
          << device_->DebugName() << ": malformed request: " << req.error().ToString();
      CROSVM_RETURN_IF_ERROR(SendRejection(seq, type, req.error().ToString()));
      continue;
    }
    Reply reply;
    reply.seq = req->seq;
    reply.type = req->type;
    if (recorder_ != nullptr) recorder_->BeginRequest();
    Dispatch(*req, &reply);
    if (recorder_ != nullptr) recorder_->EndRequest();
    CROSVM_RETURN_IF_ERROR(SendReply(std::move(reply)));
    if (req->type == RequestType::kShutdown) return base::Ok();
  }
}

void DeviceServer::Dispatch(const Request& req, Reply* reply) {
  auto status_of = [&](const base::Status& s) {
    if (!s.ok()) {
      reply->flags |= kReplyStatusError;
      reply->error = s.error().ToString().substr(0, kMaxErrorLength);
      if (reply->error.empty()) reply->error = "error";
    }
  };
  bool state = false;
  switch (req.type) {
    case RequestType::kReadConfigRegister:
      reply->value = device_->ReadConfigRegister(req.reg);
      break;
    case RequestType::kWriteConfigRegister:
      device_->WriteConfigRegister(req.reg, req.offset, req.data);
      state = true;
      break;
    case RequestType::kBars:
    case RequestType::kCommand:
      state = true;
      reply->value = req.type == RequestType::kCommand ? device_->Command() : 0;
      break;
    case RequestType::kBarAddress:
      reply->value = device_->BarAddress(req.bar);
      state = true;
      break;
    case RequestType::kSetBarAddress:
      status_of(device_->SetBarAddress(req.bar, req.addr));
      state = true;
      break;
    case RequestType::kAssignIntx:
      status_of(device_->AssignIntx(req.gsi));
      break;
    case RequestType::kReadBar:
      reply->data.assign(req.len, 0);
      device_->ReadBar(req.bar, req.addr, reply->data);
      break;
    case RequestType::kWriteBar:
      device_->WriteBar(req.bar, req.addr, req.data);
      state = true;
      break;
    case RequestType::kOnBarMapped:
      device_->OnBarMapped(req.bar, req.addr);
      state = true;
      break;
    case RequestType::kOnBarUnmapped:
      device_->OnBarUnmapped(req.bar, req.addr);
      state = true;
      break;
    case RequestType::kShutdown:
      if (on_shutdown_) on_shutdown_();
      break;
    case RequestType::kDeviceControl: {
      auto answer = device_->DeviceControl(req.op, req.data);
      if (!answer.ok()) {
        // The message without strerror: the errno travels in `value` and the proxy rebuilds
        // the same Error.
        reply->flags |= kReplyStatusError;
        reply->error = answer.error().message().substr(0, kMaxErrorLength);
        if (reply->error.empty()) reply->error = "error";
        reply->value = static_cast<uint32_t>(answer.error().errnum());
      } else if (answer->size() > kMaxControlPayload) {
        status_of(base::Error(device_->DebugName() + ": control reply of " +
                              std::to_string(answer->size()) + " bytes is too long"));
      } else {
        reply->data = std::move(*answer);
      }
      break;
    }
  }
  if (state) reply->state = StateOf(device_);
}

base::Status DeviceServer::SendReply(Reply reply) {
  std::vector<Effect> effects;
  if (recorder_ != nullptr) effects = recorder_->Take();
  size_t next = 0;
  // Effects beyond one message's worth go first, in effect-only messages.
  while (effects.size() - next > kMaxEffectsPerMessage) {
    Reply part;
    part.seq = reply.seq;
    part.type = reply.type;
    part.flags = kReplyMore;
    for (size_t i = 0; i < kMaxEffectsPerMessage; ++i) {
      part.effects.push_back(std::move(effects[next++]));
    }
    std::vector<int> fds;
    auto bytes = EncodeReply(part, &fds);
    CROSVM_RETURN_IF_ERROR(channel_.Send(bytes, fds));
  }
  for (; next < effects.size(); ++next) reply.effects.push_back(std::move(effects[next]));
  std::vector<int> fds;
  auto bytes = EncodeReply(reply, &fds);
  return channel_.Send(bytes, fds);
}

base::Status DeviceServer::SendRejection(uint32_t seq, uint8_t type, const std::string& why) {
  Reply reply;
  reply.seq = seq;
  // An unknown type cannot be echoed; the proxy fails on the mismatch anyway.
  reply.type = type >= static_cast<uint8_t>(RequestType::kReadConfigRegister) &&
                       type <= static_cast<uint8_t>(RequestType::kDeviceControl)
                   ? static_cast<RequestType>(type)
                   : RequestType::kShutdown;
  reply.flags = kReplyRejected;
  reply.error = why.substr(0, kMaxErrorLength);
  std::vector<int> fds;
  auto bytes = EncodeReply(reply, &fds);
  return channel_.Send(bytes, fds);
}

}  // namespace crosvm::devices::proxy
