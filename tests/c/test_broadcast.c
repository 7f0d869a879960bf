/* Broadcast between two clients: JSON and binary over the socket, REST sends, self broadcasts
 * with acks, event filters, accessors and copies, metrics, and a slow callback that must not
 * hold up API calls or reorder events. */
#include "harness.h"

typedef struct slow_state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered;  /* the slow callback started */
  int release;  /* main lets it finish */
} slow_state;

/* Blocks the dispatcher thread inside a callback until the main thread says so (bounded). */
static void slow_cb(void *userdata, const supa_event *ev) {
  slow_state *s = (slow_state *)userdata;
  const char *name = supa_event_name(ev, NULL);
  if (!name || strcmp(name, "seq") != 0) return;
  pthread_mutex_lock(&s->mu);
  if (!s->entered) {
    s->entered = 1;
    pthread_cond_broadcast(&s->cv);
    struct timespec dl = deadline_after(DEADLINE_MS);
    while (!s->release)
      if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) FAIL("never released");
  }
  pthread_mutex_unlock(&s->mu);
}

static supa_channel *join(supa_client *c, const char *name, int self, int ack) {
  supa_channel_options *co = NULL;
  supa_channel *ch = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_broadcast_self(co, self));
  CHECK_OK(supa_channel_options_set_broadcast_ack(co, ack));
  CHECK_OK(supa_client_channel(c, name, co, &ch));
  supa_channel_options_free(co);
  return ch;
}

