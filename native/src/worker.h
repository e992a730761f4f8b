// worker.h: PromiseWorker, the one way slow native work leaves the main thread.
//
// Subclasses copy their inputs in the constructor (main thread), do the
// syscalls in Run() (worker thread, may throw SysError) and build the JS value
// in Result() (main thread). The promise rejects with the SysError as a JS
// Error carrying errno/code/syscall.
#pragma once

#include <napi.h>

#include <new>

#include "errors.h"

namespace sy {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Queues the work and returns its promise; the worker deletes itself.
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() override {
    try {
      Run();
    } catch (const SysError& e) {
      Fail(e);
    } catch (const std::bad_alloc&) {
      Fail(SysError(ENOMEM, "malloc", "native worker"));
    } catch (const std::exception& e) {
      Fail(SysError(EIO, "native worker", e.what()));
    }
  }

  void Fail(const SysError& e) {
    error_ = e;
    SetError(e.message());
  }

  void OnOK() override {
    try {
      deferred_.Resolve(Result(Env()));
    } catch (const SysError& e) {
      deferred_.Reject(e.ToJs(Env()).Value());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error&) override { deferred_.Reject(error_.ToJs(Env()).Value()); }

  Napi::Promise::Deferred deferred_;
  SysError error_{EIO, "native", "worker"};
};

}  // namespace sy
