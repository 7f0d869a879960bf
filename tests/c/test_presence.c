/* Presence between two clients: track (blocking and not), join/leave events with their
 * accessors, presence state as JSON, untrack. */
#include "harness.h"

typedef struct key_kind {
  uint32_t kind;
  const char *key;
} key_kind;

static int is_presence(const supa_event *ev, const void *arg) {
  const key_kind *want = (const key_kind *)arg;
  const char *key = supa_event_presence_key(ev, NULL);
  return supa_event_get_kind(ev) == want->kind && key && strcmp(key, want->key) == 0;
}

static supa_channel *join(supa_client *c, const char *key, recorder *r) {
  supa_channel_options *co = NULL;
  supa_channel *ch = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_presence_key(co, key));
  CHECK_OK(supa_client_channel(c, "room-presence", co, &ch));
  supa_channel_options_free(co);
  CHECK_OK(supa_channel_on_presence(ch, recorder_cb, r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  return ch;
}

int main(void) {
  supa_client *a = test_client(SUPA_DISPATCH_THREAD);
  supa_client *b = test_client(SUPA_DISPATCH_THREAD);
  recorder ra, rb;
  recorder_init(&ra);
  recorder_init(&rb);
  supa_channel *cha = join(a, "alice", &ra);
  supa_channel *chb = join(b, "bob", &rb);

  test_begin("track (blocking): the peer sees a join with the metas");
  CHECK_OK(supa_channel_track_blocking(cha, "{\"user\":\"alice\",\"status\":\"online\"}", DEADLINE_MS));
  key_kind alice_join = {SUPA_EVENT_PRESENCE_JOIN, "alice"};
  size_t i = recorder_wait(&rb, 0, is_presence, &alice_join, "alice's join");
  const supa_event *ev = recorder_at(&rb, i);
  size_t len = 0;
  const char *changed = supa_event_presence_changed_json(ev, &len);
  CHECK(changed && changed[0] == '[' && strstr(changed, "\"user\":\"alice\"") != NULL);
  CHECK(strstr(changed, "presence_ref") != NULL);
  const char *current = supa_event_presence_current_json(ev, &len);
  CHECK(current && current[0] == '[');
  const char *payload = supa_event_payload_json(ev, &len);
  CHECK(payload && strstr(payload, "\"newPresences\"") != NULL);
  CHECK(supa_event_topic(ev, &len) && strcmp(supa_event_topic(ev, NULL), "realtime:room-presence") == 0);
  uint32_t sync = SUPA_EVENT_PRESENCE_SYNC;
  recorder_wait(&rb, 0, is_kind, &sync, "a presence sync");

  test_begin("presence state as JSON");
  char *state = NULL;
  CHECK_OK(supa_channel_presence_state_json(chb, &state));
  CHECK(strstr(state, "\"alice\":[{") != NULL);
  CHECK(strstr(state, "\"status\":\"online\"") != NULL);
  supa_string_free(state);

  test_begin("track without waiting: alice sees bob");
  CHECK_OK(supa_channel_track(chb, "{\"user\":\"bob\"}"));
  key_kind bob_join = {SUPA_EVENT_PRESENCE_JOIN, "bob"};
  recorder_wait(&ra, 0, is_presence, &bob_join, "bob's join");

  test_begin("untrack: the peer sees a leave");
  size_t mark = recorder_len(&rb);
  CHECK_OK(supa_channel_untrack_blocking(cha, DEADLINE_MS));
  key_kind alice_leave = {SUPA_EVENT_PRESENCE_LEAVE, "alice"};
  i = recorder_wait(&rb, mark, is_presence, &alice_leave, "alice's leave");
  changed = supa_event_presence_changed_json(recorder_at(&rb, i), &len);
  CHECK(changed && strstr(changed, "\"user\":\"alice\"") != NULL);
  payload = supa_event_payload_json(recorder_at(&rb, i), &len);
  CHECK(payload && strstr(payload, "\"leftPresences\"") != NULL);

  test_begin("untrack without waiting, then leave");
  mark = recorder_len(&ra);
  CHECK_OK(supa_channel_untrack(chb));
  key_kind bob_leave = {SUPA_EVENT_PRESENCE_LEAVE, "bob"};
  recorder_wait(&ra, mark, is_presence, &bob_leave, "bob's leave");
  CHECK_OK(supa_channel_unsubscribe_blocking(chb, DEADLINE_MS));
  CHECK(recorder_wait_destroyed(&rb, 1, "bob's presence listener") == 1);

  supa_channel_free(cha);
  supa_channel_free(chb);
  supa_client_free(a);
  supa_client_free(b);
  CHECK(recorder_wait_destroyed(&ra, 1, "alice's presence listener") == 1);
  CHECK(recorder_destroy_count(&rb) == 1);
  recorder_destroy_all(&ra);
  recorder_destroy_all(&rb);
  fprintf(stderr, "test_presence: ok\n");
  return 0;
}
