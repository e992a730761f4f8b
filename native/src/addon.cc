// addon.cc: module entry of switchyard_native. Installs the libbpf print
// callback and lets each concern (object.cc, bpffs.cc, maps.cc, tc.cc,
// testrun.cc, lock.cc, links.cc, cgroup.cc, sockdiag.cc, netlink.cc) register its functions. Mechanisms only: nothing
// here knows Kubernetes.
#include "addon.h"

#include <napi.h>

#include "libbpf_log.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  sy::InstallLibbpfPrint();
  env.SetInstanceData(new sy::AddonData());
  sy::InitObject(env, exports);
  sy::InitBpffs(env, exports);
  sy::InitMaps(env, exports);
  sy::InitTc(env, exports);
  sy::InitTestRun(env, exports);
  sy::InitLock(env, exports);
  sy::InitLinks(env, exports);
  sy::InitCgroup(env, exports);
  sy::InitSockDiag(env, exports);
  sy::InitNetlink(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(switchyard_native, Init)
