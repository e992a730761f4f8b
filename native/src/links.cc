// links.cc: linkWatch(onEvents, opts?), rtnetlink link events of the calling
// process's network namespace, and NativeLinkWatch, its handle.
//
// A NETLINK_ROUTE socket bound to the RTMGRP_LINK multicast group receives
// RTM_NEWLINK (a link appeared, or its name, flags or operstate changed) and
// RTM_DELLINK (it went, or left the namespace). The socket is created by the
// calling (main) thread, so it belongs to the network namespace the process
// runs in (`ip netns exec` included) whichever thread reads it later.
//
// One reader thread per watch blocks in poll(2) on the socket and an eventfd
// (close() writes the eventfd, then joins the thread), drains every message
// that is queued, decodes them here and hands the batch to the main thread
// through an unref'd thread-safe function: a watch never keeps the process
// alive, and the JS callback sees plain objects, one array per batch.
//
// Overrun: when the socket's receive buffer is full the kernel drops messages
// and the next recv(2) fails with ENOBUFS. That is reported as an event
// {type: 'overrun'} (the caller relists the links) and reading goes on. Any
// other recv(2) failure ends the watch with an event {type: 'error', error}.
//
// The receive buffer defaults to 4 MiB (SO_RCVBUFFORCE, which CAP_NET_ADMIN
// allows past net.core.rmem_max; SO_RCVBUF, capped by it, otherwise): a burst
// of a few hundred links fits while the reader is descheduled.
#include <errno.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace sy {

namespace {

constexpr int kDefaultRcvbuf = 4 << 20;
// Large enough for any one rtnetlink message (a link with VF info and
// stats can pass 8 KiB); a datagram that does not fit is truncated and
// reported as an overrun (it was lost all the same).
constexpr size_t kRecvBuffer = 64 << 10;

struct LinkEvent {
  enum Kind { kNew, kDel, kOverrun } kind;
  int ifindex = 0;
  unsigned flags = 0;  // IFF_*
  int operstate = -1;  // IF_OPER_*; -1 when the message had none
  std::string name;
};

// What the reader hands the main thread: decoded events, and the error that
// ended the watch when there is one.
struct Batch {
  std::vector<LinkEvent> events;
  std::unique_ptr<SysError> error;
};

const char* OperstateName(int s) {
  // uapi linux/if.h, enum IF_OPER_* (RFC 2863 ifOperStatus).
  static const char* const kNames[] = {"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"};
  return s >= 0 && s < static_cast<int>(sizeof kNames / sizeof kNames[0]) ? kNames[s] : "unknown";
}

// Appends the link events of one datagram; anything else is skipped.
void Decode(const uint8_t* buf, size_t len, std::vector<LinkEvent>* out) {
  size_t left = len;
  for (auto* nh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
    if (nh->nlmsg_type == NLMSG_OVERRUN) {
      out->push_back({LinkEvent::kOverrun});
      continue;
    }
    if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) continue;
    if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) continue;
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nh));
    LinkEvent e{nh->nlmsg_type == RTM_NEWLINK ? LinkEvent::kNew : LinkEvent::kDel};
    e.ifindex = ifi->ifi_index;
    e.flags = ifi->ifi_flags;
    int attrs = static_cast<int>(nh->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)));
    for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const uint8_t*>(ifi) + NLMSG_ALIGN(sizeof *ifi));
         RTA_OK(a, attrs); a = RTA_NEXT(a, attrs)) {
      const auto* data = static_cast<const char*>(RTA_DATA(a));
      size_t n = RTA_PAYLOAD(a);
      if (a->rta_type == IFLA_IFNAME) e.name.assign(data, strnlen(data, n));
      if (a->rta_type == IFLA_OPERSTATE && n >= 1) e.operstate = static_cast<uint8_t>(data[0]);
    }
    out->push_back(std::move(e));
  }
}

