/* Argument checking and lifetimes: NULL arguments, invalid UTF-8 and JSON, bad options,
 * callbacks and destructors of failed registrations, use after disconnect, shutdown and free,
 * and destructors that run exactly once. */
#include "harness.h"

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 'x', 0};

static void no_event(void *userdata, const supa_event *ev) {
  (void)userdata;
  (void)ev;
  FAIL("a callback of a failed registration was called");
}

static void no_destroy(void *userdata) {
  (void)userdata;
  FAIL("the destructor of a failed registration was called");
}

static void test_names_and_version(void) {
  test_begin("result names and version");
  CHECK(strcmp(supa_version(), SUPA_REALTIME_VERSION) == 0);
  CHECK(strcmp(supa_result_name(SUPA_OK), "SUPA_OK") == 0);
  CHECK(strcmp(supa_result_name(SUPA_WOULD_DEADLOCK), "SUPA_WOULD_DEADLOCK") == 0);
  CHECK(strcmp(supa_result_name(SUPA_PANIC), "SUPA_PANIC") == 0);
  CHECK(strcmp(supa_result_name(9999), "SUPA_UNKNOWN") == 0);
  CHECK(SUPA_OK == 0 && SUPA_NULL_ARGUMENT == 1 && SUPA_INVALID_UTF8 == 2 &&
        SUPA_WOULD_DEADLOCK == 8 && SUPA_SHUTDOWN == 9);
}

