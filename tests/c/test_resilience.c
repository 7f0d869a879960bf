/* The resilience additions through the C API, against the real server: metrics (heartbeat RTT
 * percentiles, time disconnected, per-channel join latency), the terminal "token rejected"
 * status (expired at join, expired while joined, refused by a provider after auth_retries),
 * token refresh ahead of expiry, and app_foregrounded asking the provider. */
#include "harness.h"
#include "jwt.h"

static int is_heartbeat_ok(const supa_event *ev, const void *arg) {
  (void)arg;
  return supa_event_get_kind(ev) == SUPA_EVENT_HEARTBEAT &&
         supa_event_heartbeat_status(ev) == SUPA_HEARTBEAT_OK;
}

static int is_token_rejected(const supa_event *ev, const void *arg) {
  (void)arg;
  return supa_event_is_token_rejected(ev);
}

static int starts_with(const char *p, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return p && len >= n && memcmp(p, prefix, n) == 0;
}

static void test_metrics(void) {
  test_begin("metrics: RTT p50/p99 after heartbeats, time disconnected, join latency");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_heartbeat_interval_ms(o, 100));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);

  supa_metrics m;
  memset(&m, 0xff, sizeof m);
  m.struct_size = sizeof m;
  CHECK_OK(supa_client_metrics(c, &m));
  CHECK(m.heartbeat_rtt_p50_us == 0 && m.heartbeat_rtt_p99_us == 0); /* no reply yet */
  CHECK(m.time_disconnected_us == 0 && m.lagged_events == 0);        /* never wanted a socket */

  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-metrics", NULL, &ch));
  uint64_t latency = 12345;
  CHECK_RC(supa_channel_join_latency_us(ch, &latency), SUPA_NOT_CONNECTED); /* not joined yet */
  CHECK(latency == 12345);
  CHECK_RC(supa_channel_join_latency_us(NULL, &latency), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_join_latency_us(ch, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_join_latency_json(NULL, NULL), SUPA_NULL_ARGUMENT);
  char *json = NULL;
  CHECK_RC(supa_client_join_latency_json(c, NULL), SUPA_NULL_ARGUMENT);
  CHECK_OK(supa_client_join_latency_json(c, &json));
  CHECK(strcmp(json, "{}") == 0);
  supa_string_free(json);

  recorder r;
  recorder_init(&r);
  CHECK_OK(supa_client_on_event(c, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  /* Two heartbeat replies after the join: percentiles over real round trips. */
  size_t i = recorder_wait(&r, 0, is_heartbeat_ok, NULL, "a heartbeat reply");
  recorder_wait(&r, i + 1, is_heartbeat_ok, NULL, "a second heartbeat reply");

  CHECK_OK(supa_client_metrics(c, &m));
  /* Under valgrind a 100 ms heartbeat may go unanswered and reconnect: no exact counts. */
  CHECK(m.connects >= 1 && m.reconnects == m.connects - 1);
  CHECK(m.heartbeat_rtt_us > 0);
  CHECK(m.heartbeat_rtt_p50_us > 0);
  CHECK(m.heartbeat_rtt_p99_us >= m.heartbeat_rtt_p50_us);
  CHECK(m.time_disconnected_us > 0); /* the first connect counts: wanted, not yet open */
  CHECK(m.lagged_events == 0 && m.dropped_events == 0);

  CHECK_OK(supa_channel_join_latency_us(ch, &latency));
  CHECK(latency > 0);
  CHECK_OK(supa_client_join_latency_json(c, &json));
  unsigned long long from_json = 0;
  CHECK(sscanf(json, "{\"realtime:c-metrics\":%llu}", &from_json) == 1);
  CHECK(from_json > 0); /* equal to `latency` unless a rejoin came in between */
  supa_string_free(json);

  /* Unsubscribed: the channel is removed and its latency with it. */
  CHECK_OK(supa_channel_unsubscribe_blocking(ch, DEADLINE_MS));
  struct timespec dl = deadline_after(DEADLINE_MS);
  while (supa_channel_join_latency_us(ch, &latency) == SUPA_OK) {
    if (ms_until(dl) < 0) FAIL("the join latency outlived the channel");
    struct timespec pause = {0, 10 * 1000 * 1000}; /* a bounded poll of a counter, not a sync */
    nanosleep(&pause, NULL);
  }
  CHECK_RC(supa_channel_join_latency_us(ch, &latency), SUPA_NOT_CONNECTED);

  /* The channel handle outlives the client: SUPA_SHUTDOWN, not a crash. */
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the client listener") == 1);
  CHECK_RC(supa_channel_join_latency_us(ch, &latency), SUPA_SHUTDOWN);
  supa_channel_free(ch);
  recorder_destroy_all(&r);
}

/* A client whose access token is `token` (no provider). */
static supa_client *client_with_token(const char *token) {
  supa_options *o = NULL;
  supa_client *c = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_access_token(o, token));
  const uint64_t delays[] = {100, 200, 500};
  CHECK_OK(supa_options_set_reconnect_delays_ms(o, delays, 3));
  CHECK_OK(supa_options_set_rejoin_delays_ms(o, delays, 3));
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  return c;
}

static void test_expired_at_join(void) {
  test_begin("an expired token at join: the terminal token-rejected status");
  char token[512];
  jwt_mint(token, -10);
  supa_client *c = client_with_token(token);
  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-expired", NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_RC(supa_channel_subscribe_blocking(ch, DEADLINE_MS), SUPA_CHANNEL_ERROR);
  size_t i = wait_status(&r, 0, SUPA_STATUS_CHANNEL_ERROR);
  const supa_event *ev = recorder_at(&r, i);
  size_t len = 0;
  const char *reason = supa_event_reason(ev, &len);
  CHECK(starts_with(reason, len, "InvalidJWTToken: Token has expired"));
  CHECK(supa_event_error_kind(ev) == SUPA_ERROR_KIND_TERMINAL);
  CHECK(supa_event_is_token_rejected(ev));
  /* The state is final before the status is delivered. */
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_CLOSED);
  /* Nothing else is token-rejected; NULL is not. */
  for (size_t k = 0; k < recorder_len(&r); k++)
    if (k != i) CHECK(!supa_event_is_token_rejected(recorder_at(&r, k)));
  CHECK(!supa_event_is_token_rejected(NULL));
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the channel listener") == 1);
  recorder_destroy_all(&r);
}

