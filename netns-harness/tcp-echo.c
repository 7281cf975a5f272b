/*
 * tcp-echo.js as a C program, for the connectivity helpers (netns-harness/connectivity.ts): the same commands,
 * options, output and exit statuses. A Node process costs some 25 ms of CPU to start, this about one; the suite
 * starts a few hundred of them. Compiled on first use with the system's `cc` (echoCommand() in connectivity.ts),
 * which falls back to tcp-echo.js where there is none.
 *
 *   tcp-echo serve --port P [--host H] [--count N] [--whoami]
 *   tcp-echo send --host H --port P --message M [--timeout MS]
 *   tcp-echo udp-serve --port P [--host H] [--whoami]
 *   tcp-echo udp-send --host H --port P --message M [--timeout MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *opt_host, *opt_message = "ping";
static long opt_port = 0, opt_count = -1, opt_timeout = 3000;
static int opt_whoami = 0;

static _Noreturn void fail(const char *msg) {
  fprintf(stderr, "tcp-echo: %s\n", msg);
  exit(1);
}

static _Noreturn void usage(void) {
  fputs("usage: tcp-echo serve|send|udp-serve|udp-send --port P …\n", stderr);
  exit(2);
}

/* The peer's address as text, without the IPv4-mapped prefix a dual-stack socket reports. */
static void plain(const struct sockaddr_storage *sa, char *out, size_t n, int *port) {
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, out, n);
    *port = ntohs(s4->sin_port);
    return;
  }
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
  if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, n);
  else inet_ntop(AF_INET6, &s6->sin6_addr, out, n);
  *port = ntohs(s6->sin6_port);
}

/* `host` (an address or a name) and the port as a socket address; a literal decides the family. */
static socklen_t resolve(const char *host, struct sockaddr_storage *out) {
  struct addrinfo hints = {0}, *res;
  hints.ai_family = AF_UNSPEC;
  char port[8];
  snprintf(port, sizeof port, "%ld", opt_port);
  int e = getaddrinfo(host, port, &hints, &res);
  if (e != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "getaddrinfo %s: %s", host, gai_strerror(e));
    fail(msg);
  }
  socklen_t len = res->ai_addrlen;
  memcpy(out, res->ai_addr, len);
  freeaddrinfo(res);
  return len;
}

/* A socket bound to host:port (`::` or an IPv6 address: dual-stack, as Node's `ipv6Only: false`). */
static int bound(int type, const char *host) {
  struct sockaddr_storage sa;
  socklen_t len = resolve(host, &sa);
  int fd = socket(sa.ss_family, type, 0);
  if (fd < 0) fail(strerror(errno));
  int one = 1, zero = 0;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, (struct sockaddr *)&sa, len) < 0) fail(strerror(errno));
  return fd;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/*
 * Serves connections at once, as Node's server does, in one process: echoes what each sends until it ends, or
 * (--whoami) answers with its address and reads until it ends. With --count N, stops listening once N
 * connections have closed, and exits when the last open one has.
 */
static int serve(void) {
  enum { MAX_CONNS = 1024 };
  static struct pollfd fds[MAX_CONNS + 1];
  static char buf[65536];
  int lfd = bound(SOCK_STREAM, opt_host ? opt_host : "::");
  if (listen(lfd, 128) < 0) fail(strerror(errno));
  printf("listening\n");
  fflush(stdout);
  fds[0] = (struct pollfd){lfd, POLLIN, 0};
  int n = 1;
  long left = opt_count;
  while (fds[0].fd >= 0 || n > 1) {
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      fail(strerror(errno));
    }
    for (int i = n - 1; i >= 1; i--) {
      if (fds[i].revents == 0) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r > 0) {
        if (!opt_whoami) write_all(fds[i].fd, buf, (size_t)r);
        continue;
      }
      // the client ended (or failed): end our side too, and forget it
      shutdown(fds[i].fd, SHUT_WR);
      close(fds[i].fd);
      fds[i] = fds[--n];
      if (left > 0 && --left == 0 && fds[0].fd >= 0) {
        close(fds[0].fd);
        fds[0].fd = -1;
      }
    }
    if (fds[0].fd >= 0 && (fds[0].revents & POLLIN) && n <= MAX_CONNS) {
      struct sockaddr_storage peer;
      socklen_t len = sizeof peer;
      int c = accept(fds[0].fd, (struct sockaddr *)&peer, &len);
      if (c < 0) continue;
      if (opt_whoami) {
        int port;
        char addr[INET6_ADDRSTRLEN];
        plain(&peer, addr, sizeof addr, &port);
        write_all(c, addr, strlen(addr));
      }
      fds[n++] = (struct pollfd){c, POLLIN, 0};
    }
  }
  return 0;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Waits until `fd` has `events` or the deadline passes (then fails: "timed out"). */
