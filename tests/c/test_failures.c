/* The failure matrix in C against the real server on loopback: a wrong key, a server that is
 * not listening and a wrong path each fail the subscribe within the join timeout with the
 * matching supa_result and a supa_last_error_message() that names the cause; after shutdown
 * every call returns SUPA_SHUTDOWN; a token provider that answers invalid UTF-8, or calls its
 * own client's blocking functions, is refused. */
#include "harness.h"

#define JOIN_TIMEOUT_MS 2000
/* Scheduling slack on a loaded machine (valgrind included). */
#define SLACK_MS 20000

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static supa_client *client_for(const char *url, const char *key) {
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(url, key, &o));
  CHECK_OK(supa_options_set_push_timeout_ms(o, JOIN_TIMEOUT_MS));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  return c;
}

/* Subscribes a channel of `c`; expects `expected` within the join timeout, with `needle` in
 * the message. */
static void expect_subscribe_fails(supa_client *c, supa_result expected, const char *needle) {
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "failing", NULL, &ch));
  long start = now_ms();
  CHECK_RC(supa_channel_subscribe_blocking(ch, DEADLINE_MS), expected);
  long took = now_ms() - start;
  if (took > JOIN_TIMEOUT_MS + SLACK_MS) FAIL("the subscribe took %ld ms", took);
  const char *msg = supa_last_error_message();
  if (!strstr(msg, needle)) FAIL("message %s does not name the cause (%s)", msg, needle);
  supa_channel_free(ch);
}

static void test_wrong_key(const char *url) {
  test_begin("wrong key: SUPA_HTTP with the server's 401 reason");
  supa_client *c = client_for(url, "not-a-key");
  expect_subscribe_fails(c, SUPA_HTTP, "HTTP 401");
  supa_client_free(c);
}

static void test_not_listening(void) {
  test_begin("server not listening: SUPA_IO, connection refused");
  /* Port 1 on loopback: nothing listens there on a test machine. */
  supa_client *c = client_for("ws://127.0.0.1:1/realtime/v1", "k");
  expect_subscribe_fails(c, SUPA_IO, "refused");
  supa_client_free(c);
}

static void test_wrong_path(const char *url) {
  test_begin("wrong path: SUPA_HTTP 404 naming the expected path");
  char bad[512];
  const char *at = strstr(url, "/realtime/v1");
  CHECK(at != NULL);
  snprintf(bad, sizeof bad, "%.*s/nowhere/v1", (int)(at - url), url);
  supa_client *c = client_for(bad, env_or_die("SUPA_TEST_KEY"));
  expect_subscribe_fails(c, SUPA_HTTP, "/realtime/v1");
  supa_client_free(c);
}

static void no_event(void *userdata, const supa_event *ev) {
  (void)userdata;
  (void)ev;
  FAIL("a listener registered after shutdown was called");
}

static void expect_everything_shut_down(supa_client *c, supa_channel *ch);

