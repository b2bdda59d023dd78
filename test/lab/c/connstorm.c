// connstorm: many fresh TCP connections in flight, each judged. For the make-before-break test
// (test/datapath/make-before-break.datapath.test.ts): a connection either completes (the server
// answers and closes), is refused (ECONNREFUSED: the packet left un-NATed and hit nftproxy's
// reject), fails otherwise, or gets no answer within TIMEOUT_MS (dropped). Prints one JSON line:
//   {"conns":N,"refused":R,"timeouts":T,"errors":E,"seconds":S,"first_error":"..."}
//   connstorm IP PORT SECONDS CONCURRENCY TIMEOUT_MS [SOURCE_IP]
//   connstorm serve PORT        the server: accept, write "ok", reset (v4 and v6)
//   connstorm udpflood IP PORT SECONDS SRC_NET
//                               one UDP datagram per fresh flow, as fast as it goes: a raw socket
//                               writes each from another source (SRC_NET.x.y:port, SRC_NET an
//                               IPv4 /16 such as 10.181): every datagram is a new conntrack flow
//                               and takes the NAT path once. Prints {"sent":N,"seconds":S}
// SIGTERM ends the run early: connections in flight finish (or time out), then the line is printed.
// The server answers and resets (SO_LINGER 0): neither side keeps TIME_WAIT. At thousands of
// connections per second the ports wrap within a minute, and behind a masquerade (fully-random
// ports) a reused port met the server's TIME_WAIT with an unrelated TCP timestamp: PAWS
// dropped the SYN (nstat TcpExtPAWSTimewait) and it looked like a lost connection.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn { int fd; int got; uint64_t start_ns; };

static struct sockaddr_storage dst, src;
static socklen_t dst_len, src_len;
static int bind_src = 0, ep;
static uint64_t refused = 0, timeouts = 0, errors = 0;
static char first_error[128] = "";
static volatile sig_atomic_t stop_now = 0;
static void on_term(int sig) { (void)sig; stop_now = 1; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void failed(const char *what, int err) {
  if (err == ECONNREFUSED) refused++; else errors++;
  if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", what, strerror(err));
}

static int parse(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) { a4->sin_family = AF_INET; a4->sin_port = htons((uint16_t)port); *len = sizeof *a4; return 0; }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) { a6->sin6_family = AF_INET6; a6->sin6_port = htons((uint16_t)port); *len = sizeof *a6; return 0; }
  return -1;
}

static int open_conn(struct conn *c) {
  for (int tries = 0; tries < 1000; tries++) {
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { failed("socket", errno); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_src) {
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      if (bind(fd, (struct sockaddr *)&src, src_len) < 0) { failed("bind", errno); close(fd); return -1; }
    }
    c->fd = fd;
    c->got = 0;
    c->start_ns = now_ns();
    if (connect(fd, (struct sockaddr *)&dst, dst_len) < 0 && errno != EINPROGRESS) { failed("connect", errno); close(fd); continue; }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
  }
  return -1;
}

static int serve(int port) {
  int ls = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), zero = 0, one = 1;
  setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("listen"); return 1; }
  fprintf(stderr, "listening on %d\n", port);
  for (;;) {
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ssize_t w = write(fd, "ok", 2);
    (void)w;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
  }
}

