/* Prints every change to one table as it happens.
 *
 *   listener URL ANON_KEY TABLE [COUNT]
 *
 * URL is the Realtime endpoint (https://<project>.supabase.co/realtime/v1, or
 * http://127.0.0.1:4000/realtime/v1 for supa-realtime-server). The table must be in the
 * `supabase_realtime` publication. With COUNT, exits after that many changes; else runs until
 * interrupted. Callbacks run on the library's dispatcher thread; main waits on a condition
 * variable. Build: see examples/c/README.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <supa_realtime.h>

struct state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long seen;
};

static void on_change(void *userdata, const supa_event *ev) {
  struct state *s = userdata;
  size_t new_len = 0, old_len = 0;
  const char *type = supa_event_name(ev, NULL);
  const char *schema = supa_event_change_schema(ev, NULL);
  const char *table = supa_event_change_table(ev, NULL);
  const char *new_row = supa_event_change_new_json(ev, &new_len);
  const char *old_row = supa_event_change_old_json(ev, &old_len);
  printf("%s %s.%s new=%.*s old=%.*s\n", type, schema, table, (int)new_len, new_row,
         (int)old_len, old_row);
  fflush(stdout);
  pthread_mutex_lock(&s->mu);
  s->seen++;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void on_status(void *userdata, const supa_event *ev) {
  (void)userdata;
  if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS) return;
  const char *reason = supa_event_reason(ev, NULL);
  fprintf(stderr, "status: %s%s%s\n", supa_event_status_name(ev), reason ? ": " : "",
          reason ? reason : "");
}

static int fail(const char *what, supa_result rc) {
  fprintf(stderr, "%s: %s: %s\n", what, supa_result_name(rc), supa_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s URL ANON_KEY TABLE [COUNT]\n", argv[0]);
    return 2;
  }
  long count = argc > 4 ? atol(argv[4]) : -1;
  struct state s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

  supa_options *opts = NULL;
  supa_client *client = NULL;
  supa_channel *channel = NULL;
  supa_result rc = supa_options_new(argv[1], argv[2], &opts);
  if (rc != SUPA_OK) return fail("options", rc);
  rc = supa_client_new(opts, &client);
  supa_options_free(opts);
  if (rc != SUPA_OK) return fail("client", rc);

  rc = supa_client_channel(client, "table-listener", NULL, &channel);
  if (rc == SUPA_OK) rc = supa_channel_on_event(channel, on_status, NULL, NULL, NULL);
  if (rc == SUPA_OK)
    rc = supa_channel_on_postgres_changes(channel, "*", "public", argv[3], NULL, NULL, 0,
                                          on_change, &s, NULL, NULL);
  if (rc != SUPA_OK) return fail("channel", rc);

  /* SUBSCRIBED only once the server says changes flow. */
  rc = supa_channel_subscribe_blocking(channel, 30000);
  if (rc != SUPA_OK) return fail("subscribe", rc);
  printf("listening to public.%s\n", argv[3]);
  fflush(stdout);

  pthread_mutex_lock(&s.mu);
  while (count < 0 || s.seen < count) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);

  supa_channel_unsubscribe_blocking(channel, 5000);
  supa_channel_free(channel);
  supa_client_free(client);
  return 0;
}