static void test_null_arguments(void) {
  test_begin("NULL arguments");
  supa_options *o = NULL;
  CHECK_RC(supa_options_new(NULL, "key", &o), SUPA_NULL_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "url") != NULL);
  CHECK(o == NULL); /* outputs are written only on success */
  CHECK_RC(supa_options_new("http://127.0.0.1:1", NULL, &o), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_new("http://127.0.0.1:1", "key", NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_heartbeat_interval_ms(NULL, 1000), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_add_param(NULL, "a", "b"), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_token_provider(NULL, NULL, NULL, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_options_new(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_options_set_broadcast_self(NULL, true), SUPA_NULL_ARGUMENT);

  supa_client *c = NULL;
  CHECK_RC(supa_client_new(NULL, &c), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_connect(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_connect_blocking(NULL, 10), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_disconnect(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_shutdown(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_set_auth(NULL, "t"), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_on_event(NULL, no_event, NULL, no_destroy, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_dispatch(NULL, 1, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_metrics(NULL, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_channel(NULL, "x", NULL, NULL), SUPA_NULL_ARGUMENT);
  CHECK(supa_client_connection_state(NULL) == SUPA_CONNECTION_SHUT_DOWN);

  CHECK_RC(supa_channel_subscribe(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_send_broadcast_json(NULL, "e", "{}"), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_send_broadcast_binary(NULL, "e", NULL, 0), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_track(NULL, "{}"), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_unsubscribe(NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_presence_state_json(NULL, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_on_broadcast(NULL, "*", no_event, NULL, no_destroy, NULL),
           SUPA_NULL_ARGUMENT);
  CHECK(supa_channel_topic(NULL) == NULL);
  CHECK(supa_channel_get_state(NULL) == SUPA_CHANNEL_CLOSED);

  size_t len = 77;
  CHECK(supa_event_get_kind(NULL) == 0);
  CHECK(supa_event_topic(NULL, &len) == NULL);
  CHECK(supa_event_payload_json(NULL, NULL) == NULL);
  CHECK(supa_event_payload_binary(NULL, NULL) == NULL);
  CHECK(supa_event_copy(NULL) == NULL);

  /* _free(NULL) is a no-op for every type. */
  supa_options_free(NULL);
  supa_channel_options_free(NULL);
  supa_client_free(NULL);
  supa_channel_free(NULL);
  supa_event_free(NULL);
  supa_string_free(NULL);
}

static void test_invalid_input(void) {
  test_begin("invalid UTF-8, JSON and option values");
  supa_options *o = NULL;
  CHECK_RC(supa_options_new(BAD_UTF8, "key", &o), SUPA_INVALID_UTF8);
  CHECK(strstr(supa_last_error_message(), "UTF-8") != NULL);
  CHECK_OK(supa_options_new("http://127.0.0.1:1/realtime/v1", "key", &o));
  CHECK(strcmp(supa_last_error_message(), "") == 0);
  CHECK_RC(supa_options_add_header(o, "x-test", BAD_UTF8), SUPA_INVALID_UTF8);
  CHECK_RC(supa_options_set_access_token(o, BAD_UTF8), SUPA_INVALID_UTF8);
  CHECK_RC(supa_options_set_dispatch_mode(o, 42), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_vsn(o, 7), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_heartbeat_interval_ms(o, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_push_timeout_ms(o, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_reconnect_delays_ms(o, NULL, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_reconnect_delays_ms(o, NULL, 2), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_reconnect_jitter(o, 1.5), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_queue_capacity(o, 0), SUPA_INVALID_ARGUMENT);
  CHECK(strcmp(supa_last_error_message(), "invalid argument: queue_capacity must be at least 1") == 0);
  /* Refused at the call, with the text every language gives. */
  CHECK_RC(supa_options_add_header(o, "x-test", "a\r\nInjected: 1"), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "no CR, LF") != NULL);
  CHECK_RC(supa_options_add_header(o, "bad name", "v"), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_add_header(o, "", "v"), SUPA_INVALID_ARGUMENT);
  const uint64_t day_and_a_bit = 86400001; /* seconds passed as milliseconds, say */
  CHECK_RC(supa_options_set_heartbeat_interval_ms(o, day_and_a_bit), SUPA_INVALID_ARGUMENT);
  CHECK(strcmp(supa_last_error_message(),
               "invalid argument: heartbeat_interval must be between 1 ms and 86400000 ms "
               "(got 86400001 ms)") == 0);
  CHECK_RC(supa_options_set_push_timeout_ms(o, day_and_a_bit), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_token_refresh_margin_ms(o, day_and_a_bit), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_token_refresh_margin_ms(o, UINT64_MAX), SUPA_INVALID_ARGUMENT);
  const uint64_t absurd[] = {100, day_and_a_bit};
  CHECK_RC(supa_options_set_reconnect_delays_ms(o, absurd, 2), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "reconnect_delays") != NULL);
  CHECK_RC(supa_options_set_rejoin_delays_ms(o, absurd, 2), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "rejoin_delays") != NULL);
  CHECK_RC(supa_options_set_reconnect_jitter(o, -0.1), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "reconnect_jitter") != NULL);
  /* Every valid setter. */
  const uint64_t delays[] = {100, 300};
  CHECK_OK(supa_options_set_reconnect_delays_ms(o, delays, 2));
  CHECK_OK(supa_options_set_rejoin_delays_ms(o, delays, 2));
  CHECK_OK(supa_options_set_reconnect_jitter(o, 0.0));
  CHECK_OK(supa_options_set_heartbeat_interval_ms(o, 15000));
  CHECK_OK(supa_options_set_push_timeout_ms(o, 5000));
  CHECK_OK(supa_options_add_param(o, "log_level", "info"));
  CHECK_OK(supa_options_add_header(o, "x-test", "1"));
  CHECK_OK(supa_options_set_access_token(o, "token"));
  CHECK_OK(supa_options_set_access_token(o, NULL));
  CHECK_OK(supa_options_set_vsn(o, SUPA_VSN_1));
  CHECK_OK(supa_options_set_vsn(o, SUPA_VSN_2));
  CHECK_OK(supa_options_set_native_roots(o, false));
  CHECK_OK(supa_options_set_queue_capacity(o, 100));
  CHECK_OK(supa_options_set_dispatch_mode(o, SUPA_DISPATCH_THREAD));

  /* A custom CA that is not PEM is refused when the client is made. */
  const char junk[] = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  supa_options *bad_ca = NULL;
  CHECK_OK(supa_options_new("https://127.0.0.1:1/realtime/v1", "key", &bad_ca));
  CHECK_OK(supa_options_set_custom_ca_pem(bad_ca, (const uint8_t *)junk, sizeof junk - 1));
  supa_client *c = NULL;
  supa_result rc = supa_client_new(bad_ca, &c);
  CHECK(rc == SUPA_TLS || rc == SUPA_INVALID_ARGUMENT);
  CHECK(c == NULL);
  supa_options_free(bad_ca);

  supa_options *bad_url = NULL;
  CHECK_OK(supa_options_new("ftp://example.com", "key", &bad_url));
  CHECK_RC(supa_client_new(bad_url, &c), SUPA_INVALID_ARGUMENT);
  supa_options_free(bad_url);

  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o); /* the client keeps its own copy */
  CHECK_RC(supa_client_dispatch(c, 10, NULL), SUPA_INVALID_ARGUMENT); /* thread mode */
  CHECK_RC(supa_client_set_auth(c, BAD_UTF8), SUPA_INVALID_UTF8);

  supa_channel *ch = NULL;
  CHECK_RC(supa_client_channel(c, BAD_UTF8, NULL, &ch), SUPA_INVALID_UTF8);
  CHECK(ch == NULL);
  supa_channel_options *co = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_RC(supa_channel_options_set_presence_key(co, BAD_UTF8), SUPA_INVALID_UTF8);
  CHECK_RC(supa_channel_options_set_postgres_ready_timeout_ms(co, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_channel_options_set_postgres_ready_timeout_ms(co, 86400001), SUPA_INVALID_ARGUMENT);
  CHECK_OK(supa_channel_options_set_presence_key(co, "me"));
  CHECK_OK(supa_client_channel(c, "room", co, &ch));
  supa_channel_options_free(co);
  CHECK(strcmp(supa_channel_topic(ch), "realtime:room") == 0);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_CLOSED);

  /* Failed registrations call neither the callback nor the destructor. */
  CHECK_RC(supa_channel_on_broadcast(ch, BAD_UTF8, no_event, NULL, no_destroy, NULL),
           SUPA_INVALID_UTF8);
  CHECK_RC(supa_channel_on_broadcast(ch, "*", NULL, NULL, no_destroy, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_on_postgres_changes(ch, "INSERT", BAD_UTF8, NULL, NULL, NULL, 0, no_event,
                                            NULL, no_destroy, NULL),
           SUPA_INVALID_UTF8);
  CHECK_RC(supa_channel_on_postgres_changes(ch, "INSERT", "public", NULL, NULL, NULL, 2, no_event,
                                            NULL, no_destroy, NULL),
           SUPA_NULL_ARGUMENT);
  /* Only *, INSERT, UPDATE and DELETE: anything else would never match a change. */
  CHECK_RC(supa_channel_on_postgres_changes(ch, "TRUNCATE", "public", NULL, NULL, NULL, 0, no_event,
                                            NULL, no_destroy, NULL),
           SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "postgres_changes event must be") != NULL);
  CHECK_RC(supa_channel_on_postgres_changes(ch, "insert", "public", NULL, NULL, NULL, 0, no_event,
                                            NULL, no_destroy, NULL),
           SUPA_INVALID_ARGUMENT);

  /* Pushing before subscribe is refused; bad payloads are refused first. */
  CHECK_RC(supa_channel_send_broadcast_json(ch, "e", "{\"a\":"), SUPA_INVALID_JSON);
  CHECK_RC(supa_channel_send_broadcast_json(ch, "e", BAD_UTF8), SUPA_INVALID_UTF8);
  CHECK_RC(supa_channel_send_broadcast_json(ch, BAD_UTF8, "{}"), SUPA_INVALID_UTF8);
  CHECK_RC(supa_channel_send_broadcast_binary(ch, "e", NULL, 3), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_channel_send_broadcast_json(ch, "e", "{}"), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_channel_track(ch, "not json"), SUPA_INVALID_JSON);
  CHECK_RC(supa_channel_track(ch, "[1, 2]"), SUPA_INVALID_ARGUMENT); /* meta must be an object */
  CHECK_RC(supa_channel_untrack(ch), SUPA_INVALID_ARGUMENT);

  char *json = NULL;
  CHECK_OK(supa_channel_presence_state_json(ch, &json));
  CHECK(strcmp(json, "{}") == 0);
  supa_string_free(json);
  CHECK_OK(supa_client_channel_states_json(c, &json));
  CHECK(strstr(json, "\"realtime:room\":\"closed\"") != NULL);
  supa_string_free(json);

  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  CHECK_OK(supa_client_metrics(c, &m));
  CHECK(m.connects == 0 && m.messages_out == 0);
  CHECK(m.struct_size == sizeof(supa_metrics));
  /* struct_size 0 (forgotten) or too small: refused, nothing written. */
  memset(&m, 0xab, sizeof m);
  m.struct_size = 0;
  CHECK_RC(supa_client_metrics(c, &m), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "struct_size") != NULL);
  CHECK(m.connects == 0xababababababababULL);
  m.struct_size = sizeof(supa_metrics) - sizeof(uint64_t);
  CHECK_RC(supa_client_metrics(c, &m), SUPA_INVALID_ARGUMENT);
  CHECK(m.connects == 0xababababababababULL);
  m.struct_size = (size_t)0xababababababababULL; /* never set: refused, not trusted */
  CHECK_RC(supa_client_metrics(c, &m), SUPA_INVALID_ARGUMENT);
  CHECK(m.connects == 0xababababababababULL);
  /* A program built against a newer, larger supa_metrics: what this library does not know
   * reads 0. */
  struct {
    supa_metrics known;
    uint64_t future[2];
  } newer;
  memset(&newer, 0xab, sizeof newer);
  newer.known.struct_size = sizeof newer;
  CHECK_OK(supa_client_metrics(c, &newer.known));
  CHECK(newer.known.struct_size == sizeof newer);
  CHECK(newer.known.connects == 0 && newer.known.lagged_events == 0);
  CHECK(newer.future[0] == 0 && newer.future[1] == 0);

  supa_channel_free(ch);
  supa_client_free(c);
}

static void test_lifecycle(void) {
  test_begin("use after disconnect, shutdown and free; destructors exactly once");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  recorder client_rec, removed_rec, chan_rec, bc_rec, late_rec;
  recorder_init(&client_rec);
  recorder_init(&removed_rec);
  recorder_init(&chan_rec);
  recorder_init(&bc_rec);
  recorder_init(&late_rec);

  uint64_t removed_id = 0;
  CHECK_OK(supa_client_on_event(c, recorder_cb, &client_rec, recorder_destroyed, NULL));
  CHECK_OK(supa_client_on_event(c, recorder_cb, &removed_rec, recorder_destroyed, &removed_id));
  CHECK(removed_id != 0);

  supa_channel_options *co = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_broadcast_self(co, true));
  CHECK_OK(supa_channel_options_set_broadcast_ack(co, true));
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "lifecycle", co, &ch));
  supa_channel_options_free(co);
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &chan_rec, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_on_broadcast(ch, "ping", recorder_cb, &bc_rec, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_CONNECTED);
  CHECK(supa_channel_get_state(ch) == SUPA_CHANNEL_JOINED);

  /* Bindings cannot be added after subscribe: neither callback nor destructor ever runs. */
  CHECK_RC(supa_channel_on_postgres_changes(ch, "*", "public", NULL, NULL, NULL, 0, no_event,
                                            NULL, no_destroy, NULL),
           SUPA_INVALID_ARGUMENT);

  CHECK_OK(supa_channel_send_broadcast_json_blocking(ch, "ping", "{\"n\":1}", DEADLINE_MS));
  wait_broadcast(&bc_rec, 0, "ping");

  /* Removing a listener runs its destructor once, and it gets nothing after. */
  CHECK_OK(supa_client_remove_listener(c, removed_id));
  CHECK(recorder_wait_destroyed(&removed_rec, 1, "a removed listener") == 1);
  size_t removed_len = recorder_len(&removed_rec);

  /* Disconnect: the socket closes, the channel stays registered; pushes do not hang. */
  size_t mark = recorder_len(&client_rec);
  CHECK_OK(supa_client_disconnect(c));
  uint32_t disconnected = SUPA_CONNECTION_DISCONNECTED;
  (void)disconnected;
  for (;;) {
    size_t i = wait_kind(&client_rec, mark, SUPA_EVENT_CONNECTION_STATUS);
    if (supa_event_connection_state(recorder_at(&client_rec, i)) == SUPA_CONNECTION_DISCONNECTED)
      break;
    mark = i + 1;
  }
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_DISCONNECTED);
  supa_result rc = supa_channel_send_broadcast_json_blocking(ch, "ping", "{\"n\":2}", 300);
  CHECK(rc != SUPA_OK && rc != SUPA_PANIC);
  CHECK(strlen(supa_last_error_message()) > 0);

  /* Connect again: the channel rejoins by itself and broadcasts flow. */
  size_t bc_mark = recorder_len(&bc_rec);
  size_t st_mark = recorder_len(&chan_rec);
  CHECK_OK(supa_client_connect_blocking(c, DEADLINE_MS));
  wait_status(&chan_rec, st_mark, SUPA_STATUS_SUBSCRIBED);
  CHECK_OK(supa_channel_send_broadcast_json_blocking(ch, "ping", "{\"n\":3}", DEADLINE_MS));
  size_t i = wait_broadcast(&bc_rec, bc_mark, "ping");
  size_t len = 0;
  const char *payload = supa_event_payload_json(recorder_at(&bc_rec, i), &len);
  /* The {"n":2} sent while disconnected may or may not go out after the rejoin. */
  CHECK(text_eq(payload, &len, "{\"n\":2}") || text_eq(payload, &len, "{\"n\":3}"));

  /* Shutdown: later calls say so. */
  CHECK_OK(supa_client_shutdown(c));
  CHECK(recorder_wait_destroyed(&client_rec, 1, "the client listener") == 1);
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_SHUT_DOWN);
  CHECK_RC(supa_client_connect(c), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_connect_blocking(c, 1000), SUPA_SHUTDOWN);
  supa_channel *ch2 = NULL;
  CHECK_RC(supa_client_channel(c, "after", NULL, &ch2), SUPA_SHUTDOWN);
  CHECK(ch2 == NULL);
  rc = supa_channel_send_broadcast_json(ch, "ping", "{}");
  CHECK(rc != SUPA_OK);

  /* Free the client; the channel handle stays valid and reports SUPA_SHUTDOWN. */
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&chan_rec, 1, "the channel listener") == 1);
  CHECK(recorder_wait_destroyed(&bc_rec, 1, "the broadcast listener") == 1);
  CHECK_RC(supa_channel_send_broadcast_json(ch, "ping", "{}"), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_subscribe(ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_track(ch, "{}"), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_unsubscribe(ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_event(ch, no_event, NULL, no_destroy, NULL), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_broadcast(ch, "*", no_event, NULL, no_destroy, NULL), SUPA_SHUTDOWN);
  CHECK_RC(supa_channel_on_presence(ch, no_event, NULL, no_destroy, NULL), SUPA_SHUTDOWN);
  supa_channel_free(ch);

  /* Exactly once, and nothing delivered after removal. */
  CHECK(recorder_destroy_count(&client_rec) == 1);
  CHECK(recorder_destroy_count(&removed_rec) == 1);
  CHECK(recorder_destroy_count(&chan_rec) == 1);
  CHECK(recorder_destroy_count(&bc_rec) == 1);
  CHECK(recorder_len(&removed_rec) == removed_len);
  (void)late_rec;
  recorder_destroy_all(&client_rec);
  recorder_destroy_all(&removed_rec);
  recorder_destroy_all(&chan_rec);
  recorder_destroy_all(&bc_rec);
  recorder_destroy_all(&late_rec);
}

static int is_heartbeat_ok(const supa_event *ev, const void *arg) {
  (void)arg;
  return supa_event_get_kind(ev) == SUPA_EVENT_HEARTBEAT &&
         supa_event_heartbeat_status(ev) == SUPA_HEARTBEAT_OK && supa_event_heartbeat_rtt_us(ev) > 0;
}

static int is_connected(const supa_event *ev, const void *arg) {
  (void)arg;
  return supa_event_get_kind(ev) == SUPA_EVENT_CONNECTION_STATUS &&
         supa_event_connection_state(ev) == SUPA_CONNECTION_CONNECTED;
}

static void test_heartbeat_auth_and_probes(void) {
  test_begin("connection status, heartbeats with RTT, set_auth, link probes");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_heartbeat_interval_ms(o, 100));
  CHECK_OK(supa_options_add_param(o, "log_level", "info"));
  CHECK_OK(supa_options_add_header(o, "x-client-info", "supa-realtime-c-tests"));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  recorder r;
  recorder_init(&r);
  CHECK_OK(supa_client_on_event(c, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_client_connect(c));
  size_t i = recorder_wait(&r, 0, is_connected, NULL, "CONNECTED");
  CHECK(supa_event_topic(recorder_at(&r, i), NULL) == NULL);
  CHECK(supa_event_subscribe_status(recorder_at(&r, i)) == SUPA_STATUS_NONE);
  i = recorder_wait(&r, 0, is_heartbeat_ok, NULL, "a heartbeat reply");
  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  CHECK_OK(supa_client_metrics(c, &m));
  CHECK(m.heartbeat_rtt_us > 0 && m.connects == 1);
  CHECK_OK(supa_client_set_auth(c, env_or_die("SUPA_TEST_KEY")));
  CHECK_OK(supa_client_set_auth(c, NULL));
  CHECK_OK(supa_client_network_changed(c));
  CHECK_OK(supa_client_app_backgrounded(c));
  CHECK_OK(supa_client_app_foregrounded(c));
  /* Still connected and answering heartbeats after the probes. */
  i = recorder_wait(&r, i + 1, is_heartbeat_ok, NULL, "a heartbeat reply after the probes");
  CHECK(supa_client_connection_state(c) == SUPA_CONNECTION_CONNECTED);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the client listener") == 1);
  recorder_destroy_all(&r);
}

static void test_refused_join(void) {
  test_begin("a refused join: SUPA_CHANNEL_ERROR, the server's reason, a terminal kind");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  recorder r;
  recorder_init(&r);
  supa_channel_options *co = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_private(co, true)); /* anon may not read it */
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "c-secret", co, &ch));
  supa_channel_options_free(co);
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, &r, recorder_destroyed, NULL));
  CHECK_RC(supa_channel_subscribe_blocking(ch, DEADLINE_MS), SUPA_CHANNEL_ERROR);
  CHECK(strstr(supa_last_error_message(), "Unauthorized") != NULL);
  size_t i = wait_status(&r, 0, SUPA_STATUS_CHANNEL_ERROR);
  const supa_event *ev = recorder_at(&r, i);
  size_t len = 0;
  const char *reason = supa_event_reason(ev, &len);
  CHECK(reason && len > 12 && strncmp(reason, "Unauthorized", 12) == 0);
  CHECK(supa_event_error_kind(ev) == SUPA_ERROR_KIND_TERMINAL);
  CHECK(strcmp(supa_event_status_name(ev), "CHANNEL_ERROR") == 0);
  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&r, 1, "the channel listener") == 1);
  recorder_destroy_all(&r);
}

