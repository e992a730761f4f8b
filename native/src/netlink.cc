// netlink.cc: netlinkOpen(protocol, opts?) and NativeNetlink, a request/reply
// netlink socket (NETLINK_ROUTE, NETLINK_GENERIC, ...). Bytes in, bytes out:
// the caller encodes whole messages (nlmsghdr included) and decodes the
// replies; this file only frames the exchange.
//
// request(messages) takes one or more messages back to back and, on a worker
// thread: stamps each with its own sequence number and the socket's port id,
// sets NLM_F_ACK on every message that is not a dump, sends them (as many per
// datagram as fit; the kernel handles a datagram's messages in order, each on
// its own), and reads until every message has ended: a dump (NLM_F_DUMP) at
// NLMSG_DONE, anything else at its acknowledgement (NLMSG_ERROR with error 0).
// It resolves to one result per message: the reply messages with its sequence
// number (the terminating ACK/DONE left out) back to back in one Buffer, and
// error: null, or an Error with errno/code/syscall ('netlink') made from the
// kernel's NLMSG_ERROR (or the negative int a NLMSG_DONE carries), with the
// kernel's extended-ack text in the message when it gave one. The kernel goes
// on with a datagram's later messages after one fails, so each result stands
// alone. A failure of the socket itself (sendmsg, recvmsg) rejects the promise.
//
// The socket is created on the calling (main) thread, so it belongs to the
// network namespace the process runs in. Requests on one socket run one at a
// time (a mutex): replies are told apart by sequence number, but a dump must
// not interleave with another request's acknowledgements.
//
// Receive buffer: the kernel answers a whole datagram before sendmsg()
// returns, so the acknowledgements (and replies) of one datagram must fit in
// the receive buffer, counted by the kernel at the skb's true size (a small
// ACK costs ~1 KiB, a doit reply ~4-8 KiB). The buffer defaults to 4 MiB
// (SO_RCVBUFFORCE; SO_RCVBUF, capped by net.core.rmem_max, without
// CAP_NET_ADMIN), and a datagram carries at most rcvbuf / 16 KiB messages.
// Should the buffer overflow anyway (ENOBUFS: the kernel dropped replies),
// the messages left without an answer fail with ENOBUFS.
//
// NETLINK_CAP_ACK keeps error acknowledgements short (the kernel echoes only
// the failed message's header), NETLINK_EXT_ACK asks for the error text;
// kernels without them (before 4.3/4.12) work, with less detail.
#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "worker.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

