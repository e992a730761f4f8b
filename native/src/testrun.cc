// testrun.cc: progTestRun(), one BPF_PROG_TEST_RUN of a loaded program.
//
// The kernel runs the program on a copy of `data` (for tc programs: an skb
// built from the frame, on the calling network namespace's loopback device,
// never sent anywhere; a redirect is only the return value) and hands back the
// verdict, the packet as the program left it, the average run time and, when
// a context was given, the struct __sk_buff as the program left it. Map
// updates the program makes are real. Runs on a worker thread: `repeat` can
// make it slow.
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "worker.h"

namespace sy {

namespace {

// Room for the output packet when the caller gives no dataSizeOut: the
// largest IPv4 datagram plus an Ethernet header, so a program that grows the
// packet does not fail with ENOSPC in the ordinary case.
constexpr uint32_t kDefaultDataOut = 65535 + 14;

class TestRunWorker : public PromiseWorker {
 public:
  TestRunWorker(Napi::Env env, int fd, std::vector<uint8_t> data, std::vector<uint8_t> ctx, bool has_ctx,
                uint32_t repeat, uint32_t data_out)
      : PromiseWorker(env, "switchyard:progTestRun"),
        fd_(fd),
        data_(std::move(data)),
        ctx_(std::move(ctx)),
        has_ctx_(has_ctx),
        repeat_(repeat),
        data_out_(data_out, 0),
        ctx_out_(ctx_.size(), 0) {}

 private:
  void Run() override {
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = data_.data();
    opts.data_size_in = static_cast<uint32_t>(data_.size());
    opts.data_out = data_out_.data();
    opts.data_size_out = static_cast<uint32_t>(data_out_.size());
    if (has_ctx_) {
      opts.ctx_in = ctx_.data();
      opts.ctx_size_in = static_cast<uint32_t>(ctx_.size());
      opts.ctx_out = ctx_out_.data();
      opts.ctx_size_out = static_cast<uint32_t>(ctx_out_.size());
    }
    opts.repeat = static_cast<int>(repeat_);
    int err = bpf_prog_test_run_opts(fd_, &opts);
    if (err != 0) {
      // On ENOSPC the kernel still reports the size it needed.
      std::string detail = -err == ENOSPC ? " (output is " + std::to_string(opts.data_size_out) +
                                                " bytes, dataSizeOut " + std::to_string(data_out_.size()) + ")"
                                          : "";
      throw SysError(-err, "bpf_prog_test_run_opts",
                     "program fd " + std::to_string(fd_) + " with " + std::to_string(data_.size()) + " bytes", detail);
    }
    data_out_.resize(std::min<size_t>(opts.data_size_out, data_out_.size()));
    ctx_out_.resize(std::min<size_t>(opts.ctx_size_out, ctx_out_.size()));
    retval_ = opts.retval;
    duration_ = opts.duration;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("retval", Napi::Number::New(env, retval_));
    out.Set("data", Napi::Buffer<uint8_t>::Copy(env, data_out_.data(), data_out_.size()));
    if (has_ctx_) out.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, ctx_out_.data(), ctx_out_.size()));
    out.Set("durationNs", Napi::Number::New(env, duration_));
    return out;
  }

  int fd_;
  std::vector<uint8_t> data_, ctx_;
  bool has_ctx_;
  uint32_t repeat_;
  std::vector<uint8_t> data_out_, ctx_out_;
  uint32_t retval_ = 0;
  uint32_t duration_ = 0;
};

// progTestRun(progFd, data, opts?: { repeat?, ctx?, dataSizeOut? })
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "progFd");
  std::vector<uint8_t> data = ArgBytes(info, 1, "data");
  uint32_t repeat = 1;
  uint32_t data_out = std::max<uint32_t>(kDefaultDataOut, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> ctx;
  bool has_ctx = false;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    Napi::Object opts = ArgObject(info, 2, "opts");
    Napi::Value v = opts.Get("repeat");
    if (!v.IsUndefined()) repeat = static_cast<uint32_t>(NumberValue(info.Env(), v, "opts.repeat", 1, INT32_MAX));
    v = opts.Get("dataSizeOut");
    if (!v.IsUndefined())
      data_out = static_cast<uint32_t>(NumberValue(info.Env(), v, "opts.dataSizeOut", 1, UINT32_MAX));
    v = opts.Get("ctx");
    if (!v.IsUndefined()) {
      ctx = BytesValue(info.Env(), v, "opts.ctx");
      has_ctx = true;
    }
  }
  return (new TestRunWorker(info.Env(), fd, std::move(data), std::move(ctx), has_ctx, repeat, data_out))->Start();
}

}  // namespace

void InitTestRun(Napi::Env env, Napi::Object exports) {
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
}

}  // namespace sy
