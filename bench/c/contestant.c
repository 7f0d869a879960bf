/* Benchmark contestant: our client through the C ABI (include/supa_realtime.h), linked
 * statically. Usage: contestant <scenario> <url> <key> <name> <n>  (see bench/src/main.rs).
 * Callbacks get the payload as JSON text; like a C application they read what they need from
 * it (the latency scenarios pull the "t" number out with strtoull) without building a tree. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "supa_realtime.h"

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}
static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static void die(const char *what, supa_result r) {
  fprintf(stderr, "c contestant: %s: %s (%s)\n", what, supa_result_name(r), supa_last_error_message());
  exit(1);
}
#define CHECK(call) do { supa_result r_ = (call); if (r_ != SUPA_OK) die(#call, r_); } while (0)

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t n, count, subscribed, failed;
  double t0, c0, t1, c1;
  size_t k1; /* deliveries up to the reading t1 */
  uint64_t *lat;
} state;

enum { CLOCK_EVERY = 1024 };

static state st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void signal_done(void) {
  pthread_mutex_lock(&st.mu);
  pthread_cond_signal(&st.cv);
  pthread_mutex_unlock(&st.mu);
}

static uint64_t field_u64(const supa_event *ev, const char *key) {
  size_t len = 0;
  const char *json = supa_event_payload_json(ev, &len);
  const char *p = json ? memmem(json, len, key, strlen(key)) : NULL;
  return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void on_throughput(void *ud, const supa_event *ev) {
  (void)ud;
  size_t len = 0;
  const char *json = supa_event_payload_json(ev, &len);
  if (!json || len == 0) return;
  size_t k = __atomic_add_fetch(&st.count, 1, __ATOMIC_RELAXED);
  /* The clock is read at the first delivery, every CLOCK_EVERY-th and the N-th, not per event:
   * the raw limit reads it twice per run, and a read per event is about 3 % of a contestant's
   * CPU. A run with drops ends at its last reading, and counts the deliveries up to it. */
  if (k == 1) { st.t0 = mono(); st.c0 = cpu(); }
  if (k == st.n || k % CLOCK_EVERY == 0) { st.t1 = mono(); st.k1 = k; }
  if (k == st.n) { st.c1 = cpu(); signal_done(); }
}

static void on_latency(void *ud, const supa_event *ev) {
  (void)ud;
  uint64_t sent = field_u64(ev, "\"t\":");
  size_t i = __atomic_load_n(&st.count, __ATOMIC_RELAXED);
  if (i < st.n) { st.lat[i] = now_us() - sent; __atomic_store_n(&st.count, i + 1, __ATOMIC_RELEASE); }
  if (i + 1 == st.n) signal_done();
}

static void on_change(void *ud, const supa_event *ev) {
  (void)ud;
  size_t len = 0;
  const char *json = supa_event_change_new_json(ev, &len);
  const char *p = json ? memmem(json, len, "\"t_us\":", 7) : NULL;
  uint64_t sent = p ? strtoull(p + 7, NULL, 10) : 0;
  size_t i = __atomic_load_n(&st.count, __ATOMIC_RELAXED);
  if (i < st.n) { st.lat[i] = now_us() - sent; __atomic_store_n(&st.count, i + 1, __ATOMIC_RELEASE); }
  if (i + 1 == st.n) signal_done();
}

static void on_status(void *ud, const supa_event *ev) {
  (void)ud;
  if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS) return;
  pthread_mutex_lock(&st.mu);
  if (supa_event_subscribe_status(ev) == SUPA_STATUS_SUBSCRIBED) st.subscribed++;
  else st.failed++;
  pthread_cond_signal(&st.cv);
  pthread_mutex_unlock(&st.mu);
}

/* Waits until pred() or the deadline (seconds); returns pred(). */
static int wait_until(int (*pred)(void), double secs) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += (time_t)secs;
  pthread_mutex_lock(&st.mu);
  while (!pred()) {
    if (pthread_cond_timedwait(&st.cv, &st.mu, &dl) != 0) break;
  }
  int ok = pred();
  pthread_mutex_unlock(&st.mu);
  return ok;
}
static int all_received(void) { return __atomic_load_n(&st.count, __ATOMIC_RELAXED) >= st.n; }
static int all_joined(void) { return st.subscribed + st.failed >= st.n; }