int main(void) {
  supa_client *a = test_client(SUPA_DISPATCH_THREAD);
  supa_client *b = test_client(SUPA_DISPATCH_THREAD);
  recorder a_self, b_all, b_only, b_events;
  recorder_init(&a_self);
  recorder_init(&b_all);
  recorder_init(&b_only);
  recorder_init(&b_events);

  supa_channel *cha = join(a, "room-bc", 1, 1);
  supa_channel *chb = join(b, "room-bc", 0, 0);
  CHECK_OK(supa_channel_on_broadcast(cha, "*", recorder_cb, &a_self, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_on_broadcast(chb, "*", recorder_cb, &b_all, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_on_broadcast(chb, "ONLY", recorder_cb, &b_only, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_on_event(chb, recorder_cb, &b_events, recorder_destroyed, NULL));

  test_begin("subscribe with status events");
  CHECK_OK(supa_channel_subscribe_blocking(cha, DEADLINE_MS));
  CHECK_OK(supa_channel_subscribe(chb));
  size_t i = wait_status(&b_events, 0, SUPA_STATUS_SUBSCRIBED);
  const supa_event *st = recorder_at(&b_events, i);
  CHECK(strcmp(supa_event_status_name(st), "SUBSCRIBED") == 0);
  CHECK(supa_event_error_kind(st) == SUPA_ERROR_KIND_NONE);
  size_t len = 0;
  CHECK(text_eq(supa_event_topic(st, &len), &len, "realtime:room-bc"));
  CHECK(supa_channel_get_state(chb) == SUPA_CHANNEL_JOINED);

  test_begin("JSON broadcast, acked, received by the peer and by self");
  CHECK_OK(supa_channel_send_broadcast_json_blocking(cha, "greet", "{\"text\":\"h\\u00e9llo\",\"n\":1}",
                                                     DEADLINE_MS));
  i = wait_broadcast(&b_all, 0, "greet");
  const supa_event *ev = recorder_at(&b_all, i);
  CHECK(supa_event_get_kind(ev) == SUPA_EVENT_BROADCAST);
  const char *json = supa_event_payload_json(ev, &len);
  CHECK(text_eq(json, &len, "{\"text\":\"h\xc3\xa9llo\",\"n\":1}"));
  CHECK(json[len] == '\0');
  CHECK(supa_event_payload_binary(ev, &len) == NULL && len == 0);
  CHECK(text_eq(supa_event_topic(ev, &len), &len, "realtime:room-bc"));
  CHECK(supa_event_subscribe_status(ev) == SUPA_STATUS_NONE);
  CHECK(supa_event_presence_key(ev, NULL) == NULL);
  CHECK(supa_event_change_table(ev, NULL) == NULL);
  wait_broadcast(&a_self, 0, "greet");

  test_begin("binary broadcast (with NUL bytes)");
  const uint8_t bytes[] = {0, 1, 2, 255, 0, 42};
  CHECK_OK(supa_channel_send_broadcast_binary_blocking(cha, "blob", bytes, sizeof bytes, DEADLINE_MS));
  i = wait_broadcast(&b_all, 0, "blob");
  ev = recorder_at(&b_all, i);
  const uint8_t *bin = supa_event_payload_binary(ev, &len);
  CHECK(bin != NULL && len == sizeof bytes && memcmp(bin, bytes, len) == 0);
  CHECK(supa_event_payload_json(ev, &len) == NULL && len == 0);
  CHECK_OK(supa_channel_send_broadcast_binary(cha, "empty", NULL, 0));
  i = wait_broadcast(&b_all, 0, "empty");
  bin = supa_event_payload_binary(recorder_at(&b_all, i), &len);
  CHECK(bin != NULL && len == 0);

  test_begin("filtered listener (case-insensitive event name)");
  CHECK_OK(supa_channel_send_broadcast_json(cha, "other", "{}"));
  CHECK_OK(supa_channel_send_broadcast_json(cha, "only", "{\"x\":true}"));
  wait_broadcast(&b_all, 0, "only");
  i = wait_broadcast(&b_only, 0, "only");
  CHECK(i == 0);
  CHECK(recorder_len(&b_only) == 1);

  test_begin("REST broadcast (JSON and binary), without joining");
  supa_channel *rest = join(a, "room-bc-rest", 0, 0);
  supa_channel *chb2 = join(b, "room-bc-rest", 0, 0);
  recorder b_rest;
  recorder_init(&b_rest);
  CHECK_OK(supa_channel_on_broadcast(chb2, "*", recorder_cb, &b_rest, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(chb2, DEADLINE_MS));
  CHECK_OK(supa_channel_http_send_json_blocking(rest, "rest", "{\"via\":\"http\"}", DEADLINE_MS));
  i = wait_broadcast(&b_rest, 0, "rest");
  json = supa_event_payload_json(recorder_at(&b_rest, i), &len);
  CHECK(text_eq(json, &len, "{\"via\":\"http\"}"));
  CHECK_OK(supa_channel_http_send_binary_blocking(rest, "rest-bin", bytes, sizeof bytes, DEADLINE_MS));
  i = wait_broadcast(&b_rest, 0, "rest-bin");
  bin = supa_event_payload_binary(recorder_at(&b_rest, i), &len);
  CHECK(bin && len == sizeof bytes && memcmp(bin, bytes, len) == 0);
  CHECK_OK(supa_channel_http_send_json(rest, "rest-nowait", "{}"));
  wait_broadcast(&b_rest, 0, "rest-nowait");
  CHECK_RC(supa_channel_http_send_json_blocking(rest, "rest", "nope", DEADLINE_MS), SUPA_INVALID_JSON);

  test_begin("a slow callback holds neither API calls nor order");
  slow_state slow;
  memset(&slow, 0, sizeof slow);
  pthread_mutex_init(&slow.mu, NULL);
  pthread_cond_init(&slow.cv, NULL);
  CHECK_OK(supa_channel_on_broadcast(chb, "seq", slow_cb, &slow, NULL, NULL));
  size_t mark = recorder_len(&b_all);
  CHECK_OK(supa_channel_send_broadcast_json_blocking(cha, "seq", "{\"i\":0}", DEADLINE_MS));
  pthread_mutex_lock(&slow.mu);
  struct timespec dl = deadline_after(DEADLINE_MS);
  while (!slow.entered)
    if (pthread_cond_timedwait(&slow.cv, &slow.mu, &dl) == ETIMEDOUT) FAIL("slow callback not entered");
  pthread_mutex_unlock(&slow.mu);
  /* B's dispatcher is stuck in the callback; B's API still answers and A keeps sending. */
  supa_metrics m = {.struct_size = sizeof(supa_metrics)};
  CHECK_OK(supa_client_metrics(b, &m));
  CHECK_OK(supa_channel_send_broadcast_json_blocking(chb, "from-b", "{}", DEADLINE_MS));
  for (int k = 1; k < 5; k++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", k);
    CHECK_OK(supa_channel_send_broadcast_json_blocking(cha, "seq", payload, DEADLINE_MS));
  }
  pthread_mutex_lock(&slow.mu);
  slow.release = 1;
  pthread_cond_broadcast(&slow.cv);
  pthread_mutex_unlock(&slow.mu);
  for (int k = 0; k < 5; k++) {
    char want[32];
    snprintf(want, sizeof want, "{\"i\":%d}", k);
    mark = wait_broadcast(&b_all, mark, "seq");
    json = supa_event_payload_json(recorder_at(&b_all, mark), &len);
    if (!text_eq(json, &len, want)) FAIL("event %d out of order: %.*s", k, (int)len, json);
    mark++;
  }

  test_begin("metrics and channel states");
  CHECK_OK(supa_client_metrics(a, &m));
  CHECK(m.connects == 1 && m.reconnects == 0);
  CHECK(m.messages_out >= 5 && m.messages_in >= 5);
  char *states = NULL;
  CHECK_OK(supa_client_channel_states_json(b, &states));
  CHECK(strstr(states, "\"realtime:room-bc\":\"joined\"") != NULL);
  supa_string_free(states);

  test_begin("unsubscribe: CLOSED, then the channel's destructors run once");
  size_t st_mark = recorder_len(&b_events);
  CHECK_OK(supa_channel_unsubscribe_blocking(chb, DEADLINE_MS));
  wait_status(&b_events, st_mark, SUPA_STATUS_CLOSED);
  CHECK(recorder_wait_destroyed(&b_events, 1, "b_events") == 1);
  CHECK(recorder_wait_destroyed(&b_all, 1, "b_all") == 1);
  CHECK(recorder_wait_destroyed(&b_only, 1, "b_only") == 1);
  CHECK(supa_channel_get_state(chb) == SUPA_CHANNEL_CLOSED);
  CHECK_RC(supa_channel_subscribe(chb), SUPA_INVALID_ARGUMENT); /* single use */

  supa_channel_free(cha);
  supa_channel_free(chb);
  supa_channel_free(chb2);
  supa_channel_free(rest);
  supa_client_free(a);
  supa_client_free(b);
  CHECK(recorder_wait_destroyed(&a_self, 1, "a_self") == 1);
  CHECK(recorder_wait_destroyed(&b_rest, 1, "b_rest") == 1);
  CHECK(recorder_destroy_count(&b_all) == 1 && recorder_destroy_count(&b_events) == 1);
  recorder_destroy_all(&a_self);
  recorder_destroy_all(&b_all);
  recorder_destroy_all(&b_only);
  recorder_destroy_all(&b_events);
  recorder_destroy_all(&b_rest);
  pthread_mutex_destroy(&slow.mu);
  pthread_cond_destroy(&slow.cv);
  fprintf(stderr, "test_broadcast: ok\n");
  return 0;
}