#include <netinet/ip.h>
#include <netinet/udp.h>
static int udpflood(const char *ip, int port, double seconds, const char *srcnet) {
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("raw socket"); return 1; }
  struct sockaddr_in d = {.sin_family = AF_INET};
  unsigned a, b;
  if (inet_pton(AF_INET, ip, &d.sin_addr) != 1 || sscanf(srcnet, "%u.%u", &a, &b) != 2) { fprintf(stderr, "bad address\n"); return 2; }
  unsigned char pkt[sizeof(struct iphdr) + sizeof(struct udphdr) + 4];
  memset(pkt, 0, sizeof pkt);
  struct iphdr *h = (struct iphdr *)pkt;
  struct udphdr *u = (struct udphdr *)(pkt + sizeof *h);
  h->version = 4; h->ihl = 5; h->ttl = 64; h->protocol = IPPROTO_UDP;
  h->tot_len = htons(sizeof pkt); h->daddr = d.sin_addr.s_addr;
  u->dest = htons((uint16_t)port); u->len = htons(sizeof *u + 4);
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), sent = 0;
  signal(SIGTERM, on_term);
  for (uint32_t i = 0; !stop_now && (i & 1023 || now_ns() < end); i++) {
    // 2^16 sources x 2^14 ports before a flow repeats
    uint32_t host = i & 0xffff, sport = 1024 + ((i >> 16) & 0x3fff);
    h->saddr = htonl((a << 24) | (b << 16) | host);
    h->id = htons((uint16_t)i);
    u->source = htons((uint16_t)sport);
    if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&d, sizeof d) == (ssize_t)sizeof pkt) sent++;
  }
  printf("{\"sent\":%llu,\"seconds\":%.3f}\n", (unsigned long long)sent, (double)(now_ns() - t0) / 1e9);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
  if (argc == 6 && strcmp(argv[1], "udpflood") == 0) return udpflood(argv[2], atoi(argv[3]), atof(argv[4]), argv[5]);
  if (argc != 6 && argc != 7) { fprintf(stderr, "usage: connstorm IP PORT SECONDS CONCURRENCY TIMEOUT_MS [SOURCE_IP]\n"); return 2; }
  if (parse(argv[1], atoi(argv[2]), &dst, &dst_len) < 0) { fprintf(stderr, "bad IP\n"); return 2; }
  if (argc == 7) { if (parse(argv[6], 0, &src, &src_len) < 0) { fprintf(stderr, "bad source IP\n"); return 2; } bind_src = 1; }
  double seconds = atof(argv[3]);
  int conc = atoi(argv[4]);
  uint64_t timeout_ns = (uint64_t)atoi(argv[5]) * 1000000ull;
  if (conc < 1) conc = 1;
  struct conn *conns = calloc((size_t)conc, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  signal(SIGTERM, on_term);
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), done_n = 0;
  for (int i = 0; i < conc; i++) if (open_conn(&conns[i]) < 0) return 1;
  int active = conc;
  struct epoll_event evs[256];
  char buf[512];
  uint64_t last_sweep = t0;
  while (active > 0) {
    int k = epoll_wait(ep, evs, 256, 20);
    if (stop_now) end = 0;
    uint64_t now = now_ns();
    for (int i = 0; i < k; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      int err = 0, finished = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err && err != ECONNRESET) { failed("connect", err); finished = 1; }
      else {
        // the answer and the server's reset can come in one event: read what arrived first
        for (;;) {
          ssize_t r = recv(c->fd, buf, sizeof buf, 0);
          if (r > 0) { c->got += (int)r; continue; }
          int e = r < 0 ? errno : 0;
          if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK) && !err) break;
          if (c->got > 0) { done_n++; finished = 1; break; }
          failed("recv", r == 0 ? ECONNRESET : (err ? err : e));
          finished = 1;
          break;
        }
      }
      if (finished) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        if (now >= end || open_conn(c) < 0) active--;
      }
    }
    // A connection with no answer within the timeout is counted as dropped and replaced.
    now = now_ns(); // connections opened above started after the `now` of the wait
    if (now - last_sweep > 10000000ull) {
      last_sweep = now;
      for (int i = 0; i < conc; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0 || c->start_ns + timeout_ns > now) continue;
        timeouts++;
        if (!first_error[0]) snprintf(first_error, sizeof first_error, "no answer within %s ms", argv[5]);
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        if (now >= end || open_conn(c) < 0) active--;
      }
    }
  }
  printf("{\"conns\":%llu,\"refused\":%llu,\"timeouts\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"first_error\":\"%s\"}\n",
         (unsigned long long)done_n, (unsigned long long)refused, (unsigned long long)timeouts, (unsigned long long)errors, (double)(now_ns() - t0) / 1e9, first_error);
  return 0;
}
