/* Stored broadcasts through the C API against a real PostgreSQL (DATABASE_URL; the server was
 * started with it): one client persists messages over the socket and over REST, another joins
 * with replay and replication_ready and gets them in order, marked replayed, with their ids. */
#include "harness.h"

#include <unistd.h>

static void sql(const char *statements) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "psql -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"%s\" >/dev/null",
           statements);
  if (system(cmd) != 0) FAIL("psql failed: %s", statements);
}

static supa_channel *private_channel(supa_client *c, const char *name, int replay_since_s) {
  supa_channel_options *o = NULL;
  supa_channel *ch = NULL;
  CHECK_OK(supa_channel_options_new(&o));
  CHECK_OK(supa_channel_options_set_private(o, true));
  CHECK_OK(supa_channel_options_set_broadcast_ack(o, true));
  if (replay_since_s) {
    CHECK_OK(supa_channel_options_set_replay(o, (int64_t)replay_since_s * 1000, 10));
    CHECK_OK(supa_channel_options_set_replication_ready(o, true));
  }
  CHECK_RC(supa_channel_options_set_replay(o, -1, 0), SUPA_INVALID_ARGUMENT);
  CHECK_OK(supa_client_channel(c, name, o, &ch));
  supa_channel_options_free(o);
  return ch;
}

int main(void) {
  if (!getenv("DATABASE_URL") || !*getenv("DATABASE_URL")) {
    fprintf(stderr, "test_replay: SKIPPED (no DATABASE_URL)\n");
    return 0;
  }
  /* The test server's anon key joins: let `anon` read and write this test's topics. */
  sql("drop policy if exists c_replay_read on realtime.messages; "
      "drop policy if exists c_replay_write on realtime.messages; "
      "create policy c_replay_read on realtime.messages for select to anon "
      "  using (realtime.topic() like 'c-replay-%'); "
      "create policy c_replay_write on realtime.messages for insert to anon "
      "  with check (realtime.topic() like 'c-replay-%');");
  char name[64];
  snprintf(name, sizeof name, "c-replay-%ld", (long)getpid());
  int since_s = (int)time(NULL) - 60;

  test_begin("persist over the socket and REST");
  supa_client *sc = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *out = private_channel(sc, name, 0);
  CHECK_OK(supa_channel_subscribe_blocking(out, DEADLINE_MS));
  CHECK_OK(supa_channel_send_broadcast_persist_json_blocking(out, "note", "{\"n\":1}", 0,
                                                             DEADLINE_MS));
  CHECK_OK(supa_channel_send_broadcast_persist_json_blocking(out, "note", "{\"n\":2}", 3600,
                                                             DEADLINE_MS));
  CHECK_OK(supa_channel_http_send_persist_json_blocking(out, "note", "{\"n\":3}", 0,
                                                        DEADLINE_MS));

  test_begin("replay on join, in order, with ids");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *ch = private_channel(c, name, since_s);
  recorder got;
  recorder_init(&got);
  CHECK_OK(supa_channel_on_broadcast(ch, "note", recorder_cb, &got, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  CHECK_OK(supa_channel_replication_ready_blocking(ch, DEADLINE_MS));
  const char *want[] = {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"};
  char ids[3][64];
  size_t from = 0, len = 0;
  for (int k = 0; k < 3; k++) {
    size_t i = wait_broadcast(&got, from, "note");
    from = i + 1;
    const supa_event *ev = recorder_at(&got, i);
    CHECK(text_eq(supa_event_payload_json(ev, &len), &len, want[k]));
    CHECK(supa_event_broadcast_replayed(ev));
    const char *id = supa_event_broadcast_id(ev, &len);
    CHECK(id && len == 36);
    memcpy(ids[k], id, len + 1);
  }
  CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0);

  test_begin("a live stored message has an id and is not replayed");
  CHECK_OK(supa_channel_send_broadcast_persist_json_blocking(out, "note", "{\"n\":4}", 0,
                                                             DEADLINE_MS));
  size_t i = wait_broadcast(&got, from, "note");
  const supa_event *ev = recorder_at(&got, i);
  CHECK(text_eq(supa_event_payload_json(ev, &len), &len, "{\"n\":4}"));
  CHECK(!supa_event_broadcast_replayed(ev));
  CHECK(supa_event_broadcast_id(ev, &len) != NULL && len == 36);
  CHECK(supa_event_broadcast_id(NULL, &len) == NULL);
  CHECK(!supa_event_resumed_filled(ev));

  test_begin("only private channels store");
  supa_channel *pub = NULL;
  char pub_name[80];
  snprintf(pub_name, sizeof pub_name, "%s-public", name);
  CHECK_OK(supa_client_channel(c, pub_name, NULL, &pub));
  CHECK_OK(supa_channel_subscribe_blocking(pub, DEADLINE_MS));
  CHECK_RC(supa_channel_send_broadcast_persist_json_blocking(pub, "note", "{}", 0, DEADLINE_MS),
           SUPA_INVALID_ARGUMENT);
  supa_channel_options *o = NULL;
  supa_channel *gap = NULL;
  CHECK_OK(supa_channel_options_new(&o));
  CHECK_OK(supa_channel_options_set_auto_replay(o, true));
  CHECK_OK(supa_client_channel(c, "c-replay-public-gap", o, &gap));
  CHECK_RC(supa_channel_subscribe(gap), SUPA_INVALID_ARGUMENT);
  supa_channel_options_free(o);

  supa_channel_free(gap);
  supa_channel_free(pub);
  supa_channel_free(ch);
  supa_channel_free(out);
  supa_client_free(c);
  supa_client_free(sc);
  CHECK(recorder_wait_destroyed(&got, 1, "notes") == 1);
  recorder_destroy_all(&got);
  printf("test_replay: ok\n");
  return 0;
}
