/*
 * netplumb-forward: the CNI plugin executable a runtime execs. It knows nothing about networking: it sends the
 * invocation (environment and stdin) to netplumbd over its Unix socket as one HTTP/1.1 request and relays the
 * answer (stdout, stderr, exit status) exactly; when no agent answers it execs the Node plugin beside it.
 * The wire format is described in lib/agent/cni-endpoint.ts; the behaviour in docs/AGENT.md.
 *
 * The plugin is chosen by the name it was run as (argv[0], e.g. netplumb-bridge); the Node plugin is
 * <directory of this executable>/<name>.cjs.
 *
 *   no socket, connect refused or denied, nothing listening   → exec the Node plugin (stdin untouched)
 *   the agent answers without X-Netplumb-Exit-Status          → exec the Node plugin with the stdin read
 *     (421: the caller is in other namespaces; 404, 413, 503: the agent ran nothing)
 *   the agent answers with it                                  → relay stdout, stderr and the exit status
 *   the connection ends before a whole answer                  → CNI error 11 (try again later)
 *
 * NETPLUMB_AGENT_SOCKET names another socket; set and empty, it skips the agent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/netplumb/netplumbd.sock"
/* lib/agent/cni-endpoint.ts MAX_CARRIED_STDIN_BYTES: past the plugins' own 1 MiB, so the answer is theirs */
#define MAX_STDIN ((size_t)16 * 1024 * 1024 + 1)
#define MAX_HEAD (64 * 1024)
#define MAX_BODY ((size_t)64 * 1024 * 1024)
#define ANSWER_TIMEOUT_S 600

extern char **environ;

static const char *plugin_name;
static char node_plugin[PATH_MAX];

struct buf {
  char *data;
  size_t len, cap;
};

static void die_oom(void) {
  static const char m[] = "netplumb-forward: out of memory\n";
  (void)!write(2, m, sizeof m - 1);
  _exit(1);
}

static void put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) die_oom();
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

/* Writes all of p, through partial writes and EINTR. 0 on success, -1 with errno. */
static int write_all(int fd, const char *p, size_t n, int sock) {
  while (n > 0) {
    ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, 1000);
        continue;
      }
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads stdin (at most MAX_STDIN bytes), through partial reads, EINTR and a non-blocking descriptor. */
static void read_stdin(struct buf *b) {
  char chunk[65536];
  while (b->len < MAX_STDIN) {
    size_t want = MAX_STDIN - b->len < sizeof chunk ? MAX_STDIN - b->len : sizeof chunk;
    ssize_t r = read(0, chunk, want);
    if (r == 0) return;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {0, POLLIN, 0};
        poll(&pf, 1, 1000);
        continue;
      }
      return; /* closed or unreadable stdin reads as empty, as the Node plugin's readStdin does */
    }
    put(b, chunk, (size_t)r);
  }
}

/* The Node plugin, with stdin as it is (nothing read yet) or, when `consumed`, the bytes already read. */
static void exec_node(char **argv, const struct buf *consumed) {
  if (consumed) {
    int m = memfd_create("netplumb-stdin", MFD_CLOEXEC);
    if (m < 0 || write_all(m, consumed->data ? consumed->data : "", consumed->len, 0) < 0 || lseek(m, 0, SEEK_SET) < 0 || dup2(m, 0) < 0) {
      fprintf(stderr, "netplumb-forward: cannot pass stdin on to %s: %s\n", node_plugin, strerror(errno));
      _exit(1);
    }
    close(m);
  }
  argv[0] = node_plugin;
  execv(node_plugin, argv);
  fprintf(stderr, "netplumb-forward: cannot run %s: %s\n", node_plugin, strerror(errno));
  printf("{\n    \"cniVersion\": \"1.1.0\",\n    \"code\": 999,\n    \"msg\": \"netplumb-forward: cannot run %s\"\n}\n", node_plugin);
  fflush(stdout);
  _exit(1);
}

/* The configuration's cniVersion when it is one the plugins accept (for the error 11 document), else 1.1.0. */
static const char *cni_version(const struct buf *in) {
  static const char *known[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  const char *p = in->data ? memmem(in->data, in->len, "\"cniVersion\"", 12) : NULL;
  if (!p) return "1.1.0";
  const char *end = in->data + in->len;
  p += 12;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')) p++;
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
    size_t n = strlen(known[i]);
    if (end - p > (long)n + 1 && p[0] == '"' && memcmp(p + 1, known[i], n) == 0 && p[n + 1] == '"') return known[i];
  }
  return "1.1.0";
}

static void try_again_later(const struct buf *in, const char *why) {
  fprintf(stderr, "netplumb-forward: %s: the agent ended the connection before answering\n", why);
  printf("{\n    \"cniVersion\": \"%s\",\n    \"code\": 11,\n    \"msg\": \"netplumbd ended the connection before answering (%s); try again\"\n}\n", cni_version(in), why);
  fflush(stdout);
  _exit(1);
}

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes base64 in place; returns the decoded length. */
static size_t b64decode(char *s, size_t n) {
  size_t out = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) continue;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      s[out++] = (char)((acc >> bits) & 0xff);
    }
  }
  return out;
}

