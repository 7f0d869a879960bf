/* Postgres changes through the C API against a real PostgreSQL (DATABASE_URL; the server was
 * started with it): two bindings on one channel, SUBSCRIBED only once changes flow, then
 * INSERT/UPDATE/DELETE made with psql arrive with their fields. */
#include "harness.h"

#define TABLE "c_api_todos"

static void sql(const char *statements) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "psql -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"%s\" >/dev/null",
           statements);
  if (system(cmd) != 0) FAIL("psql failed: %s", statements);
}

static int is_change(const supa_event *ev, const void *type) {
  const char *name = supa_event_name(ev, NULL);
  return supa_event_get_kind(ev) == SUPA_EVENT_POSTGRES_CHANGE && name &&
         strcmp(name, (const char *)type) == 0;
}

static int is_system_ok(const supa_event *ev, const void *arg) {
  (void)arg;
  const char *json = supa_event_payload_json(ev, NULL);
  return supa_event_get_kind(ev) == SUPA_EVENT_SYSTEM && json &&
         strstr(json, "Subscribed to PostgreSQL") != NULL;
}

int main(void) {
  if (!getenv("DATABASE_URL") || !*getenv("DATABASE_URL")) {
    fprintf(stderr, "test_postgres: SKIPPED (no DATABASE_URL)\n");
    return 0;
  }
  sql("drop table if exists " TABLE "; "
      "create table " TABLE " (id int primary key, room int, title text, done bool); "
      "alter publication supabase_realtime add table " TABLE ";");

  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "todos", NULL, &ch));
  recorder inserts, all, sys;
  recorder_init(&inserts);
  recorder_init(&all);
  recorder_init(&sys);

  test_begin("bindings and readiness");
  CHECK_OK(supa_channel_on_postgres_changes(ch, "INSERT", "public", TABLE, "room=eq.1", NULL, 0,
                                            recorder_cb, &inserts, recorder_destroyed, NULL));
  const char *cols[] = {"id", "room", "title", "done"};
  CHECK_OK(supa_channel_on_postgres_changes(ch, "*", "public", TABLE, NULL, cols, 4, recorder_cb,
                                            &all, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_on_system(ch, recorder_cb, &sys, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  size_t i = recorder_wait(&sys, 0, is_system_ok, NULL, "Subscribed to PostgreSQL");
  size_t len = 0;
  CHECK(text_eq(supa_event_topic(recorder_at(&sys, i), &len), &len, "realtime:todos"));

  test_begin("INSERT, UPDATE, DELETE");
  sql("insert into " TABLE " values (1, 1, 'one', false); "
      "insert into " TABLE " values (2, 2, 'two', true); "
      "update " TABLE " set done = true where id = 1; "
      "delete from " TABLE " where id = 2;");

  /* Binding 0 (INSERT, room=1) sees row 1's insert only. */
  i = recorder_wait(&inserts, 0, is_change, "INSERT", "the filtered INSERT");
  const supa_event *ev = recorder_at(&inserts, i);
  CHECK(text_eq(supa_event_change_schema(ev, &len), &len, "public"));
  CHECK(text_eq(supa_event_change_table(ev, &len), &len, TABLE));
  CHECK(text_eq(supa_event_change_new_json(ev, &len), &len,
                "{\"id\":1,\"room\":1,\"title\":\"one\",\"done\":false}"));
  CHECK(text_eq(supa_event_change_old_json(ev, &len), &len, "{}"));
  const char *ts = supa_event_change_commit_timestamp(ev, &len);
  CHECK(ts && len >= 10);
  const char *columns = supa_event_change_columns_json(ev, &len);
  CHECK(columns && columns[0] == '[' && strstr(columns, "\"title\"") != NULL);
  CHECK(supa_event_change_errors_json(ev, &len) != NULL);
  const char *payload = supa_event_payload_json(ev, &len);
  CHECK(payload && strstr(payload, "\"eventType\":\"INSERT\"") && strstr(payload, "\"table\":\"" TABLE "\""));
  CHECK(text_eq(supa_event_topic(ev, &len), &len, "realtime:todos"));

  /* Binding 1 (*) sees all four, in commit order. */
  const char *order[] = {"INSERT", "INSERT", "UPDATE", "DELETE"};
  size_t from = 0;
  for (int k = 0; k < 4; k++) {
    from = recorder_wait(&all, from, is_change, order[k], order[k]);
    ev = recorder_at(&all, from);
    if (k == 2) {
      const char *nw = supa_event_change_new_json(ev, &len);
      CHECK(nw && strstr(nw, "\"done\":true") != NULL);
      const char *old = supa_event_change_old_json(ev, &len);
      CHECK(old && strstr(old, "\"id\":1") != NULL);
    }
    if (k == 3) {
      CHECK(text_eq(supa_event_change_new_json(ev, &len), &len, "{}"));
      const char *old = supa_event_change_old_json(ev, &len);
      CHECK(old && strstr(old, "\"id\":2") != NULL);
    }
    from++;
  }
  CHECK(recorder_len(&all) == 4);
  CHECK(recorder_len(&inserts) == 1);

  supa_channel_free(ch);
  supa_client_free(c);
  CHECK(recorder_wait_destroyed(&inserts, 1, "inserts") == 1);
  CHECK(recorder_wait_destroyed(&all, 1, "all") == 1);
  CHECK(recorder_wait_destroyed(&sys, 1, "sys") == 1);
  recorder_destroy_all(&inserts);
  recorder_destroy_all(&all);
  recorder_destroy_all(&sys);
  sql("drop table if exists " TABLE ";");
  fprintf(stderr, "test_postgres: ok\n");
  return 0;
}