static void test_expires_while_joined(void) {
  test_begin("a token that expires while joined: token-rejected, then CLOSED with the reason");
  char token[512];
  /* Long enough to join even under valgrind; the server closes the channel at expiry. */
  jwt_mint(token, 6);
  supa_client *c = client_with_token(token);
  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-expiring", NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  size_t sub = wait_status(&r, 0, SUPA_STATUS_SUBSCRIBED);
  CHECK(!supa_event_is_token_rejected(recorder_at(&r, sub)));

  size_t i = recorder_wait(&r, sub + 1, is_token_rejected, NULL, "the token-rejected status");
  const supa_event *ev = recorder_at(&r, i);
  size_t len = 0;
  const char *reason = supa_event_reason(ev, &len);
  CHECK(starts_with(reason, len, "Token has expired"));
  CHECK(supa_event_subscribe_status(ev) == SUPA_STATUS_CHANNEL_ERROR);
  CHECK(supa_event_error_kind(ev) == SUPA_ERROR_KIND_TERMINAL);
  size_t closed = wait_status(&r, i + 1, SUPA_STATUS_CLOSED);
  CHECK(closed == i + 1); /* right after it */
  reason = supa_event_reason(recorder_at(&r, closed), &len);
  CHECK(reason && len > 0); /* the server's shutdown message */
  CHECK(!supa_event_is_token_rejected(recorder_at(&r, closed)));
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the channel listener") == 1);
  recorder_destroy_all(&r);
}

/* ---- token providers ----------------------------------------------------------------- */

typedef struct provider {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long lifetime_s; /* of each token it mints */
  int calls;
  int destroyed;
  char token[512];
} provider;

static int32_t provider_cb(void *userdata, const char **token) {
  provider *p = (provider *)userdata;
  pthread_mutex_lock(&p->mu);
  p->calls++;
  jwt_mint(p->token, p->lifetime_s);
  *token = p->token; /* copied by the library before we unlock */
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

static void provider_destroyed(void *userdata) {
  provider *p = (provider *)userdata;
  pthread_mutex_lock(&p->mu);
  p->destroyed++;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* After the client is freed: the destructor runs exactly once, after the last call (the
 * provider lives on the test's stack, so no call may come later). */
static void provider_finish(provider *p) {
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&p->mu);
  while (p->destroyed == 0)
    if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
      FAIL("the token provider's destructor never ran");
  CHECK(p->destroyed == 1);
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
}

static void provider_init(provider *p, long lifetime_s) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->lifetime_s = lifetime_s;
}

static int provider_calls(provider *p) {
  pthread_mutex_lock(&p->mu);
  int n = p->calls;
  pthread_mutex_unlock(&p->mu);
  return n;
}

static void provider_wait_calls(provider *p, int n, long ms, const char *what) {
  struct timespec dl = deadline_after(ms);
  pthread_mutex_lock(&p->mu);
  while (p->calls < n)
    if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT) {
      int got = p->calls;
      pthread_mutex_unlock(&p->mu);
      FAIL("timed out waiting for %s (%d provider calls)", what, got);
    }
  pthread_mutex_unlock(&p->mu);
}

/* A client whose provider is `p`, with the given options. */
static supa_client *client_with_provider(provider *p, uint32_t auth_retries, uint64_t margin_ms,
                                         uint64_t heartbeat_ms) {
  supa_options *o = NULL;
  supa_client *c = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_token_provider(o, provider_cb, p, provider_destroyed));
  CHECK_OK(supa_options_set_auth_retries(o, auth_retries));
  CHECK_OK(supa_options_set_token_refresh_margin_ms(o, margin_ms));
  CHECK_OK(supa_options_set_heartbeat_interval_ms(o, heartbeat_ms));
  const uint64_t delays[] = {100, 200, 500};
  CHECK_OK(supa_options_set_reconnect_delays_ms(o, delays, 3));
  CHECK_OK(supa_options_set_rejoin_delays_ms(o, delays, 3));
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  return c;
}

