// libbpf_log.h: capture of libbpf's log for the error messages.
//
// libbpf reports details (the verifier log of a program that failed to load,
// the kernel's extended ack of a failed tc request) only through its print
// callback, which is process-wide. The callback writes into the LogCapture
// active on the calling thread, so concurrent workers do not mix their logs;
// with no capture active, warnings go to stderr as libbpf's default does.
#pragma once

#include <string>

namespace sy {

void InstallLibbpfPrint();

class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  void Append(const std::string& text);
  // Forgets what was logged so far (after a failure that was tolerated).
  void Clear() { buf_.clear(); }
  // "" when nothing was logged, else "\n" + the last max_bytes of the log,
  // ready to append to an error message.
  std::string Detail(size_t max_bytes = 4096) const;

 private:
  std::string buf_;
  LogCapture* prev_;
};

}  // namespace sy