static void wait_for(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) fail("timed out");
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return;
    if (r < 0 && errno != EINTR) fail(strerror(errno));
  }
}

static int send_tcp(void) {
  long deadline = now_ms() + opt_timeout;
  struct sockaddr_storage sa;
  socklen_t len = resolve(opt_host ? opt_host : "127.0.0.1", &sa);
  int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) fail(strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, len) < 0 && errno != EINPROGRESS) fail(strerror(errno));
  wait_for(fd, POLLOUT, deadline);
  int err = 0;
  socklen_t elen = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  if (err != 0) fail(strerror(err));
  const char *p = opt_message;
  size_t n = strlen(p);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_for(fd, POLLOUT, deadline);
      continue;
    }
    if (w < 0) fail(strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  shutdown(fd, SHUT_WR);
  // the whole reply, printed once the server has ended
  size_t cap = 4096, got = 0;
  char *reply = malloc(cap);
  for (;;) {
    if (got == cap) reply = realloc(reply, cap *= 2);
    if (reply == NULL) fail("out of memory");
    ssize_t r = recv(fd, reply + got, cap - got, 0);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0) break;
    if (errno == EAGAIN || errno == EINTR) {
      wait_for(fd, POLLIN, deadline);
      continue;
    }
    fail(strerror(errno));
  }
  fwrite(reply, 1, got, stdout);
  return 0;
}

static int udp_serve(void) {
  int fd = bound(SOCK_DGRAM, opt_host ? opt_host : "::");
  printf("listening\n");
  fflush(stdout);
  char buf[65536], from[INET6_ADDRSTRLEN];
  for (;;) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    ssize_t r = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&peer, &len);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(strerror(errno));
    }
    int port;
    plain(&peer, from, sizeof from, &port);
    // the message with its whitespace as `_`, one line per datagram
    printf("recv %s %d ", from, port);
    for (ssize_t i = 0; i < r; i++) putchar(strchr(" \t\n\r\v\f", buf[i]) != NULL && buf[i] != 0 ? '_' : buf[i]);
    putchar('\n');
    fflush(stdout);
    if (opt_whoami) sendto(fd, from, strlen(from), 0, (struct sockaddr *)&peer, len);
    else sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&peer, len);
  }
  return 0;
}

static int udp_send(void) {
  long deadline = now_ms() + opt_timeout;
  struct sockaddr_storage sa;
  socklen_t len = resolve(opt_host ? opt_host : "127.0.0.1", &sa);
  int fd = socket(sa.ss_family, SOCK_DGRAM, 0);
  if (fd < 0) fail(strerror(errno));
  if (sendto(fd, opt_message, strlen(opt_message), 0, (struct sockaddr *)&sa, len) < 0) fail(strerror(errno));
  char buf[65536];
  for (;;) {
    wait_for(fd, POLLIN, deadline);
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r >= 0) {
      fwrite(buf, 1, (size_t)r, stdout);
      return 0;
    }
    if (errno != EINTR) fail(strerror(errno));
  }
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--whoami") == 0) opt_whoami = 1;
    else if (v == NULL) usage();
    else if (strcmp(a, "--host") == 0) opt_host = argv[++i];
    else if (strcmp(a, "--message") == 0) opt_message = argv[++i];
    else if (strcmp(a, "--port") == 0) opt_port = strtol(argv[++i], NULL, 10);
    else if (strcmp(a, "--count") == 0) opt_count = strtol(argv[++i], NULL, 10);
    else if (strcmp(a, "--timeout") == 0) opt_timeout = strtol(argv[++i], NULL, 10);
    else usage();
  }
  if (opt_port <= 0 || opt_port > 65535) {
    fputs("tcp-echo: --port must be 1..65535\n", stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[1], "serve") == 0) return serve();
  if (strcmp(argv[1], "send") == 0) return send_tcp();
  if (strcmp(argv[1], "udp-serve") == 0) return udp_serve();
  if (strcmp(argv[1], "udp-send") == 0) return udp_send();
  usage();
}