static int token_calls;
static int token_destroyed;
static pthread_mutex_t token_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t token_cv = PTHREAD_COND_INITIALIZER;

static int32_t token_cb(void *userdata, const char **token) {
  pthread_mutex_lock(&token_mu);
  token_calls++;
  pthread_mutex_unlock(&token_mu);
  *token = (const char *)userdata; /* the API key: the server accepts it as a token */
  return 0;
}

static void token_destroy(void *userdata) {
  (void)userdata;
  pthread_mutex_lock(&token_mu);
  token_destroyed++;
  pthread_cond_broadcast(&token_cv);
  pthread_mutex_unlock(&token_mu);
}

static void test_token_provider(void) {
  test_begin("token provider: called on connect, destroyed once after options and client");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_token_provider(o, token_cb, (void *)env_or_die("SUPA_TEST_KEY"),
                                           token_destroy));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_options_free(o);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "token", NULL, &ch));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  pthread_mutex_lock(&token_mu);
  CHECK(token_calls >= 1);
  CHECK(token_destroyed == 0); /* the client still holds it */
  pthread_mutex_unlock(&token_mu);
  supa_channel_free(ch);
  supa_client_free(c);
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&token_mu);
  while (token_destroyed == 0)
    if (pthread_cond_timedwait(&token_cv, &token_mu, &dl) == ETIMEDOUT)
      FAIL("the token provider's destructor never ran");
  CHECK(token_destroyed == 1);
  pthread_mutex_unlock(&token_mu);
}

int main(void) {
  test_names_and_version();
  test_null_arguments();
  test_invalid_input();
  test_lifecycle();
  test_heartbeat_auth_and_probes();
  test_refused_join();
  test_token_provider();
  fprintf(stderr, "test_api: ok\n");
  return 0;
}