static void test_new_option_setters(void) {
  test_begin("token_refresh_margin and auth_retries setters: NULL options");
  CHECK_RC(supa_options_set_auth_retries(NULL, 1), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_token_refresh_margin_ms(NULL, 1000), SUPA_NULL_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "options") != NULL);
}

/* A provider that only has expired tokens: `retries` recoverable refusals, then terminal. */
static void check_auth_retries(uint32_t retries) {
  fprintf(stderr, "   auth_retries = %u\n", retries);
  provider p;
  provider_init(&p, -10);
  supa_client *c = client_with_provider(&p, retries, 60000, 25000);
  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  char name[32];
  snprintf(name, sizeof name, "c-auth-retries-%u", retries);
  CHECK_OK(supa_client_channel(c, name, NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe(ch));
  size_t last = recorder_wait(&r, 0, is_token_rejected, NULL, "the token-rejected status");
  uint32_t recoverable = 0;
  for (size_t k = 0; k < last; k++) {
    const supa_event *ev = recorder_at(&r, k);
    CHECK(supa_event_subscribe_status(ev) != SUPA_STATUS_SUBSCRIBED);
    if (supa_event_subscribe_status(ev) == SUPA_STATUS_CHANNEL_ERROR) {
      size_t len = 0;
      const char *reason = supa_event_reason(ev, &len);
      CHECK(starts_with(reason, len, "InvalidJWTToken: Token has expired"));
      CHECK(supa_event_error_kind(ev) == SUPA_ERROR_KIND_RECOVERABLE);
      CHECK(!supa_event_is_token_rejected(ev));
      recoverable++;
    }
  }
  CHECK(recoverable == retries);
  /* Each retry asked the provider again. */
  CHECK(provider_calls(&p) >= (int)retries + 1);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_CLOSED);
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the channel listener") == 1);
  recorder_destroy_all(&r);
  provider_finish(&p);
}

static void test_auth_retries(void) {
  test_begin("auth_retries: a provider's refused tokens are retried that many times");
  check_auth_retries(0);
  check_auth_retries(2);
}

static int is_channel_trouble(const supa_event *ev, const void *arg) {
  (void)arg;
  uint32_t s = supa_event_subscribe_status(ev);
  return s == SUPA_STATUS_CHANNEL_ERROR || s == SUPA_STATUS_CLOSED || s == SUPA_STATUS_TIMED_OUT;
}

static void test_refresh_before_expiry(void) {
  test_begin("token refresh margin: the provider is asked before expiry; the channel stays");
  /* Tokens live 6 s; with a 2 s margin the provider is asked about 4 s into each. By the third
   * call the first token's expiry has long passed: had the refresh come too late, the server
   * would have closed the channel before it. Heartbeats are slow so that only the refresh
   * schedule asks. */
  provider p;
  provider_init(&p, 6);
  supa_client *c = client_with_provider(&p, 3, 2000, 60000);
  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-refresh", NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  int first = provider_calls(&p);
  CHECK(first >= 1);
  provider_wait_calls(&p, first + 2, DEADLINE_MS, "two refreshes");
  for (size_t k = 0; k < recorder_len(&r); k++)
    if (is_channel_trouble(recorder_at(&r, k), NULL))
      FAIL("channel status %s during refreshes", supa_event_status_name(recorder_at(&r, k)));
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_JOINED);
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the channel listener") == 1);
  recorder_destroy_all(&r);
  provider_finish(&p);
}

static void test_foregrounded_asks_provider(void) {
  test_begin("app_foregrounded: the provider is asked for a fresh token; the link is probed");
  provider p;
  provider_init(&p, 3600); /* no refresh due within the test */
  supa_client *c = client_with_provider(&p, 3, 60000, 60000);
  recorder r;
  recorder_init(&r);
  CHECK_OK(supa_client_on_event(c, recorder_cb, &r, recorder_destroyed, NULL));
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-foreground", NULL, &ch));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  int before = provider_calls(&p);
  size_t mark = recorder_len(&r);
  CHECK_OK(supa_client_app_backgrounded(c));
  CHECK_OK(supa_client_app_foregrounded(c));
  provider_wait_calls(&p, before + 1, DEADLINE_MS, "the provider call on foreground");
  /* The probe is a heartbeat sent now (the interval is a minute) and answered. */
  recorder_wait(&r, mark, is_heartbeat_ok, NULL, "the probe's heartbeat reply");
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_CONNECTED);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_JOINED);
  CHECK_RC(supa_client_app_foregrounded(NULL), SUPA_NULL_ARGUMENT);
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the client listener") == 1);
  recorder_destroy_all(&r);
  provider_finish(&p);
}

int main(void) {
  test_metrics();
  test_expired_at_join();
  test_expires_while_joined();
  test_new_option_setters();
  test_auth_retries();
  test_refresh_before_expiry();
  test_foregrounded_asks_provider();
  fprintf(stderr, "test_resilience: ok\n");
  return 0;
}
