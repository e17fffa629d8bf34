/*
 * delay-relay: a TCP relay that makes a link slow the way `tc netem delay D rate R` would, for
 * kernels that have no netem (emulated clusters in bench/emulated.ts).
 *
 *   delay-relay DELAY_US RATE_BITS_PER_S LISTEN_IP:PORT=TARGET_IP:PORT [...]
 *
 * Every byte read from one side is written to the other no sooner than it would arrive over a
 * link of that one-way delay and rate: each sending host (by IPv4 address) has one egress queue
 * shared by all its connections, as a netem qdisc on its interface would be, so a host sending to
 * three peers at once shares its rate among them. RATE 0 means no cap. Prints "ready" on stdout
 * once every listener is bound. One thread, epoll and a nanosecond timerfd: Node's timers are
 * millisecond-grained, too coarse for a 0.1 ms link, and a relay that spins would take a core
 * from the nodes it connects.
 *
 * Bytes from peers are only queued and copied, never interpreted; a side's queue is capped
 * (reading stops until it drains), so a fast sender cannot grow the relay without bound.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define QUEUE_CAP (8u << 20)
#define MAX_HOSTS 256

enum { KIND_LISTENER, KIND_END, KIND_TIMER };

typedef struct seg {
  struct seg *next;
  uint64_t due;
  size_t len, off;
  char data[];
} seg;

struct conn;

/* One direction of a connection: bytes read from `from` wait in the queue until due. */
typedef struct dir {
  int from, to;
  seg *head, *tail;
  size_t queued;
  int eof, paused;
  uint32_t source; /* the sending host, whose egress the bytes share */
} dir;

typedef struct end {
  int kind;
  struct conn *c;
  int side; /* 0: the accepted client, 1: the target */
} end;

typedef struct conn {
  struct conn *prev, *next;
  int fd[2];
  int connected, closed;
  dir d[2]; /* d[0]: client -> target, d[1]: target -> client */
  end e[2];
} conn;

typedef struct listener {
  int kind;
  int fd;
  struct sockaddr_in target;
} listener;

static uint64_t delay_ns;
static double ns_per_byte;
static int ep, tfd;
static end timer_end = {KIND_TIMER, NULL, 0};
static conn *conns;
static conn *dead; /* closed during this batch of events, freed after it: later events may name them */
static uint64_t armed = UINT64_MAX;
static struct { uint32_t ip; uint64_t busy_until; } hosts[MAX_HOSTS];
static int host_count;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t *egress_of(uint32_t ip) {
  for (int i = 0; i < host_count; i++)
    if (hosts[i].ip == ip) return &hosts[i].busy_until;
  if (host_count == MAX_HOSTS) return &hosts[0].busy_until; /* more hosts than any emulation needs: share one */
  hosts[host_count].ip = ip;
  hosts[host_count].busy_until = 0;
  return &hosts[host_count++].busy_until;
}

static void arm(uint64_t due) {
  if (due >= armed) return;
  armed = due;
  struct itimerspec it = {{0, 0}, {(time_t)(due / 1000000000u), (long)(due % 1000000000u)}};
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

static void close_conn(conn *c) {
  for (int s = 0; s < 2; s++) {
    close(c->fd[s]);
    for (seg *g = c->d[s].head; g;) {
      seg *n = g->next;
      free(g);
      g = n;
    }
    c->d[s].head = c->d[s].tail = NULL;
  }
  if (c->prev) c->prev->next = c->next;
  else conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->closed = 1;
  c->next = dead;
  dead = c;
}

static int pump_in(conn *c, int s);

/* Writes what is due on direction s; returns -1 when the connection was closed. */
static int flush_dir(conn *c, int s, uint64_t now) {
  dir *d = &c->d[s];
  if (!c->connected) return 0;
  while (d->head && d->head->due <= now) {
    seg *g = d->head;
    ssize_t n = send(d->to, g->data + g->off, g->len - g->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0; /* EPOLLOUT (edge) brings us back */
      if (errno == EINTR) continue;
      close_conn(c);
      return -1;
    }
    g->off += (size_t)n;
    d->queued -= (size_t)n;
    if (g->off < g->len) continue;
    d->head = g->next;
    if (!d->head) d->tail = NULL;
    free(g);
  }
  if (d->head) arm(d->head->due);
  else if (d->eof) {
    shutdown(d->to, SHUT_WR);
    dir *o = &c->d[1 - s];
    if (o->eof && !o->head) {
      close_conn(c);
      return -1;
    }
  }
  if (d->paused && d->queued < QUEUE_CAP / 2) {
    d->paused = 0;
    return pump_in(c, s);
  }
  return 0;
}

/* Reads what side s has sent, stamping each chunk with the time it would arrive. */
static int pump_in(conn *c, int s) {
  dir *d = &c->d[s];
  while (!d->eof) {
    if (d->queued >= QUEUE_CAP) {
      d->paused = 1;
      return 0;
    }
    seg *g = malloc(sizeof(seg) + CHUNK);
    if (!g) {
      close_conn(c);
      return -1;
    }
    ssize_t n = recv(d->from, g->data, CHUNK, 0);
    if (n < 0) {
      free(g);
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINTR) continue;
      close_conn(c);
      return -1;
    }
    if (n == 0) {
      free(g);
      d->eof = 1;
      return flush_dir(c, s, now_ns());
    }
    uint64_t now = now_ns();
    uint64_t *busy = egress_of(d->source);
    uint64_t start = *busy > now ? *busy : now;
    uint64_t sent = start + (uint64_t)((double)n * ns_per_byte);
    *busy = sent;
    g->next = NULL;
    g->len = (size_t)n;
    g->off = 0;
    g->due = sent + delay_ns;
    if (d->tail && d->tail->due > g->due) g->due = d->tail->due; /* bytes of one stream keep their order */
    if (d->tail) d->tail->next = g;
    else d->head = g;
    d->tail = g;
    d->queued += (size_t)n;
    arm(g->due);
  }
  return 0;
}