/* The value of header `name` in the head (lines after the status line), or NULL; *len set to its length. */
static char *header(char *head, const char *name, size_t *len) {
  size_t n = strlen(name);
  for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
      char *v = line + n + 1;
      while (*v == ' ' || *v == '\t') v++;
      char *e = strstr(v, "\r\n");
      *len = e ? (size_t)(e - v) : strlen(v);
      return v;
    }
  }
  return NULL;
}

static void plugin_paths(const char *argv0) {
  const char *slash = strrchr(argv0, '/');
  plugin_name = slash ? slash + 1 : argv0;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    /* no /proc: the directory it was run from */
    n = slash ? slash - argv0 : 1;
    memcpy(exe, slash ? argv0 : ".", (size_t)n);
    exe[n] = '\0';
  } else {
    exe[n] = '\0';
    char *e = strrchr(exe, '/');
    if (e) *e = '\0';
  }
  if (snprintf(node_plugin, sizeof node_plugin, "%s/%s.cjs", exe, plugin_name) >= (int)sizeof node_plugin) {
    fprintf(stderr, "netplumb-forward: path too long\n");
    _exit(1);
  }
}

int main(int argc, char **argv) {
  (void)argc;
  plugin_paths(argv[0] ? argv[0] : "netplumb-forward");
  if (strncmp(plugin_name, "netplumb-", 9) != 0 || strcmp(plugin_name, "netplumb-forward") == 0 || strchr(plugin_name, '.')) {
    fprintf(stderr, "netplumb-forward: run me as a netplumb plugin (a link named netplumb-bridge, ...), not as %s\n", plugin_name);
    return 1;
  }
  const char *path = getenv("NETPLUMB_AGENT_SOCKET");
  if (!path) path = DEFAULT_SOCKET;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path) exec_node(argv, NULL);
  strcpy(sa.sun_path, path);

  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) exec_node(argv, NULL);
  /* connect(2) on a Unix socket whose backlog is full waits up to the send timeout, then EAGAIN */
  struct timeval tv = {5, 0};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(s);
    exec_node(argv, NULL);
  }
  tv.tv_sec = ANSWER_TIMEOUT_S;
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  struct buf in = {0}, env = {0}, req = {0};
  read_stdin(&in);
  for (char **e = environ; *e; e++) put(&env, *e, strlen(*e) + 1);
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "POST /v1/cni/%s HTTP/1.1\r\nHost: netplumb\r\nContent-Type: application/octet-stream\r\n"
                    "X-Netplumb-Env-Length: %zu\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                    plugin_name, env.len, env.len + in.len);
  put(&req, head, (size_t)hn);
  put(&req, env.data ? env.data : "", env.len);
  /* a failed send still reads what the agent answered before closing (an early 413, say) */
  int sent = write_all(s, req.data, req.len, 1) == 0 && write_all(s, in.data ? in.data : "", in.len, 1) == 0;
  /* no shutdown(SHUT_WR): Node's HTTP server takes a half-closed request as an aborted one */

  struct buf ans = {0};
  char chunk[65536];
  char *body = NULL;
  for (;;) {
    ssize_t r = read(s, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) try_again_later(&in, "no answer in time");
    if (r <= 0) break;
    put(&ans, chunk, (size_t)r);
    if (!body && ans.len > 3) {
      char *e = memmem(ans.data, ans.len, "\r\n\r\n", 4);
      if (e) body = e; /* offset fixed below: realloc may move the buffer */
      else if (ans.len > MAX_HEAD) try_again_later(&in, "answer head too long");
    }
    if (ans.len > MAX_HEAD + MAX_BODY) try_again_later(&in, "answer too long");
    if (body) {
      size_t off = (size_t)((char *)memmem(ans.data, ans.len, "\r\n\r\n", 4) - ans.data) + 4;
      char save = ans.data[off - 2];
      ans.data[off - 2] = '\0';
      size_t vl;
      char *cl = header(ans.data, "Content-Length", &vl);
      ans.data[off - 2] = save;
      if (cl && ans.len - off >= strtoull(cl, NULL, 10)) break;
    }
  }
  close(s);
  char *end = ans.data ? memmem(ans.data, ans.len, "\r\n\r\n", 4) : NULL;
  if (!end) try_again_later(&in, sent ? "no answer" : "request not sent");
  size_t off = (size_t)(end - ans.data) + 4;
  end[2] = '\0'; /* the head is a C string from here on */
  size_t vl;
  char *cl = header(ans.data, "Content-Length", &vl);
  if (!cl) try_again_later(&in, "answer without Content-Length");
  size_t blen = strtoull(cl, NULL, 10);
  if (ans.len - off < blen) try_again_later(&in, "answer cut short");
  char *status = header(ans.data, "X-Netplumb-Exit-Status", &vl);
  if (!status) exec_node(argv, &in); /* the agent ran nothing: run the plugin here */
  int code = atoi(status);
  char *err = header(ans.data, "X-Netplumb-Stderr", &vl);
  if (err) {
    size_t n = b64decode(err, vl);
    write_all(2, err, n, 0);
  }
  if (write_all(1, ans.data + off, blen, 0) < 0) return 1;
  return code;
}
