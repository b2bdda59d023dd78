// connbench: new-TCP-connection rate and latency of short requests.
//   connbench IP PORT SECONDS CONCURRENCY [SOURCE_IP]
// Keeps CONCURRENCY non-blocking connections in flight (one epoll loop, one thread). Each
// connection: connect, send a small HTTP/1.0 request, read until the server closes, close.
// Latency = connect() call to EOF. Prints one JSON line:
//   {"conns":N,"errors":E,"seconds":S,"rate":R,"p50_us":X,"p90_us":Y,"p99_us":Z,"first_error":"..."}
// The server closes first, so the client never holds TIME_WAIT sockets (no port exhaustion).
// SOURCE_IP: bind to it (port chosen at connect). Two targets that reach the same server
// sockets by different paths (a ClusterIP through DNAT, and the pod IP directly as the BPF
// socket LB does) must not share a client address: their TCP timestamp offsets differ (keyed
// on the address connect() was given), so a SYN reusing a port the other path left in the
// server's TIME_WAIT fails PAWS and stalls; that measured ~12 ms p99 stalls, not the rules.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQ[] = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";

struct conn {
  int fd;
  int sent;
  uint64_t start_ns;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static struct sockaddr_in dst, src;
static int bind_src = 0;
static int ep;
static char first_error[128] = "";
static uint64_t errors = 0;

static void note_error(const char *what, int err) {
  errors++;
  if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", what, strerror(err));
}

static int open_conn(struct conn *c) {
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { note_error("socket", errno); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_src) {
      // the port is picked at connect(), against the destination, as without bind()
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { note_error("bind", errno); close(fd); return -1; }
    }
    c->fd = fd;
    c->sent = 0;
    c->start_ns = now_ns();
    int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
      note_error("connect", errno);
      close(fd);
      if (errors > 100000) return -1;
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
  }
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: connbench IP PORT SECONDS CONCURRENCY [SOURCE_IP]\n");
    return 2;
  }
  if (argc == 6) {
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[5], &src.sin_addr) != 1) { fprintf(stderr, "bad source IP\n"); return 2; }
    bind_src = 1;
  }
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) { fprintf(stderr, "bad IP\n"); return 2; }
  double seconds = atof(argv[3]);
  int conc = atoi(argv[4]);
  if (conc < 1) conc = 1;

  size_t cap = 1 << 20, n = 0;
  uint32_t *lat = malloc(cap * sizeof *lat);
  struct conn *conns = calloc((size_t)conc, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!lat || !conns || ep < 0) { perror("setup"); return 1; }

  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < conc; i++) if (open_conn(&conns[i]) < 0) return 1;

  struct epoll_event evs[256];
  char buf[4096];
  int active = conc;
  int stopping = 0;
  while (active > 0) {
    int k = epoll_wait(ep, evs, 256, 100);
    uint64_t now = now_ns();
    if (now >= end) stopping = 1;
    for (int i = 0; i < k; i++) {
      struct conn *c = evs[i].data.ptr;
      int done = 0, failed = 0;
      if (!c->sent && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { note_error("connect", err); failed = 1; }
        else {
          ssize_t w = send(c->fd, REQ, sizeof REQ - 1, MSG_NOSIGNAL);
          if (w != (ssize_t)(sizeof REQ - 1)) { note_error("send", errno); failed = 1; }
          else {
            c->sent = 1;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
          }
        }
      }
      if (!failed && c->sent && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        for (;;) {
          ssize_t r = recv(c->fd, buf, sizeof buf, 0);
          if (r > 0) continue;
          if (r == 0) { done = 1; break; }
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          note_error("recv", errno);
          failed = 1;
          break;
        }
      }
      if (done || failed) {
        uint64_t t = now_ns();
        if (done) {
          if (n == cap) { cap *= 2; lat = realloc(lat, cap * sizeof *lat); if (!lat) { perror("realloc"); return 1; } }
          uint64_t us = (t - c->start_ns) / 1000;
          lat[n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (stopping || t >= end) active--;
        else if (open_conn(c) < 0) active--;
      }
    }
    if (stopping && k == 0) break;  // stragglers after the deadline: give up on them
    if (now > end + 2000000000ull) break;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  qsort(lat, n, sizeof *lat, cmp_u32);
#define Q(p) (n ? lat[(size_t)((p) * (double)(n - 1))] : 0)
  printf("{\"conns\":%zu,\"errors\":%llu,\"seconds\":%.3f,\"rate\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"first_error\":\"%s\"}\n",
         n, (unsigned long long)errors, secs, (double)n / secs, Q(0.50), Q(0.90), Q(0.99), first_error);
  return 0;
}
