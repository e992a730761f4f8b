/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sctp.c: the rig's SCTP backend and client (Node has no SCTP sockets).
 * Built on demand by src/rig/sctp.ts with the host's C compiler; speaks the
 * rig's line protocol (src/rig/protocol.ts) over one-to-one SCTP sockets.
 *
 *   sctp server NAME PORT[,PORT...]
 *     Listens on [::] (dual-stack) on every port, prints "ready"; answers
 *     each association with one line "NAME CLIENT LOCAL\n" and closes it.
 *   sctp client IP PORT COUNT TIMEOUT_MS
 *     COUNT associations one after the other; one result line each:
 *       ok<TAB>MS<TAB>REPLY<TAB>LOCAL<TAB>LINE   (REPLY: the connected peer)
 *       err<TAB>MS<TAB>CODE                      (ECONNREFUSED, timeout, ...)
 *     Exits 0 unless its arguments are wrong.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

#define MAX_PORTS 16

static void format_ep(const struct sockaddr_storage *ss, char *out,
                      size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    port = ntohs(a->sin_port);
    snprintf(out, len, "%s:%u", ip, port);
    return;
  }
  const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
  port = ntohs(a->sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
    inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, port);
  } else {
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    snprintf(out, len, "[%s]:%u", ip, port);
  }
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int server(const char *name, char *ports) {
  struct pollfd fds[MAX_PORTS];
  int n = 0;
  for (char *p = strtok(ports, ","); p && n < MAX_PORTS;
       p = strtok(NULL, ",")) {
    int fd = socket(AF_INET6, SOCK_STREAM, IPPROTO_SCTP);
    if (fd < 0) {
      fprintf(stderr, "sctp: socket: %s\n", strerror(errno));
      return 1;
    }
    int zero = 0, one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_port = htons(atoi(p))};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0) {
      fprintf(stderr, "sctp: port %s: %s\n", p, strerror(errno));
      return 1;
    }
    fds[n].fd = fd;
    fds[n].events = POLLIN;
    n++;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR)
        continue;
      return 1;
    }
    for (int i = 0; i < n; i++) {
      if (!(fds[i].revents & POLLIN))
        continue;
      struct sockaddr_storage peer, local;
      socklen_t pl = sizeof(peer), ll = sizeof(local);
      int c = accept(fds[i].fd, (struct sockaddr *)&peer, &pl);
      if (c < 0)
        continue;
      getsockname(c, (struct sockaddr *)&local, &ll);
      char pe[80], le[80], line[256];
      format_ep(&peer, pe, sizeof(pe));
      format_ep(&local, le, sizeof(le));
      int len = snprintf(line, sizeof(line), "%s %s %s\n", name, pe, le);
      if (send(c, line, len, MSG_NOSIGNAL) < 0)
        fprintf(stderr, "sctp: send: %s\n", strerror(errno));
      close(c);
    }
  }
}

static const char *errname(int e) {
  switch (e) {
  case ECONNREFUSED:
    return "ECONNREFUSED";
  case ECONNRESET:
    return "ECONNRESET";
  case EHOSTUNREACH:
    return "EHOSTUNREACH";
  case ENETUNREACH:
    return "ENETUNREACH";
  case ETIMEDOUT:
  case EAGAIN:
    return "timeout";
  case EPROTONOSUPPORT:
    return "EPROTONOSUPPORT";
  default:
    return strerror(e);
  }
}

/* One association: connect, read one line. Returns 0 and fills out/line, or an
 * errno. */
static int one_request(const char *ip, int port, int timeout_ms, char *reply,
                       char *local, char *line, size_t linelen) {
  struct sockaddr_storage ss = {0};
  socklen_t sl;
  int family;
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1)
      return EINVAL;
    sl = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1)
      return EINVAL;
    sl = sizeof(*a);
  }
  int fd = socket(family, SOCK_STREAM, IPPROTO_SCTP);
  if (fd < 0)
    return errno;
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int err = 0;
  long deadline = now_ms() + timeout_ms;
  if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
    err = errno;
    goto out;
  }
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, timeout_ms) <= 0) {
    err = ETIMEDOUT;
    goto out;
  }
  socklen_t el = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err)
    goto out;
  struct sockaddr_storage peer, me;
  socklen_t pl = sizeof(peer), ml = sizeof(me);
  getpeername(fd, (struct sockaddr *)&peer, &pl);
  getsockname(fd, (struct sockaddr *)&me, &ml);
  format_ep(&peer, reply, 80);
  format_ep(&me, local, 80);
  size_t got = 0;
  while (got < linelen - 1) {
    long left = deadline - now_ms();
    if (left <= 0) {
      err = ETIMEDOUT;
      goto out;
    }
    p.events = POLLIN;
    if (poll(&p, 1, (int)left) <= 0) {
      err = ETIMEDOUT;
      goto out;
    }
    ssize_t r = recv(fd, line + got, linelen - 1 - got, 0);
    if (r < 0) {
      if (errno == EAGAIN)
        continue;
      err = errno;
      goto out;
    }
    if (r == 0)
      break;
    got += r;
    if (memchr(line, '\n', got))
      break;
  }
  line[got] = 0;
  char *nl = strchr(line, '\n');
  if (nl)
    *nl = 0;
out:
  close(fd);
  return err;
}

static int client(const char *ip, int port, int count, int timeout_ms) {
  for (int i = 0; i < count; i++) {
    char reply[80] = "", local[80] = "", line[256] = "";
    long t0 = now_ms();
    int err =
        one_request(ip, port, timeout_ms, reply, local, line, sizeof(line));
    long ms = now_ms() - t0;
    if (err)
      printf("err\t%ld\t%s\n", ms, errname(err));
    else
      printf("ok\t%ld\t%s\t%s\t%s\n", ms, reply, local, line);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "server") == 0)
    return server(argv[2], argv[3]);
  if (argc == 6 && strcmp(argv[1], "client") == 0)
    return client(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: sctp server NAME PORT[,PORT] | sctp client IP PORT "
                  "COUNT TIMEOUT_MS\n");
  return 2;
}
