// addon.h: what each concern registers on the module's exports, and the
// per-environment data they share.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace sy {

struct AddonData {
  Napi::FunctionReference native_object;      // constructor of NativeObject (object.cc)
  Napi::FunctionReference native_link_watch;  // constructor of NativeLinkWatch (links.cc)
  Napi::FunctionReference native_netlink;     // constructor of NativeNetlink (netlink.cc)
};

void InitObject(Napi::Env env, Napi::Object exports);    // object.cc
void InitBpffs(Napi::Env env, Napi::Object exports);     // bpffs.cc
void InitMaps(Napi::Env env, Napi::Object exports);      // maps.cc
void InitTc(Napi::Env env, Napi::Object exports);        // tc.cc
void InitTestRun(Napi::Env env, Napi::Object exports);   // testrun.cc
void InitLock(Napi::Env env, Napi::Object exports);      // lock.cc
void InitLinks(Napi::Env env, Napi::Object exports);     // links.cc
void InitCgroup(Napi::Env env, Napi::Object exports);    // cgroup.cc
void InitSockDiag(Napi::Env env, Napi::Object exports);  // sockdiag.cc
void InitNetlink(Napi::Env env, Napi::Object exports);   // netlink.cc

// bpffs.cc: makes path a directory on a bpffs, mounting one there when neither
// it nor its nearest existing ancestor is on bpffs. True when it mounted.
bool EnsureBpffs(const std::string& path);

// maps.cc: bytes of one value record as the map syscalls copy it:
// roundup(value_size, 8) * possible CPUs for per-CPU maps, else value_size.
size_t ValueStride(uint32_t map_type, uint32_t value_size);

// maps.cc: bpf_obj_get_info_by_fd into info (len bytes), or a SysError naming
// object. An fd that is not open is reported as EBADF, as by every other bpf
// command (this one alone says EBADFD, since it appeared in 4.13).
void ReadInfoByFd(int fd, void* info, uint32_t len, const std::string& object);

}  // namespace sy