namespace sy {

namespace {

constexpr int kDefaultRcvbuf = 4 << 20;
constexpr size_t kRecvBuffer = 64 << 10;        // one datagram; a dump's part is at most ~32 KiB
constexpr size_t kMaxDatagram = 32 << 10;       // bytes of requests per sendmsg
constexpr size_t kRcvbufPerMessage = 16 << 10;  // budget of receive buffer per message in flight
constexpr int kReplyTimeoutMs = 60'000;         // a kernel that never answers fails the request

const char* ProtocolName(int protocol) {
  switch (protocol) {
    case NETLINK_ROUTE:
      return "NETLINK_ROUTE";
    case NETLINK_GENERIC:
      return "NETLINK_GENERIC";
    case NETLINK_NETFILTER:
      return "NETLINK_NETFILTER";
    default:
      return "netlink";
  }
}

struct NlResult {
  std::vector<uint8_t> replies;
  int error = 0;       // positive errno, 0 when the message succeeded
  std::string detail;  // the kernel's extended-ack text, if any
  bool done = false;
};

class Socket {
 public:
  Socket(int protocol, int rcvbuf) : protocol_(protocol) {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) throw SysError(errno, "socket", std::string(ProtocolName(protocol)) + " socket");
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0 &&
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
      Fail(errno, "setsockopt", "SO_RCVBUF " + std::to_string(rcvbuf));
    }
    int one = 1;
    // Optional: older kernels answer with the full request and no text.
    (void)setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    (void)setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Fail(errno, "bind", Name());
    socklen_t len = sizeof addr;
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Fail(errno, "getsockname", Name());
    port_ = addr.nl_pid;
    int actual = 0;
    len = sizeof actual;
    if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &actual, &len) != 0) Fail(errno, "getsockopt", Name());
    rcvbuf_ = actual;
  }

  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }

  uint32_t port() const { return port_; }
  int rcvbuf() const { return rcvbuf_; }
  int protocol() const { return protocol_; }
  std::string Name() const { return std::string(ProtocolName(protocol_)) + " socket"; }

  // Worker thread. messages: whole netlink messages back to back (checked
  // by the caller). Fills one Result per message.
  void Request(std::vector<uint8_t>& messages, const std::vector<size_t>& offsets, std::vector<NlResult>* results) {
    std::lock_guard<std::mutex> hold(mutex_);
    size_t n = offsets.size();
    results->assign(n, NlResult());
    uint32_t first = next_seq_;
    next_seq_ += static_cast<uint32_t>(n);
    if (next_seq_ < first) {  // wrapped: start over, keeping the range contiguous
      first = 1;
      next_seq_ = static_cast<uint32_t>(n) + 1;
    }
    std::vector<bool> dump(n);
    for (size_t i = 0; i < n; i++) {
      auto* nh = reinterpret_cast<nlmsghdr*>(messages.data() + offsets[i]);
      nh->nlmsg_seq = first + static_cast<uint32_t>(i);
      nh->nlmsg_pid = port_;
      dump[i] = (nh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
      if (!dump[i]) nh->nlmsg_flags |= NLM_F_ACK;
    }
    size_t per_datagram = std::max<size_t>(1, static_cast<size_t>(rcvbuf_) / kRcvbufPerMessage);
    std::vector<uint8_t> buf(kRecvBuffer);
    size_t i = 0;
    while (i < n) {
      // One datagram: consecutive messages up to the size and count budgets;
      // a dump goes alone (its parts arrive as they are read).
      size_t j = i + 1;
      if (!dump[i]) {
        while (j < n && !dump[j] && j - i < per_datagram && End(messages, offsets, j) - offsets[i] <= kMaxDatagram) j++;
      }
      Send(messages.data() + offsets[i], End(messages, offsets, j - 1) - offsets[i]);
      Receive(buf, first, i, j, results);
      i = j;
    }
  }

 private:
  [[noreturn]] void Fail(int errnum, const char* call, const std::string& object) {
    close(fd_);
    fd_ = -1;
    throw SysError(errnum, call, object);
  }

  static size_t End(const std::vector<uint8_t>& messages, const std::vector<size_t>& offsets, size_t k) {
    return k + 1 < offsets.size() ? offsets[k + 1] : messages.size();
  }

  void Send(const uint8_t* data, size_t len) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    for (;;) {
      ssize_t n = sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
      if (n >= 0) return;
      if (errno == EINTR) continue;
      throw SysError(errno, "sendmsg", Name());
    }
  }

  // Reads until messages [from, to) (sequence numbers first+from ...) have
  // all ended. Messages of other sequence numbers (left over from an earlier
  // request that failed part way) are dropped.
  void Receive(std::vector<uint8_t>& buf, uint32_t first, size_t from, size_t to, std::vector<NlResult>* results) {
    size_t pending = to - from;
    bool overrun = false;
    while (pending > 0) {
      int flags = 0;
      if (overrun) {
        flags = MSG_DONTWAIT;
      } else {
        pollfd p{fd_, POLLIN, 0};
        int r = poll(&p, 1, kReplyTimeoutMs);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw SysError(errno, "poll", Name());
        if (r == 0) throw SysError(ETIMEDOUT, "recvmsg", Name(), " (no answer from the kernel)");
      }
      sockaddr_nl from_addr{};
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_name = &from_addr;
      msg.msg_namelen = sizeof from_addr;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      ssize_t got = recvmsg(fd_, &msg, flags);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {  // the kernel dropped replies: take what is queued, fail the rest
          overrun = true;
          continue;
        }
        if (overrun && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        throw SysError(errno, "recvmsg", Name());
      }
      if (from_addr.nl_pid != 0) continue;  // only the kernel answers
      if ((msg.msg_flags & MSG_TRUNC) != 0)
        throw SysError(EMSGSIZE, "recvmsg", Name(), " (a reply did not fit in 64 KiB)");
      size_t left = static_cast<size_t>(got);
      for (auto* nh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
        uint32_t seq = nh->nlmsg_seq;
        if (seq < first + from || seq >= first + to) continue;
        NlResult& r = (*results)[seq - first];
        if (r.done) continue;
        if (nh->nlmsg_type == NLMSG_ERROR || nh->nlmsg_type == NLMSG_DONE) {
          End(nh, &r);
          pending--;
          continue;
        }
        const auto* p = reinterpret_cast<const uint8_t*>(nh);
        r.replies.insert(r.replies.end(), p, p + NLMSG_ALIGN(nh->nlmsg_len));
      }
    }
    for (size_t k = from; k < to; k++) {
      NlResult& r = (*results)[k];
      if (r.done) continue;
      r.done = true;
      r.error = ENOBUFS;
      r.detail = " (the kernel dropped the reply: receive buffer full)";
    }
  }

  // An ACK, an error or the end of a dump.
  static void End(const nlmsghdr* nh, NlResult* r) {
    r->done = true;
    size_t payload = nh->nlmsg_len - NLMSG_HDRLEN;
    if (nh->nlmsg_type == NLMSG_DONE) {
      int err = 0;
      if (payload >= sizeof err) memcpy(&err, NLMSG_DATA(nh), sizeof err);
      r->error = err < 0 ? -err : 0;
      return;
    }
    if (payload < sizeof(nlmsgerr)) {
      r->error = EBADMSG;
      r->detail = " (short NLMSG_ERROR)";
      return;
    }
    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
    r->error = e->error < 0 ? -e->error : e->error;
    if (r->error == 0 || (nh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return;
    // The TLVs follow the echoed request: its header alone when capped.
    size_t echoed = (nh->nlmsg_flags & NLM_F_CAPPED) != 0 ? sizeof(nlmsghdr) : e->msg.nlmsg_len;
    size_t off = NLMSG_HDRLEN + sizeof(int) + NLMSG_ALIGN(echoed);
    const auto* base = reinterpret_cast<const uint8_t*>(nh);
    while (off + sizeof(nlattr) <= nh->nlmsg_len) {
      const auto* a = reinterpret_cast<const nlattr*>(base + off);
      if (a->nla_len < sizeof(nlattr) || off + a->nla_len > nh->nlmsg_len) break;
      if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
        const char* s = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
        r->detail = std::string(" (kernel: ") + std::string(s, strnlen(s, a->nla_len - NLA_HDRLEN)) + ")";
      }
      off += NLA_ALIGN(a->nla_len);
    }
  }

  int fd_ = -1;
  int protocol_;
  int rcvbuf_ = 0;
  uint32_t port_ = 0;
  uint32_t next_seq_ = 1;
  std::mutex mutex_;
};

