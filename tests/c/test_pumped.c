/* App-pumped dispatch: a wakeup callback, supa_client_dispatch on the test's thread with a
 * bounded loop, `max` honoured, a bounded queue that reports LAGGED, blocking calls refused
 * inside callbacks, and re-entrant calls (send, unsubscribe, free the channel and then the
 * client) from callbacks running inside supa_client_dispatch. */
#include "harness.h"

typedef struct waker {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned long wakeups;
  int destroyed;
} waker;

static void wake(void *userdata) {
  waker *w = (waker *)userdata;
  pthread_mutex_lock(&w->mu);
  w->wakeups++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void waker_destroyed(void *userdata) {
  waker *w = (waker *)userdata;
  pthread_mutex_lock(&w->mu);
  w->destroyed++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void waker_init(waker *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static unsigned long waker_count(waker *w) {
  pthread_mutex_lock(&w->mu);
  unsigned long n = w->wakeups;
  pthread_mutex_unlock(&w->mu);
  return n;
}

/* Waits (bounded) for a wakeup after `seen`. */
static void waker_wait(waker *w, unsigned long seen, struct timespec dl) {
  pthread_mutex_lock(&w->mu);
  while (w->wakeups == seen)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) break;
  pthread_mutex_unlock(&w->mu);
}

/* Pumps `c` until *flag is set (callbacks set it), bounded by the deadline. */
static void pump_until(supa_client **c, waker *w, const int *flag, const char *what) {
  struct timespec dl = deadline_after(DEADLINE_MS);
  while (!*flag) {
    if (ms_until(dl) < 0) FAIL("timed out pumping for %s", what);
    unsigned long seen = waker_count(w);
    size_t n = 0;
    CHECK_OK(supa_client_dispatch(*c, 64, &n));
    if (*flag || !*c) return;
    if (n == 0) waker_wait(w, seen, dl);
  }
}

/* ---- re-entrancy scenario ------------------------------------------------------------ */

typedef struct scene {
  supa_client *client;
  supa_channel *channel;
  int subscribed, echoed, closed;
  int deadlock_checks;
  supa_event *kept; /* a copy that outlives its callback */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int destroyed;
} scene;

static void scene_destroyed(void *userdata) {
  scene *s = (scene *)userdata;
  pthread_mutex_lock(&s->mu);
  s->destroyed++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void on_status(void *userdata, const supa_event *ev) {
  scene *s = (scene *)userdata;
  if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS) return;
  switch (supa_event_subscribe_status(ev)) {
    case SUPA_STATUS_SUBSCRIBED:
      /* Every blocking call refuses here instead of waiting on this very thread. */
      CHECK_RC(supa_client_connect_blocking(s->client, 1000), SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_subscribe_blocking(s->channel, 1000), SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_send_broadcast_json_blocking(s->channel, "x", "{}", 1000),
               SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_send_broadcast_binary_blocking(s->channel, "x", NULL, 0, 1000),
               SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_track_blocking(s->channel, "{}", 1000), SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_untrack_blocking(s->channel, 1000), SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_http_send_json_blocking(s->channel, "x", "{}", 1000), SUPA_WOULD_DEADLOCK);
      CHECK_RC(supa_channel_unsubscribe_blocking(s->channel, 1000), SUPA_WOULD_DEADLOCK);
      CHECK(strstr(supa_last_error_message(), "deadlock") != NULL);
      s->deadlock_checks = 1;
      /* Non-blocking calls work: send to ourselves. */
      CHECK_OK(supa_channel_send_broadcast_json(s->channel, "echo", "{\"from\":\"callback\"}"));
      s->subscribed = 1;
      break;
    case SUPA_STATUS_CLOSED:
      s->closed = 1;
      /* Free the client from inside its own callback. */
      supa_client_free(s->client);
      s->client = NULL;
      break;
    default:
      break;
  }
}

static void on_echo(void *userdata, const supa_event *ev) {
  scene *s = (scene *)userdata;
  s->echoed++;
  s->kept = supa_event_copy(ev);
  /* Leave and free the channel handle from inside its own callback. */
  CHECK_OK(supa_channel_unsubscribe(s->channel));
  supa_channel_free(s->channel);
  s->channel = NULL;
}

static void test_reentrant_pumped(void) {
  test_begin("app-pumped: blocking calls refused, send/unsubscribe/free from callbacks");
  scene s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  waker w;
  waker_init(&w);
  s.client = test_client(SUPA_DISPATCH_APP_PUMPED);
  CHECK_OK(supa_client_set_wakeup(s.client, wake, &w, waker_destroyed));
  supa_channel_options *co = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_broadcast_self(co, true));
  CHECK_OK(supa_client_channel(s.client, "pumped-reentrant", co, &s.channel));
  supa_channel_options_free(co);
  CHECK_OK(supa_channel_on_event(s.channel, on_status, &s, scene_destroyed, NULL));
  CHECK_OK(supa_channel_on_broadcast(s.channel, "echo", on_echo, &s, scene_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe(s.channel));
  pump_until(&s.client, &w, &s.subscribed, "SUBSCRIBED");
  CHECK(s.deadlock_checks);
  pump_until(&s.client, &w, &s.echoed, "the echo");
  CHECK(s.channel == NULL);
  pump_until(&s.client, &w, &s.closed, "CLOSED");
  CHECK(s.client == NULL);

  /* The copy outlived its callback. */
  size_t len = 0;
  const char *json = supa_event_payload_json(s.kept, &len);
  CHECK(text_eq(json, &len, "{\"from\":\"callback\"}"));
  supa_event_free(s.kept);

  /* Both registrations' destructors and the wakeup's ran exactly once. */
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&s.mu);
  while (s.destroyed < 2)
    if (pthread_cond_timedwait(&s.cv, &s.mu, &dl) == ETIMEDOUT) FAIL("destructors did not run");
  CHECK(s.destroyed == 2);
  pthread_mutex_unlock(&s.mu);
  pthread_mutex_lock(&w.mu);
  while (w.destroyed < 1)
    if (pthread_cond_timedwait(&w.cv, &w.mu, &dl) == ETIMEDOUT) FAIL("wakeup destructor did not run");
  CHECK(w.destroyed == 1);
  pthread_mutex_unlock(&w.mu);
  CHECK(s.echoed == 1);
}

/* ---- basics: wakeup, max, lagged ----------------------------------------------------- */

static void test_basics_and_lagged(void) {
  test_begin("app-pumped: nothing runs without dispatch; max honoured; LAGGED on overflow");
  waker w, w2;
  waker_init(&w);
  waker_init(&w2);
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_dispatch_mode(o, SUPA_DISPATCH_APP_PUMPED));
  CHECK_OK(supa_options_set_queue_capacity(o, 3));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  /* Replacing the wakeup runs the old one's destructor once. */
  CHECK_OK(supa_client_set_wakeup(c, wake, &w2, waker_destroyed));
  CHECK_OK(supa_client_set_wakeup(c, wake, &w, waker_destroyed));
  CHECK(w2.destroyed == 1);

  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "pumped-lag", NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_client_on_event(c, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe(ch));

  /* Wait for events to be queued: nothing is delivered until we dispatch. */
  unsigned long seen = 0;
  waker_wait(&w, seen, deadline_after(DEADLINE_MS));
  CHECK(waker_count(&w) >= 1);
  CHECK(recorder_len(&r) == 0);

  /* Pump one at a time until SUBSCRIBED. */
  struct timespec dl = deadline_after(DEADLINE_MS);
  uint32_t subscribed = SUPA_STATUS_SUBSCRIBED;
  for (;;) {
    size_t n = 99, before = recorder_len(&r);
    seen = waker_count(&w);
    CHECK_OK(supa_client_dispatch(c, 1, &n));
    CHECK(n <= 1);
    int found = 0;
    for (size_t i = 0; i < recorder_len(&r); i++)
      if (is_status(recorder_at(&r, i), &subscribed)) found = 1;
    if (found) break;
    if (n == 0) {
      CHECK(recorder_len(&r) == before);
      waker_wait(&w, seen, dl);
    }
    if (ms_until(dl) < 0) FAIL("never SUBSCRIBED");
  }

  /* A peer floods the channel while we do not pump: the queue keeps 3 data events. */
  supa_client *peer = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *pch = NULL;
  CHECK_OK(supa_client_channel(peer, "pumped-lag", NULL, &pch));
  CHECK_OK(supa_channel_subscribe_blocking(pch, DEADLINE_MS));
  for (int i = 0; i < 10; i++) CHECK_OK(supa_channel_send_broadcast_json_blocking(pch, "flood", "{}", DEADLINE_MS));
  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  dl = deadline_after(DEADLINE_MS);
  for (;;) {
    CHECK_OK(supa_client_metrics(c, &m));
    if (m.dropped_events >= 7) break;
    if (ms_until(dl) < 0) FAIL("the flood never filled the queue (dropped %llu)", (unsigned long long)m.dropped_events);
    struct timespec pause = {0, 10 * 1000 * 1000}; /* a bounded poll of a counter, not a sync */
    nanosleep(&pause, NULL);
  }
  size_t mark = recorder_len(&r);
  size_t n = 0;
  CHECK_OK(supa_client_dispatch(c, 1000, &n));
  CHECK(n >= 1);
  uint32_t lagged = SUPA_EVENT_LAGGED;
  size_t i = recorder_wait(&r, mark, is_kind, &lagged, "LAGGED");
  CHECK(supa_event_lagged_dropped(recorder_at(&r, i)) >= 7);
  CHECK_OK(supa_client_metrics(c, &m));
  CHECK(m.lagged_events >= 1 && m.lagged_events <= m.dropped_events);
  size_t floods = 0;
  for (size_t k = mark; k < recorder_len(&r); k++)
    if (is_broadcast(recorder_at(&r, k), "flood")) floods++;
  CHECK(floods <= 3 * 2); /* at most the capacity, seen by each of the two listeners */

  supa_channel_free(pch);
  supa_client_free(peer);
  supa_channel_free(ch);
  CHECK_OK(supa_client_set_wakeup(c, NULL, NULL, NULL)); /* removes the hook: destructor runs */
  pthread_mutex_lock(&w.mu);
  CHECK(w.destroyed == 1);
  pthread_mutex_unlock(&w.mu);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 2, "both listeners") == 2);
  recorder_destroy_all(&r);
}

int main(void) {
  test_basics_and_lagged();
  test_reentrant_pumped();
  fprintf(stderr, "test_pumped: ok\n");
  return 0;
}