static void test_calls_after_shutdown(const char *url, const char *key) {
  test_begin("calls after shutdown return SUPA_SHUTDOWN");
  supa_client *c = client_for(url, key);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "late", NULL, &ch));
  CHECK_OK(supa_client_shutdown(c));
  /* Right after shutdown, before the runtime thread has acted on it. */
  CHECK_RC(supa_client_connect(c), SUPA_SHUTDOWN);
  CHECK(strstr(supa_last_error_message(), "shut down") != NULL);
  CHECK_RC(supa_client_connect_blocking(c, 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_disconnect(c), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_set_auth(c, "t"), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_on_event(c, no_event, NULL, NULL, NULL), SUPA_SHUTDOWN);
  supa_channel *ch2 = NULL;
  CHECK_RC(supa_client_channel(c, "later", NULL, &ch2), SUPA_SHUTDOWN);
  CHECK(ch2 == NULL);
  CHECK_RC(supa_channel_subscribe(ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_subscribe_blocking(ch, 100), SUPA_SHUTDOWN);
  expect_everything_shut_down(c, ch);
  supa_channel_free(ch);
  supa_client_free(c);
}

/* Every other function of a client and a channel after shutdown: SUPA_SHUTDOWN, outputs
 * untouched, callbacks and destructors never called. Exceptions, by design: the getters
 * (supa_client_connection_state says SHUT_DOWN), supa_client_shutdown itself (idempotent),
 * supa_client_dispatch (it delivers what was queued before, the final statuses included) and
 * the _free functions. */
static void never_called(void *userdata) {
  (void)userdata;
  FAIL("a destructor of a refused registration ran");
}

static void wakeup_never(void *userdata) {
  (void)userdata;
  FAIL("a wakeup hook registered after shutdown was called");
}

static void expect_everything_shut_down(supa_client *c, supa_channel *ch) {
  uint64_t id = 77;
  char *json = NULL;
  CHECK_RC(supa_client_remove_listener(c, 1), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_set_wakeup(c, wakeup_never, NULL, never_called), SUPA_SHUTDOWN);
  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  CHECK_RC(supa_client_metrics(c, &m), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_join_latency_json(c, &json), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_channel_states_json(c, &json), SUPA_SHUTDOWN);
  CHECK(json == NULL);
  CHECK_RC(supa_client_network_changed(c), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_app_backgrounded(c), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_app_foregrounded(c), SUPA_SHUTDOWN);
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_SHUT_DOWN);
  CHECK_OK(supa_client_shutdown(c));

  uint64_t latency = 5;
  CHECK_RC(supa_channel_join_latency_us(ch, &latency), SUPA_SHUTDOWN);
  CHECK(latency == 5);
  CHECK_RC(supa_channel_on_event(ch, no_event, NULL, never_called, &id), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_broadcast(ch, "*", no_event, NULL, never_called, &id), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_presence(ch, no_event, NULL, never_called, &id), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_system(ch, no_event, NULL, never_called, &id), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_postgres_changes(ch, "*", "public", NULL, NULL, NULL, 0, no_event, NULL,
                                            never_called, &id),
           SUPA_SHUTDOWN);
  CHECK(id == 77);
  const uint8_t bin[2] = {1, 2};
  CHECK_RC(supa_channel_send_broadcast_json(ch, "e", "{}"), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_send_broadcast_binary(ch, "e", bin, 2), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_send_broadcast_json_blocking(ch, "e", "{}", 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_send_broadcast_binary_blocking(ch, "e", bin, 2, 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_http_send_json(ch, "e", "{}"), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_http_send_json_blocking(ch, "e", "{}", 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_http_send_binary_blocking(ch, "e", bin, 2, 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_track(ch, "{}"), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_track_blocking(ch, "{}", 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_untrack(ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_untrack_blocking(ch, 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_presence_state_json(ch, &json), SUPA_SHUTDOWN);
  CHECK(json == NULL);
  CHECK_RC(supa_channel_unsubscribe(ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_unsubscribe_blocking(ch, 100), SUPA_SHUTDOWN);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_CLOSED);
}

/* The log hook: records arrive on the library's log thread; the destructor runs once when
 * logging is turned off. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static int saw_connect_warning = 0;
static int log_destroyed = 0;

static void on_log(void *userdata, uint32_t level, const char *target, const char *message) {
  (void)userdata;
  pthread_mutex_lock(&log_mu);
  if (level == 2 && strstr(target, "supa_realtime") && strstr(message, "could not connect"))
    saw_connect_warning = 1;
  pthread_cond_broadcast(&log_cv);
  pthread_mutex_unlock(&log_mu);
}

static void on_log_destroy(void *userdata) {
  (void)userdata;
  pthread_mutex_lock(&log_mu);
  log_destroyed++;
  pthread_cond_broadcast(&log_cv);
  pthread_mutex_unlock(&log_mu);
}

static void wait_log(int *flag, const char *what) {
  struct timespec until = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&log_mu);
  while (!*flag) {
    if (pthread_cond_timedwait(&log_cv, &log_mu, &until) == ETIMEDOUT) FAIL("timed out waiting for %s", what);
  }
  pthread_mutex_unlock(&log_mu);
}

static void test_log_callback(void) {
  test_begin("log callback: a failed connect is logged as a warning; replaced, then off");
  CHECK_RC(supa_set_log_callback(6, on_log, NULL, on_log_destroy), SUPA_INVALID_ARGUMENT);
  CHECK_OK(supa_set_log_callback(2, on_log, NULL, on_log_destroy));
  supa_client *c = client_for("ws://127.0.0.1:1/realtime/v1", "k");
  CHECK_OK(supa_client_connect(c));
  wait_log(&saw_connect_warning, "the connect warning");
  supa_client_free(c);
  /* A new callback replaces the old one, whose destructor then runs once. */
  CHECK_OK(supa_set_log_callback(1, on_log, NULL, on_log_destroy));
  wait_log(&log_destroyed, "the replaced callback's destructor");
  CHECK_OK(supa_set_log_callback(0, NULL, NULL, NULL));
  struct timespec until = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&log_mu);
  while (log_destroyed < 2)
    if (pthread_cond_timedwait(&log_cv, &log_mu, &until) == ETIMEDOUT) FAIL("no second destructor");
  CHECK(log_destroyed == 2);
  pthread_mutex_unlock(&log_mu);
}

/* A token provider that answers invalid UTF-8: an error event, never a silent fall-back to
 * the API key's role, so the channel does not join. */
static int32_t bad_utf8_token(void *userdata, const char **token) {
  (void)userdata;
  *token = "\xff\xfe-not-utf8";
  return 0;
}

static int is_utf8_error(const supa_event *ev, const void *arg) {
  (void)arg;
  const char *msg = supa_event_reason(ev, NULL);
  return supa_event_get_kind(ev) == SUPA_EVENT_ERROR && msg && strstr(msg, "invalid UTF-8");
}

static void test_provider_invalid_utf8(const char *url, const char *key) {
  test_begin("token provider returning invalid UTF-8: an error event, no join as the API key");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(url, key, &o));
  CHECK_OK(supa_options_set_push_timeout_ms(o, JOIN_TIMEOUT_MS));
  CHECK_OK(supa_options_set_token_provider(o, bad_utf8_token, NULL, NULL));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  recorder r;
  recorder_init(&r);
  CHECK_OK(supa_client_on_event(c, recorder_cb, &r, recorder_destroyed, NULL));
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "bad-token", NULL, &ch));
  supa_result rc = supa_channel_subscribe_blocking(ch, JOIN_TIMEOUT_MS);
  if (rc == SUPA_OK) FAIL("the channel joined without a valid token");
  recorder_wait(&r, 0, is_utf8_error, NULL, "the invalid UTF-8 error event");
  CHECK(supa_channel_get_state(ch) != SUPA_CHANNEL_JOINED);
  supa_channel_free(ch);
  supa_client_free(c);
  recorder_wait_destroyed(&r, 1, "the client listener");
  recorder_destroy_all(&r);
}

/* A token provider that calls blocking functions of its own client: each would wait for the
 * connect that waits for this very provider, so each returns SUPA_WOULD_DEADLOCK at once and
 * does nothing. */
typedef struct reentrant_provider {
  pthread_mutex_t mu;
  int calls;
  supa_client *client;
  supa_channel *other;
  const char *key;
  supa_result connect_rc, subscribe_rc, remove_rc, remove_all_rc, broadcast_rc;
} reentrant_provider;

static int32_t reentrant_token(void *userdata, const char **token) {
  reentrant_provider *p = (reentrant_provider *)userdata;
  pthread_mutex_lock(&p->mu);
  if (p->calls++ == 0) {
    p->connect_rc = supa_client_connect_blocking(p->client, 100);
    p->subscribe_rc = supa_channel_subscribe_blocking(p->other, 100);
    p->remove_rc = supa_client_remove_channel_blocking(p->client, p->other, 100);
    p->remove_all_rc = supa_client_remove_all_channels_blocking(p->client, 100);
    p->broadcast_rc = supa_channel_send_broadcast_json_blocking(p->other, "e", "{}", 100);
  }
  pthread_mutex_unlock(&p->mu);
  *token = p->key;
  return 0;
}

static void test_provider_calls_blocking_api(const char *url, const char *key) {
  test_begin("token provider calling its client's blocking API: SUPA_WOULD_DEADLOCK, no effect");
  reentrant_provider p;
  memset(&p, 0, sizeof p);
  pthread_mutex_init(&p.mu, NULL);
  p.key = key;
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(url, key, &o));
  CHECK_OK(supa_options_set_token_provider(o, reentrant_token, &p, NULL));
  CHECK_OK(supa_client_new(o, &p.client));
  supa_options_free(o);
  CHECK_OK(supa_client_channel(p.client, "provider-other", NULL, &p.other));
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(p.client, "provider-main", NULL, &ch));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  pthread_mutex_lock(&p.mu);
  CHECK(p.calls >= 1);
  CHECK_RC(p.connect_rc, SUPA_WOULD_DEADLOCK);
  CHECK_RC(p.subscribe_rc, SUPA_WOULD_DEADLOCK);
  CHECK_RC(p.remove_rc, SUPA_WOULD_DEADLOCK);
  CHECK_RC(p.remove_all_rc, SUPA_WOULD_DEADLOCK);
  CHECK_RC(p.broadcast_rc, SUPA_WOULD_DEADLOCK);
  pthread_mutex_unlock(&p.mu);
  /* The refused subscribe did nothing: had it subscribed, the channel would have joined on the
   * same connection, before the one just confirmed. */
  CHECK(supa_channel_get_state(p.other) == SUPA_CHANNEL_CLOSED);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_JOINED);
  supa_channel_free(ch);
  supa_channel_free(p.other);
  supa_client_free(p.client);
  pthread_mutex_destroy(&p.mu);
}

int main(void) {
  const char *url = env_or_die("SUPA_TEST_URL");
  const char *key = env_or_die("SUPA_TEST_KEY");
  test_wrong_key(url);
  test_not_listening();
  test_wrong_path(url);
  test_calls_after_shutdown(url, key);
  test_log_callback();
  test_provider_invalid_utf8(url, key);
  test_provider_calls_blocking_api(url, key);
  fprintf(stderr, "test_failures: ok\n");
  return 0;
}
