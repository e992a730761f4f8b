// sockdiag.cc: sockDestroy(), closing sockets of the calling process's
// network namespace through NETLINK_SOCK_DIAG (CONFIG_INET_DIAG_DESTROY).
//
// sockDestroy(family, proto, addr, port, cookies) dumps the family's TCP or
// UDP sockets (SOCK_DIAG_BY_FAMILY, every state), keeps those whose peer is
// addr:port and whose cookie is one of `cookies` (the sockets the socket
// hooks pointed there, from their reverse-NAT map), and sends SOCK_DESTROY
// for each: a TCP socket is aborted (ECONNABORTED, a reset to the peer), a
// UDP socket gets ECONNABORTED on its next call and is disconnected. An IPv4
// peer is looked for among AF_INET6 sockets too (as ::ffff:a.b.c.d). Returns
// how many were destroyed; one already gone (ENOENT) is not counted. Without
// CONFIG_INET_DIAG_DESTROY the kernel answers EOPNOTSUPP, thrown as a
// SysError. Runs on the main thread: one dump and a few requests.
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

#ifndef SOCK_DESTROY
#define SOCK_DESTROY 21
#endif

namespace sy {

namespace {

class NlSocket {
 public:
  NlSocket() : fd_(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {
    if (fd_ < 0) throw SysError(errno, "socket", "AF_NETLINK NETLINK_SOCK_DIAG");
  }
  ~NlSocket() { close(fd_); }
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct Request {
  nlmsghdr nlh;
  inet_diag_req_v2 req;
};

Request MakeRequest(uint16_t type, uint16_t flags, uint8_t family, uint8_t proto, uint32_t seq) {
  Request r{};
  r.nlh.nlmsg_len = sizeof r;
  r.nlh.nlmsg_type = type;
  r.nlh.nlmsg_flags = flags;
  r.nlh.nlmsg_seq = seq;
  r.req.sdiag_family = family;
  r.req.sdiag_protocol = proto;
  r.req.idiag_states = ~0U;
  return r;
}

void Send(const NlSocket& s, const Request& r, const std::string& what) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(s.fd(), &r, sizeof r, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    throw SysError(errno, "sendto", what);
}

// The sockets of the dump whose peer is addr:port and whose cookie is wanted.
std::vector<inet_diag_sockid> Matching(const NlSocket& s, uint8_t family, const uint8_t* addr, size_t addr_len,
                                       uint16_t port_be, const std::set<uint64_t>& cookies, const std::string& what) {
  std::vector<inet_diag_sockid> out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = recv(s.fd(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(errno, "recv", what);
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        throw SysError(-e->error, "SOCK_DIAG_BY_FAMILY", what);
      }
      auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (m->idiag_family != family || m->id.idiag_dport != port_be) continue;
      if (std::memcmp(m->id.idiag_dst, addr, addr_len) != 0) continue;
      uint64_t cookie = static_cast<uint64_t>(m->id.idiag_cookie[0]) | static_cast<uint64_t>(m->id.idiag_cookie[1])
                                                                           << 32;
      if (cookies.count(cookie) == 0) continue;
      out.push_back(m->id);
    }
  }
}

// The kernel's answer to one SOCK_DESTROY: 0 or an errno.
int Ack(const NlSocket& s, const std::string& what) {
  std::vector<char> buf(8192);
  for (;;) {
    ssize_t n = recv(s.fd(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SysError(errno, "recv", what);
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_ERROR) return -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }
}

uint8_t ArgProto(const Napi::CallbackInfo& info, size_t i) {
  std::string p = ArgString(info, i, "proto");
  if (p == "TCP") return IPPROTO_TCP;
  if (p == "UDP") return IPPROTO_UDP;
  throw Napi::TypeError::New(info.Env(), "proto must be 'TCP' or 'UDP'");
}

Napi::Value SockDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string fam = ArgString(info, 0, "family");
  if (fam != "IPv4" && fam != "IPv6") throw Napi::TypeError::New(env, "family must be 'IPv4' or 'IPv6'");
  uint8_t family = fam == "IPv4" ? AF_INET : AF_INET6;
  uint8_t proto = ArgProto(info, 1);
  std::vector<uint8_t> addr = ArgBytes(info, 2, "addr");
  size_t addr_len = family == AF_INET ? 4 : 16;
  if (addr.size() != addr_len) throw Napi::TypeError::New(env, "addr must be 4 bytes (IPv4) or 16 (IPv6)");
  uint16_t port = static_cast<uint16_t>(ArgNumber(info, 3, "port", 1, 65535));
  if (!info[4].IsArray()) throw Napi::TypeError::New(env, "cookies must be an array of bigints");
  Napi::Array list = info[4].As<Napi::Array>();
  std::set<uint64_t> cookies;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsBigInt()) throw Napi::TypeError::New(env, "cookies must be an array of bigints");
    bool lossless = false;
    cookies.insert(v.As<Napi::BigInt>().Uint64Value(&lossless));
  }
  std::string what = fam + (proto == IPPROTO_TCP ? " TCP" : " UDP") + " sockets to port " + std::to_string(port);
  if (cookies.empty()) return Napi::Number::New(env, 0);

  // An IPv4 peer is also the ::ffff:a.b.c.d peer of a dual-stack AF_INET6 socket.
  struct Pass {
    uint8_t family;
    std::vector<uint8_t> addr;
  };
  std::vector<Pass> passes{{family, addr}};
  if (family == AF_INET) {
    std::vector<uint8_t> mapped(16, 0);
    mapped[10] = mapped[11] = 0xff;
    std::memcpy(mapped.data() + 12, addr.data(), 4);
    passes.push_back({AF_INET6, mapped});
  }
  NlSocket s;
  uint32_t destroyed = 0;
  uint32_t seq = 1;
  for (const auto& pass : passes) {
    Send(s, MakeRequest(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, pass.family, proto, seq++), what);
    std::vector<inet_diag_sockid> found =
        Matching(s, pass.family, pass.addr.data(), pass.addr.size(), htons(port), cookies, what);
    for (const auto& id : found) {
      Request r = MakeRequest(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, pass.family, proto, seq++);
      r.req.id = id;
      Send(s, r, what);
      int err = Ack(s, what);
      if (err == 0)
        destroyed++;
      else if (err != ENOENT)
        throw SysError(err, "SOCK_DESTROY", what);
    }
  }
  return Napi::Number::New(env, destroyed);
}

}  // namespace

void InitSockDiag(Napi::Env env, Napi::Object exports) {
  exports.Set("sockDestroy", Napi::Function::New(env, Guarded<SockDestroy>, "sockDestroy"));
}

}  // namespace sy