static supa_client *new_client(const char *url, const char *key) {
  supa_options *o = NULL;
  supa_client *c = NULL;
  CHECK(supa_options_new(url, key, &o));
  CHECK(supa_client_new(o, &c));
  supa_options_free(o);
  return c;
}

static void print_lat(void) {
  printf("RESULT {\"lat_us\":[");
  for (size_t i = 0; i < st.count; i++) printf("%s%llu", i ? "," : "", (unsigned long long)st.lat[i]);
  printf("]}\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s <scenario> <url> <key> <name> <n>\n", argv[0]); return 2; }
  const char *scenario = argv[1], *url = argv[2], *key = argv[3], *name = argv[4];
  st.n = strtoull(argv[5], NULL, 10);
  char topic[256];

  if (!strcmp(scenario, "throughput")) {
    supa_client *c = new_client(url, key);
    supa_channel *ch = NULL;
    CHECK(supa_client_channel(c, name, NULL, &ch));
    CHECK(supa_channel_on_broadcast(ch, "e", on_throughput, NULL, NULL, NULL));
    CHECK(supa_channel_subscribe_blocking(ch, 30000));
    /* Done at N, or when what arrived plus what the queue dropped accounts for N. */
    double deadline = mono() + 120;
    supa_metrics m = {.struct_size = sizeof(supa_metrics)};
    while (mono() < deadline) {
      if (wait_until(all_received, 1)) break;
      supa_client_metrics(c, &m);
      if (st.count + m.dropped_events >= st.n) break;
    }
    supa_client_metrics(c, &m);
    if (st.count < st.n) st.c1 = cpu();
    printf("RESULT {\"n\":%zu,\"secs\":%.9f,\"cpu_s\":%.6f,\"received\":%zu,\"dropped\":%llu}\n",
           st.k1 ? st.k1 - 1 : 0, st.t1 - st.t0, st.c1 - st.c0, st.count,
           (unsigned long long)m.dropped_events);
    fflush(stdout);
    supa_channel_free(ch);
    supa_client_free(c);
  } else if (!strcmp(scenario, "latency") || !strcmp(scenario, "pg")) {
    int pg = !strcmp(scenario, "pg");
    st.lat = calloc(st.n, sizeof *st.lat);
    supa_client *c = new_client(url, key);
    supa_channel *ch = NULL;
    CHECK(supa_client_channel(c, pg ? "pg" : name, NULL, &ch));
    if (pg)
      CHECK(supa_channel_on_postgres_changes(ch, "INSERT", "public", "bench_rows", NULL, NULL, 0, on_change, NULL, NULL, NULL));
    else
      CHECK(supa_channel_on_broadcast(ch, "e", on_latency, NULL, NULL, NULL));
    CHECK(supa_channel_subscribe_blocking(ch, 30000));
    printf("READY\n");
    fflush(stdout);
    wait_until(all_received, 120);
    print_lat();
    supa_channel_free(ch);
    supa_client_free(c);
  } else if (!strcmp(scenario, "memory")) {
    supa_client *c = new_client(url, key);
    CHECK(supa_client_on_event(c, on_status, NULL, NULL, NULL));
    supa_channel **chans = calloc(st.n, sizeof *chans);
    for (size_t i = 0; i < st.n; i++) {
      snprintf(topic, sizeof topic, "%s-%zu", name, i);
      CHECK(supa_client_channel(c, topic, NULL, &chans[i]));
      CHECK(supa_channel_subscribe(chans[i]));
    }
    if (!wait_until(all_joined, 30) || st.failed) { fprintf(stderr, "joins failed\n"); return 1; }
    printf("READY\n");
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {}
    for (size_t i = 0; i < st.n; i++) supa_channel_free(chans[i]);
    supa_client_free(c);
  } else if (!strcmp(scenario, "connect")) {
    printf("RESULT {\"ms\":[");
    for (size_t i = 0; i < st.n; i++) {
      double t0 = mono();
      supa_client *c = new_client(url, key);
      supa_channel *ch = NULL;
      snprintf(topic, sizeof topic, "%s-%zu", name, i);
      CHECK(supa_client_channel(c, topic, NULL, &ch));
      CHECK(supa_channel_subscribe_blocking(ch, 30000));
      printf("%s%.4f", i ? "," : "", (mono() - t0) * 1e3);
      supa_channel_free(ch);
      supa_client_free(c);
    }
    printf("]}\n");
    fflush(stdout);
  } else {
    fprintf(stderr, "unknown scenario %s\n", scenario);
    return 2;
  }
  return 0;
}
