// cgroup.cc: cgroup v2 program attachment through pinned BPF links, and the
// network namespace cookie of the calling process.
//
// cgroupLinkAttach(cgroupPath, progFd, attachType, pinPath) attaches with a
// bpf_link (5.7+; several links of one attach type coexist, as with
// BPF_F_ALLOW_MULTI) and pins the link, so it outlives the process. When
// pinPath already holds a link of the same cgroup and attach type, the
// program is swapped in place with bpf_link_update: a restarted daemon
// replaces its programs with no moment where none is attached. A pinned link
// of another cgroup is replaced by a new one (attached first, then the old
// pin is renamed over, which releases the old link).
// cgroupLinkDetach(pinPath) detaches (bpf_link_detach, 5.9+) and unpins.
// cgroupQuery(cgroupPath, attachType) lists the ids of the programs attached.
// netnsCookie() is SO_NETNS_COOKIE (5.14+) of a throwaway socket.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sy {

namespace {

struct AttachName {
  const char* name;
  bpf_attach_type type;
};

constexpr AttachName kAttachTypes[] = {
    {"connect4", BPF_CGROUP_INET4_CONNECT},         {"connect6", BPF_CGROUP_INET6_CONNECT},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},          {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},          {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME}, {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
};

bpf_attach_type ArgAttachType(const Napi::CallbackInfo& info, size_t i) {
  std::string s = ArgString(info, i, "attachType");
  for (const auto& a : kAttachTypes)
    if (s == a.name) return a.type;
  throw Napi::TypeError::New(info.Env(),
                             "attachType must be one of connect4/6, sendmsg4/6, recvmsg4/6, getpeername4/6");
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A directory of a cgroup v2 hierarchy; anything else (a cgroup v1 or tmpfs
// directory, as /sys/fs/cgroup on a hybrid host) is refused by name.
int OpenCgroup(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SysError(errno, "open", "cgroup " + path);
  struct statfs st;
  if (fstatfs(fd, &st) != 0 || st.f_type != static_cast<decltype(st.f_type)>(CGROUP2_SUPER_MAGIC)) {
    close(fd);
    throw SysError::Invalid("cgroup attach", path, "not a cgroup v2 directory (no cgroup2 file system there)");
  }
  return fd;
}

// The cgroup's id as links report it: its kernfs inode number.
uint64_t CgroupId(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) throw SysError(errno, "fstat", "cgroup " + path);
  return st.st_ino;
}

Napi::Value CgroupLinkAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string cgroup = ArgString(info, 0, "cgroupPath");
  int prog_fd = ArgFd(info, 1, "progFd");
  bpf_attach_type type = ArgAttachType(info, 2);
  std::string pin = ArgString(info, 3, "pinPath");
  std::string what = "cgroup " + cgroup + " " + ArgString(info, 2, "attachType");
  Fd cg(OpenCgroup(cgroup));
  uint64_t cg_id = CgroupId(cg.get(), cgroup);

  Napi::Object out = Napi::Object::New(env);
  Fd old(bpf_obj_get(pin.c_str()));
  if (old.get() < 0 && errno != ENOENT) throw SysError(errno, "bpf_obj_get", pin);
  if (old.get() >= 0) {
    bpf_link_info li{};
    uint32_t len = sizeof li;
    if (bpf_obj_get_info_by_fd(old.get(), &li, &len) == 0 && li.type == BPF_LINK_TYPE_CGROUP &&
        li.cgroup.cgroup_id == cg_id && li.cgroup.attach_type == type) {
      if (bpf_link_update(old.get(), prog_fd, nullptr) != 0)
        throw SysError(errno, "bpf_link_update", what + " (link " + pin + ")");
      out.Set("linkId", li.id);
      out.Set("replaced", true);
      return out;
    }
  }
  Fd link(bpf_link_create(prog_fd, cg.get(), type, nullptr));
  if (link.get() < 0) throw SysError(errno, "bpf_link_create", what + " (prog fd " + std::to_string(prog_fd) + ")");
  std::string tmp = pin + "_new";  // bpffs refuses names with a dot
  unlink(tmp.c_str());
  if (bpf_obj_pin(link.get(), tmp.c_str()) != 0) throw SysError(errno, "bpf_obj_pin", tmp);
  // Renaming over the old pin drops its link only now that the new one is attached.
  if (rename(tmp.c_str(), pin.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    throw SysError(e, "rename", tmp + " -> " + pin);
  }
  bpf_link_info li{};
  uint32_t len = sizeof li;
  out.Set("linkId", bpf_obj_get_info_by_fd(link.get(), &li, &len) == 0 ? li.id : 0);
  out.Set("replaced", false);
  return out;
}

Napi::Value CgroupLinkDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(info, 0, "pinPath");
  Fd link(bpf_obj_get(pin.c_str()));
  if (link.get() < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    throw SysError(errno, "bpf_obj_get", pin);
  }
  // 5.9+; before that, dropping the last reference (the pin, then this fd) detaches.
  if (bpf_link_detach(link.get()) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP)
    throw SysError(errno, "bpf_link_detach", pin);
  if (unlink(pin.c_str()) != 0 && errno != ENOENT) throw SysError(errno, "unlink", pin);
  return Napi::Boolean::New(env, true);
}

Napi::Value CgroupQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string cgroup = ArgString(info, 0, "cgroupPath");
  bpf_attach_type type = ArgAttachType(info, 1);
  Fd cg(OpenCgroup(cgroup));
  std::vector<uint32_t> ids(64);
  uint32_t count = static_cast<uint32_t>(ids.size());
  uint32_t flags = 0;
  if (bpf_prog_query(cg.get(), type, 0, &flags, ids.data(), &count) != 0)
    throw SysError(errno, "bpf_prog_query", "cgroup " + cgroup + " " + ArgString(info, 1, "attachType"));
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, ids[i]);
  return out;
}

Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) throw SysError(errno, "socket", "AF_INET SOCK_DGRAM");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    throw SysError(errno, "getsockopt", "SO_NETNS_COOKIE (Linux 5.14+)");
  return Napi::BigInt::New(info.Env(), cookie);
}

}  // namespace

void InitCgroup(Napi::Env env, Napi::Object exports) {
  exports.Set("cgroupLinkAttach", Napi::Function::New(env, Guarded<CgroupLinkAttach>, "cgroupLinkAttach"));
  exports.Set("cgroupLinkDetach", Napi::Function::New(env, Guarded<CgroupLinkDetach>, "cgroupLinkDetach"));
  exports.Set("cgroupQuery", Napi::Function::New(env, Guarded<CgroupQuery>, "cgroupQuery"));
  exports.Set("netnsCookie", Napi::Function::New(env, Guarded<NetnsCookie>, "netnsCookie"));
}

}  // namespace sy