static void watch(int fd, end *e) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = e};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_all(listener *l) {
  for (;;) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    int a = accept4(l->fd, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (a < 0) return;
    int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    conn *c = b < 0 ? NULL : calloc(1, sizeof(conn));
    if (!c) {
      close(a);
      if (b >= 0) close(b);
      continue;
    }
    int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(b, (struct sockaddr *)&l->target, sizeof l->target) < 0 && errno != EINPROGRESS) {
      close(a);
      close(b);
      free(c);
      continue;
    }
    c->fd[0] = a;
    c->fd[1] = b;
    c->d[0] = (dir){.from = a, .to = b, .source = from.sin_addr.s_addr};
    c->d[1] = (dir){.from = b, .to = a, .source = l->target.sin_addr.s_addr};
    c->e[0] = (end){KIND_END, c, 0};
    c->e[1] = (end){KIND_END, c, 1};
    c->next = conns;
    if (conns) conns->prev = c;
    conns = c;
    watch(a, &c->e[0]);
    watch(b, &c->e[1]);
  }
}

static void on_timer(void) {
  uint64_t expirations;
  if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return;
  armed = UINT64_MAX;
  uint64_t now = now_ns();
  for (conn *c = conns, *next; c; c = next) {
    next = c->next;
    if (flush_dir(c, 0, now) < 0) continue;
    flush_dir(c, 1, now);
  }
}

static void on_end(end *e, uint32_t events) {
  conn *c = e->c;
  int s = e->side;
  if (c->closed) return;
  if (s == 1 && !c->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      close_conn(c);
      return;
    }
    c->connected = 1;
  }
  if (!c->connected) {
    if (s == 0 && (events & EPOLLIN)) pump_in(c, 0);
    return;
  }
  uint64_t now = now_ns();
  /* Readable: this side sent bytes (direction s); writable: the other direction may go on. */
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    if (pump_in(c, s) < 0) return;
  if (flush_dir(c, s, now) < 0) return;
  flush_dir(c, 1 - s, now);
}

static int parse_addr(const char *text, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(text, ':');
  if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = 0;
  char *rest;
  long port = strtol(colon + 1, &rest, 10);
  if (*rest || port <= 0 || port > 65535) return -1;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: delay-relay DELAY_US RATE_BITS_PER_S LISTEN_IP:PORT=TARGET_IP:PORT [...]\n");
    return 2;
  }
  double delay_us = atof(argv[1]), rate = atof(argv[2]);
  if (delay_us < 0 || rate < 0) {
    fprintf(stderr, "delay-relay: the delay and the rate must not be negative\n");
    return 2;
  }
  delay_ns = (uint64_t)(delay_us * 1000.0);
  ns_per_byte = rate > 0 ? 8e9 / rate : 0;
  signal(SIGPIPE, SIG_IGN);
  ep = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timer_end};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
  for (int i = 3; i < argc; i++) {
    char spec[160];
    snprintf(spec, sizeof spec, "%s", argv[i]);
    char *eq = strchr(spec, '=');
    listener *l = calloc(1, sizeof(listener));
    struct sockaddr_in at;
    if (!eq || !l) {
      fprintf(stderr, "delay-relay: %s is not LISTEN_IP:PORT=TARGET_IP:PORT\n", argv[i]);
      return 2;
    }
    *eq = 0;
    if (parse_addr(spec, &at) < 0 || parse_addr(eq + 1, &l->target) < 0) {
      fprintf(stderr, "delay-relay: %s is not LISTEN_IP:PORT=TARGET_IP:PORT\n", argv[i]);
      return 2;
    }
    l->kind = KIND_LISTENER;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l->fd, (struct sockaddr *)&at, sizeof at) < 0 || listen(l->fd, 128) < 0) {
      fprintf(stderr, "delay-relay: cannot listen on %s: %s\n", spec, strerror(errno));
      return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &lev);
  }
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      int kind = *(int *)evs[i].data.ptr;
      if (kind == KIND_LISTENER) accept_all(evs[i].data.ptr);
      else if (kind == KIND_TIMER) on_timer();
      else on_end(evs[i].data.ptr, evs[i].events);
    }
    while (dead) {
      conn *c = dead;
      dead = c->next;
      free(c);
    }
  }
}