// The socket and its reader thread. Shared by the handle (NativeLinkWatch),
// the thread-safe function's finalizer and the batches in flight, so that
// whichever of close(), garbage collection and environment teardown comes
// first stops the reader, and nothing is freed while still in use.
class Watch {
 public:
  explicit Watch(int rcvbuf) {
    sock_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock_ < 0) throw SysError(errno, "socket", "rtnetlink (NETLINK_ROUTE)");
    if (setsockopt(sock_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0 &&
        setsockopt(sock_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
      Fail(errno, "setsockopt", "rtnetlink socket SO_RCVBUF " + std::to_string(rcvbuf));
    }
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK;
    if (bind(sock_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      Fail(errno, "bind", "rtnetlink socket (group RTMGRP_LINK)");
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) Fail(errno, "eventfd", "link watch");
  }

  ~Watch() { Shutdown(); }

  // Main thread, once: reads from now on, delivering to tsfn.
  void Start(std::shared_ptr<Watch> self, Napi::ThreadSafeFunction tsfn) {
    tsfn_ = tsfn;
    reader_ = std::thread([this, self = std::move(self)]() mutable {
      Read(self);
      self.reset();  // never the last reference: Shutdown() joins this thread before the others let go
    });
  }

  // Wakes the reader and waits for it, then frees the socket; batches not
  // delivered yet are dropped. Main thread; idempotent.
  void Shutdown() {
    if (sock_ < 0) return;
    stopped_ = true;
    uint64_t one = 1;
    if (write(wake_, &one, sizeof one) < 0) {
      // A fresh eventfd counter takes one write: it cannot fail here.
    }
    if (reader_.joinable()) reader_.join();
    close(wake_);
    close(sock_);
    wake_ = sock_ = -1;
  }

  bool stopped() const { return stopped_; }

 private:
  [[noreturn]] void Fail(int errnum, const char* call, const std::string& object) {
    if (wake_ >= 0) close(wake_);
    close(sock_);
    sock_ = wake_ = -1;
    throw SysError(errnum, call, object);
  }

  // Reader thread. Ends when the eventfd is written, when the main thread
  // takes no more calls (environment teardown) or on a failure it reports.
  void Read(const std::shared_ptr<Watch>& self) {
    std::vector<uint8_t> buf(kRecvBuffer);
    pollfd fds[2] = {{sock_, POLLIN, 0}, {wake_, POLLIN, 0}};
    for (;;) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        auto batch = std::make_unique<Batch>();
        batch->error = std::make_unique<SysError>(errno, "poll", "rtnetlink socket");
        Send(self, std::move(batch));
        return;
      }
      if (fds[1].revents != 0) return;
      auto batch = std::make_unique<Batch>();
      bool ended = Drain(buf, batch.get());
      if ((!batch->events.empty() || batch->error) && !Send(self, std::move(batch))) return;
      if (ended) return;
    }
  }

  // Reads until the socket is empty. True when the watch cannot go on.
  bool Drain(std::vector<uint8_t>& buf, Batch* batch) {
    for (;;) {
      sockaddr_nl from{};
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      ssize_t n = recvmsg(sock_, &msg, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {  // the kernel dropped messages: the caller must relist
          batch->events.push_back({LinkEvent::kOverrun});
          continue;
        }
        batch->error = std::make_unique<SysError>(errno, "recvmsg", "rtnetlink socket");
        return true;
      }
      if (from.nl_pid != 0) continue;  // only the kernel speaks for the link group
      if ((msg.msg_flags & MSG_TRUNC) != 0) {
        batch->events.push_back({LinkEvent::kOverrun});
        continue;
      }
      Decode(buf.data(), static_cast<size_t>(n), &batch->events);
    }
  }

  // False when the main thread takes no more calls.
  bool Send(const std::shared_ptr<Watch>& self, std::unique_ptr<Batch> batch) {
    Batch* raw = batch.get();
    napi_status s = tsfn_.NonBlockingCall(raw, [self](Napi::Env env, Napi::Function cb, Batch* b) {
      std::unique_ptr<Batch> owned(b);
      if (env != nullptr && !self->stopped()) Deliver(env, cb, *owned);
    });
    if (s == napi_ok) batch.release();
    return s == napi_ok;
  }

