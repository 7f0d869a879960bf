/* The client's bounds on what a server can make it buffer (supa_options_set_max_*): each
 * setter refuses a value that would break the connection with the core's text, and against
 * the real server a broadcast larger than max_payload_size is skipped with an error event
 * naming the bound while the connection and the channel carry on. */
#include "harness.h"

static void test_setters(void) {
  test_begin("supa_options_set_max_*: validated, same text as the core");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new("ws://127.0.0.1:1/realtime/v1", "k", &o));
  CHECK_RC(supa_options_set_max_message_size(NULL, 4096), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_max_payload_size(NULL, 4096), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_max_presence_keys(NULL, 1), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_max_presence_size(NULL, 1), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_options_set_max_message_size(o, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_max_payload_size(o, 1023), SUPA_INVALID_ARGUMENT);
  CHECK(strcmp(supa_last_error_message(),
               "invalid argument: max_payload_size must be at least 1024 (got 1023)") == 0);
  CHECK_RC(supa_options_set_max_presence_keys(o, 0), SUPA_INVALID_ARGUMENT);
  CHECK_RC(supa_options_set_max_presence_size(o, 1023), SUPA_INVALID_ARGUMENT);
  CHECK_OK(supa_options_set_max_message_size(o, 1024));
  CHECK_OK(supa_options_set_max_payload_size(o, (size_t)64 << 20));
  CHECK_OK(supa_options_set_max_presence_keys(o, 1));
  CHECK_OK(supa_options_set_max_presence_size(o, 1024));
  supa_client *c = NULL;
  CHECK_OK(supa_client_new(o, &c));
  supa_client_free(c);
  supa_options_free(o);
}

static int is_payload_bound_error(const supa_event *ev, const void *arg) {
  (void)arg;
  size_t len = 0;
  const char *msg = supa_event_reason(ev, &len);
  if (supa_event_get_kind(ev) != SUPA_EVENT_ERROR || !msg) return 0;
  char text[512];
  snprintf(text, sizeof text, "%.*s", (int)len, msg);
  return strstr(text, "over max_payload_size (1024)") != NULL;
}

static void test_payload_bound_against_the_server(void) {
  test_begin("a broadcast over max_payload_size: an error event, the connection survives");
  supa_options *o = NULL;
  CHECK_OK(supa_options_new(env_or_die("SUPA_TEST_URL"), env_or_die("SUPA_TEST_KEY"), &o));
  CHECK_OK(supa_options_set_max_payload_size(o, 1024));
  supa_client *small = NULL;
  CHECK_OK(supa_client_new(o, &small));
  supa_options_free(o);
  supa_client *sender = test_client(SUPA_DISPATCH_THREAD);

  recorder all, bc;
  recorder_init(&all);
  recorder_init(&bc);
  CHECK_OK(supa_client_on_event(small, recorder_cb, &all, recorder_destroyed, NULL));
  supa_channel *rx = NULL, *tx = NULL;
  CHECK_OK(supa_client_channel(small, "bounded", NULL, &rx));
  CHECK_OK(supa_channel_on_broadcast(rx, "*", recorder_cb, &bc, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(rx, DEADLINE_MS));
  CHECK_OK(supa_client_channel(sender, "bounded", NULL, &tx));
  CHECK_OK(supa_channel_subscribe_blocking(tx, DEADLINE_MS));

  /* 4 KiB of payload: well over the receiver's bound, far under the server's. */
  char big[4200];
  int n = snprintf(big, sizeof big, "{\"text\":\"");
  memset(big + n, 'x', 4096);
  snprintf(big + n + 4096, sizeof big - (size_t)n - 4096, "\"}");
  CHECK_OK(supa_channel_send_broadcast_json_blocking(tx, "big", big, DEADLINE_MS));
  CHECK_OK(supa_channel_send_broadcast_json_blocking(tx, "small", "{\"n\":1}", DEADLINE_MS));

  size_t i = recorder_wait(&all, 0, is_payload_bound_error, NULL, "the max_payload_size error");
  size_t len = 0;
  const char *msg = supa_event_reason(recorder_at(&all, i), &len);
  fprintf(stderr, "   error event: %.*s\n", (int)len, msg);
  CHECK(strncmp(msg, "skipped a ", 10) == 0 && strstr(msg, " frame of ") != NULL);
  /* The frame after it arrives on the same connection; the big one never does. */
  size_t j = wait_broadcast(&bc, 0, "small");
  CHECK(j == 0);
  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  CHECK_OK(supa_client_metrics(small, &m));
  CHECK(m.connects == 1 && m.reconnects == 0);
  CHECK(supa_client_connection_state(small) == SUPA_CONNECTION_CONNECTED);
  CHECK(supa_channel_get_state(rx) == SUPA_CHANNEL_JOINED);

  supa_channel_free(rx);
  supa_channel_free(tx);
  supa_client_free(small);
  supa_client_free(sender);
  recorder_wait_destroyed(&all, 1, "all");
  recorder_wait_destroyed(&bc, 1, "bc");
  recorder_destroy_all(&all);
  recorder_destroy_all(&bc);
}

int main(void) {
  test_setters();
  test_payload_bound_against_the_server();
  fprintf(stderr, "test_bounds: ok\n");
  return 0;
}
