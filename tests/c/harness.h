/* Shared helpers for the C API tests: checks, deadlines, and a recorder that copies every
 * event it receives (exercising supa_event_copy) and wakes waiters through a condition
 * variable. Every wait is bounded by a deadline; nothing sleeps to synchronise. */
#ifndef SUPA_TEST_HARNESS_H
#define SUPA_TEST_HARNESS_H

#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "supa_realtime.h"

/* Generous: valgrind runs the same programs 20-50 times slower. */
#define DEADLINE_MS 30000

#define FAIL(...)                                                                  \
  do {                                                                             \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                \
    fprintf(stderr, __VA_ARGS__);                                                  \
    fprintf(stderr, "\n");                                                         \
    exit(1);                                                                       \
  } while (0)

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond))                                                                   \
      FAIL("CHECK failed: %s (last error: %s)", #cond, supa_last_error_message()); \
  } while (0)

/* Expects `call` to return `expected` (a supa_result). */
#define CHECK_RC(call, expected)                                                   \
  do {                                                                             \
    supa_result rc_ = (call);                                                      \
    if (rc_ != (supa_result)(expected))                                            \
      FAIL("%s returned %s, expected %s (last error: %s)", #call,                  \
           supa_result_name(rc_), supa_result_name(expected),                      \
           supa_last_error_message());                                             \
  } while (0)

#define CHECK_OK(call) CHECK_RC(call, SUPA_OK)

static inline void test_begin(const char *name) {
  fprintf(stderr, "-- %s\n", name);
}

static inline const char *env_or_die(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) FAIL("environment variable %s is not set (run through tests/c/run)", name);
  return v;
}

static inline struct timespec deadline_after(long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static inline long ms_until(struct timespec deadline) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (long)(deadline.tv_sec - now.tv_sec) * 1000L +
         (deadline.tv_nsec - now.tv_nsec) / 1000000L;
}

/* A client for the test server (SUPA_TEST_URL, SUPA_TEST_KEY) in the given dispatch mode. */
static inline supa_client *test_client(supa_dispatch_mode mode) {
  supa_options *o = NULL;
  supa_client *c = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_dispatch_mode(o, mode));
  /* Fast retries keep the reconnect tests short. */
  const uint64_t delays[] = {100, 200, 500};
  CHECK_OK(supa_options_set_reconnect_delays_ms(o, delays, 3));
  CHECK_OK(supa_options_set_rejoin_delays_ms(o, delays, 3));
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  return c;
}

/* ---- recorder ---------------------------------------------------------------------- */

typedef struct recorder {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  supa_event **events;
  size_t len, cap;
  int destroyed; /* how many times the registration's destructor ran */
} recorder;

static inline void recorder_init(recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
}

static inline void recorder_clear(recorder *r) {
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->len; i++) supa_event_free(r->events[i]);
  free(r->events);
  r->events = NULL;
  r->len = r->cap = 0;
  pthread_mutex_unlock(&r->mu);
}

static inline void recorder_destroy_all(recorder *r) {
  recorder_clear(r);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
}

/* supa_event_cb: keeps a copy of every event. */
static inline void recorder_cb(void *userdata, const supa_event *ev) {
  recorder *r = (recorder *)userdata;
  supa_event *copy = supa_event_copy(ev);
  if (!copy) FAIL("supa_event_copy returned NULL");
  pthread_mutex_lock(&r->mu);
  if (r->len == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->events = (supa_event **)realloc(r->events, r->cap * sizeof *r->events);
    if (!r->events) FAIL("out of memory");
  }
  r->events[r->len++] = copy;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* supa_destroy_cb: counts destructor runs. */
static inline void recorder_destroyed(void *userdata) {
  recorder *r = (recorder *)userdata;
  pthread_mutex_lock(&r->mu);
  r->destroyed++;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

typedef int (*event_pred)(const supa_event *ev, const void *arg);

/* Waits until an event at index >= from matches; returns its index (the event stays owned by
 * the recorder). Fails the test at the deadline. */
static inline size_t recorder_wait(recorder *r, size_t from, event_pred pred, const void *arg,
                                   const char *what) {
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&r->mu);
  for (;;) {
    for (size_t i = from; i < r->len; i++) {
      if (pred(r->events[i], arg)) {
        pthread_mutex_unlock(&r->mu);
        return i;
      }
      from = i + 1;
    }
    int rc = pthread_cond_timedwait(&r->cv, &r->mu, &dl);
    if (rc == ETIMEDOUT) {
      size_t n = r->len;
      pthread_mutex_unlock(&r->mu);
      FAIL("timed out waiting for %s (%zu events recorded)", what, n);
    }
  }
}

/* Waits until the destructor ran at least `n` times; returns the count. */
static inline int recorder_wait_destroyed(recorder *r, int n, const char *what) {
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&r->mu);
  while (r->destroyed < n) {
    if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT) {
      pthread_mutex_unlock(&r->mu);
      FAIL("timed out waiting for the destructor of %s", what);
    }
  }
  int d = r->destroyed;
  pthread_mutex_unlock(&r->mu);
  return d;
}

static inline const supa_event *recorder_at(recorder *r, size_t i) {
  pthread_mutex_lock(&r->mu);
  const supa_event *e = i < r->len ? r->events[i] : NULL;
  pthread_mutex_unlock(&r->mu);
  return e;
}

static inline size_t recorder_len(recorder *r) {
  pthread_mutex_lock(&r->mu);
  size_t n = r->len;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static inline int recorder_destroy_count(recorder *r) {
  pthread_mutex_lock(&r->mu);
  int d = r->destroyed;
  pthread_mutex_unlock(&r->mu);
  return d;
}

/* ---- predicates -------------------------------------------------------------------- */

static inline int is_kind(const supa_event *ev, const void *kind) {
  return supa_event_get_kind(ev) == *(const uint32_t *)kind;
}

/* A channel status with the given supa_subscribe_status. */
static inline int is_status(const supa_event *ev, const void *status) {
  return supa_event_get_kind(ev) == SUPA_EVENT_CHANNEL_STATUS &&
         supa_event_subscribe_status(ev) == *(const uint32_t *)status;
}

/* A broadcast with the given event name. */
static inline int is_broadcast(const supa_event *ev, const void *name) {
  const char *n = supa_event_name(ev, NULL);
  return supa_event_get_kind(ev) == SUPA_EVENT_BROADCAST && n && strcmp(n, (const char *)name) == 0;
}

static inline size_t wait_status(recorder *r, size_t from, uint32_t status) {
  return recorder_wait(r, from, is_status, &status, "a channel status");
}

static inline size_t wait_broadcast(recorder *r, size_t from, const char *name) {
  return recorder_wait(r, from, is_broadcast, name, name);
}

static inline size_t wait_kind(recorder *r, size_t from, uint32_t kind) {
  return recorder_wait(r, from, is_kind, &kind, "an event kind");
}

/* Compares a (pointer, length) text with a C string. The length is passed by pointer so that
 * it is read after the accessor that fills it has run: text_eq(f(ev, &len), &len, "..."). */
static inline int text_eq(const char *p, const size_t *len, const char *s) {
  return p && strlen(s) == *len && memcmp(p, s, *len) == 0;
}

#endif