class RequestWorker : public PromiseWorker {
 public:
  RequestWorker(Napi::Env env, std::shared_ptr<Socket> sock, std::vector<uint8_t> messages, std::vector<size_t> offsets,
                std::vector<std::string> labels)
      : PromiseWorker(env, "switchyard:netlinkRequest"),
        sock_(std::move(sock)),
        messages_(std::move(messages)),
        offsets_(std::move(offsets)),
        labels_(std::move(labels)) {}

 protected:
  void Run() override { sock_->Request(messages_, offsets_, &results_); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) {
      const auto& r = results_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("replies", Napi::Buffer<uint8_t>::Copy(env, r.replies.data(), r.replies.size()));
      if (r.error == 0) {
        o.Set("error", env.Null());
      } else {
        o.Set("error", SysError(r.error, "netlink", Label(i), r.detail).ToJs(env).Value());
      }
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

 private:
  std::string Label(size_t i) const {
    if (i < labels_.size() && !labels_[i].empty()) return labels_[i];
    const auto* nh = reinterpret_cast<const nlmsghdr*>(messages_.data() + offsets_[i]);
    return sock_->Name() + " message type " + std::to_string(nh->nlmsg_type);
  }

  std::shared_ptr<Socket> sock_;
  std::vector<uint8_t> messages_;
  std::vector<size_t> offsets_;
  std::vector<std::string> labels_;
  std::vector<NlResult> results_;
};

class NativeNetlink : public Napi::ObjectWrap<NativeNetlink> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "NativeNetlink",
        {InstanceMethod<&NativeNetlink::Request>("request"), InstanceMethod<&NativeNetlink::Close>("close"),
         InstanceAccessor<&NativeNetlink::Port>("portId"), InstanceAccessor<&NativeNetlink::Rcvbuf>("rcvbuf")});
  }

  explicit NativeNetlink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeNetlink>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeNetlink is created by netlinkOpen()");
    }
    sock_ = *info[0].As<Napi::External<std::shared_ptr<Socket>>>().Data();
  }

 private:
  // request(messages: Uint8Array, labels?: string[]) => Promise<{replies, error}[]>
  // Arguments that are not messages throw a TypeError; a closed socket
  // rejects with EBADF.
  Napi::Value Request(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!sock_) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Reject(SysError(EBADF, "netlink request", "a closed netlink socket").ToJs(env).Value());
      return deferred.Promise();
    }
    {
      std::shared_ptr<Socket> sock = sock_;
      std::vector<uint8_t> messages = ArgBytes(info, 0, "messages");
      std::vector<size_t> offsets;
      size_t off = 0;
      while (off < messages.size()) {
        if (messages.size() - off < NLMSG_HDRLEN)
          throw Napi::TypeError::New(env, "messages: a partial nlmsghdr at byte " + std::to_string(off));
        nlmsghdr nh;
        memcpy(&nh, messages.data() + off, sizeof nh);
        if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > messages.size() - off) {
          throw Napi::TypeError::New(env, "messages: nlmsg_len " + std::to_string(nh.nlmsg_len) + " at byte " +
                                              std::to_string(off) + " does not fit");
        }
        offsets.push_back(off);
        off += NLMSG_ALIGN(nh.nlmsg_len);
      }
      if (offsets.empty()) throw Napi::TypeError::New(env, "messages must hold at least one message");
      if (off != messages.size())
        throw Napi::TypeError::New(env, "messages: the last message is not padded to 4 bytes");
      std::vector<std::string> labels;
      if (!info[1].IsUndefined()) {
        if (!info[1].IsArray()) throw Napi::TypeError::New(env, "labels must be an array of strings");
        Napi::Array a = info[1].As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); i++) {
          Napi::Value v = a.Get(i);
          labels.push_back(v.IsString() ? v.As<Napi::String>().Utf8Value() : "");
        }
      }
      return (new RequestWorker(env, sock, std::move(messages), std::move(offsets), std::move(labels)))->Start();
    }
  }

  // Idempotent. A request in flight keeps the socket until it ends.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    sock_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Port(const Napi::CallbackInfo& info) {
    return sock_ ? Napi::Number::New(info.Env(), sock_->port()) : info.Env().Null();
  }

  Napi::Value Rcvbuf(const Napi::CallbackInfo& info) {
    return sock_ ? Napi::Number::New(info.Env(), sock_->rcvbuf()) : info.Env().Null();
  }

  std::shared_ptr<Socket> sock_;
};

// netlinkOpen(protocol, {rcvbuf}?) => NativeNetlink
Napi::Value NetlinkOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int protocol = static_cast<int>(ArgNumber(info, 0, "protocol", 0, 31));
  int rcvbuf = kDefaultRcvbuf;
  if (!info[1].IsUndefined()) {
    Napi::Object opts = ArgObject(info, 1, "opts");
    Napi::Value v = opts.Get("rcvbuf");
    if (!v.IsUndefined()) rcvbuf = static_cast<int>(NumberValue(env, v, "opts.rcvbuf", 4096, INT32_MAX / 2));
  }
  auto sock = std::make_shared<Socket>(protocol, rcvbuf);
  Napi::FunctionReference& ctor = env.GetInstanceData<AddonData>()->native_netlink;
  return ctor.New({Napi::External<std::shared_ptr<Socket>>::New(env, &sock)});
}

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  env.GetInstanceData<AddonData>()->native_netlink = Napi::Persistent(NativeNetlink::Define(env));
  exports.Set("netlinkOpen", Napi::Function::New(env, Guarded<NetlinkOpen>, "netlinkOpen"));
}

}  // namespace sy