  // Main thread: the batch as an array of plain objects, to the JS callback.
  static void Deliver(Napi::Env env, Napi::Function cb, const Batch& b) {
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const LinkEvent& e : b.events) {
      Napi::Object o = Napi::Object::New(env);
      if (e.kind == LinkEvent::kOverrun) {
        o.Set("type", "overrun");
      } else {
        o.Set("type", e.kind == LinkEvent::kNew ? "new" : "del");
        o.Set("ifindex", e.ifindex);
        o.Set("name", e.name);
        o.Set("up", (e.flags & IFF_UP) != 0);
        o.Set("lowerUp", (e.flags & IFF_LOWER_UP) != 0);
        o.Set("operstate",
              e.operstate < 0 ? env.Null() : Napi::Value(Napi::String::New(env, OperstateName(e.operstate))));
      }
      out.Set(i++, o);
    }
    if (b.error) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("type", "error");
      o.Set("error", b.error->ToJs(env).Value());
      out.Set(i++, o);
    }
    cb.Call({out});
  }

  int sock_ = -1;
  int wake_ = -1;
  bool stopped_ = false;  // main thread only
  Napi::ThreadSafeFunction tsfn_;
  std::thread reader_;
};

// What the thread-safe function's finalizer holds: it runs on the main
// thread once the function is released or aborted, or at environment
// teardown (after which no thread may call it: the reader is joined here).
struct TsfnRef {
  std::shared_ptr<Watch> watch;
  std::shared_ptr<bool> gone;  // shared with the handle: do not Abort() a finalized function
};

class NativeLinkWatch : public Napi::ObjectWrap<NativeLinkWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeLinkWatch", {InstanceMethod<&NativeLinkWatch::Close>("close")});
  }

  explicit NativeLinkWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeLinkWatch>(info) {
    if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(info.Env(), "NativeLinkWatch is created by linkWatch()");
    }
    Napi::Env env = info.Env();
    watch_ = *info[0].As<Napi::External<std::shared_ptr<Watch>>>().Data();
    gone_ = std::make_shared<bool>(false);
    auto* ref = new TsfnRef{watch_, gone_};
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "switchyard:linkWatch", 0, 1, ref,
                                          [](Napi::Env, TsfnRef* r) {
                                            r->watch->Shutdown();
                                            *r->gone = true;
                                            delete r;
                                          });
    tsfn_.Unref(env);  // a watch alone does not keep the process running
    watch_->Start(watch_, tsfn_);
  }

  ~NativeLinkWatch() override { Stop(); }

 private:
  void Stop() {
    if (!watch_) return;
    watch_->Shutdown();
    if (!*gone_) tsfn_.Abort();
    watch_.reset();
  }

  // Idempotent: stops delivery and frees the socket and the thread.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  std::shared_ptr<Watch> watch_;  // a collected handle stops its watch
  std::shared_ptr<bool> gone_;
  Napi::ThreadSafeFunction tsfn_;
};

// linkWatch(onEvents, {rcvbuf}?) => NativeLinkWatch
Napi::Value LinkWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "onEvents must be a function");
  int rcvbuf = kDefaultRcvbuf;
  if (!info[1].IsUndefined()) {
    Napi::Object opts = ArgObject(info, 1, "opts");
    Napi::Value v = opts.Get("rcvbuf");
    if (!v.IsUndefined()) rcvbuf = static_cast<int>(NumberValue(env, v, "opts.rcvbuf", 1, INT32_MAX / 2));
  }
  // The socket is made here, on the main thread: it belongs to this
  // thread's network namespace, the one the process runs in.
  auto watch = std::make_shared<Watch>(rcvbuf);
  Napi::FunctionReference& ctor = env.GetInstanceData<AddonData>()->native_link_watch;
  return ctor.New({Napi::External<std::shared_ptr<Watch>>::New(env, &watch), info[0]});
}

}  // namespace

void InitLinks(Napi::Env env, Napi::Object exports) {
  env.GetInstanceData<AddonData>()->native_link_watch = Napi::Persistent(NativeLinkWatch::Define(env));
  exports.Set("linkWatch", Napi::Function::New(env, Guarded<LinkWatch>, "linkWatch"));
}

}  // namespace sy
