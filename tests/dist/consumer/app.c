/* A C program built against the unpacked SDK (tests/dist/run): one channel with broadcast,
 * presence and the postgres changes of one table. It prints "subscribed" once joined (the test
 * then inserts a row), tracks itself, sends one broadcast, prints the events as they arrive and
 * exits 0 once its broadcast, its presence join, a presence sync and the change came back, or
 * 1 after 30 s without them.
 *
 *   app URL ANON_KEY TABLE */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <supa_realtime.h>

enum { SEEN_BROADCAST = 1, SEEN_JOIN = 2, SEEN_SYNC = 4, SEEN_CHANGE = 8, SEEN_ALL = 15 };

struct state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned seen;
};

/* Runs on the library's dispatcher thread, one event at a time. */
static void on_event(void *userdata, const supa_event *ev) {
  struct state *s = userdata;
  size_t len = 0, len2 = 0;
  unsigned bit = 0;
  switch (supa_event_get_kind(ev)) {
    case SUPA_EVENT_BROADCAST: {
      const char *json = supa_event_payload_json(ev, &len);
      printf("broadcast %s: %.*s\n", supa_event_name(ev, NULL), (int)len, json ? json : "");
      bit = SEEN_BROADCAST;
      break;
    }
    case SUPA_EVENT_PRESENCE_JOIN: {
      const char *metas = supa_event_presence_changed_json(ev, &len);
      printf("presence join %s: %.*s\n", supa_event_presence_key(ev, NULL), (int)len, metas);
      bit = SEEN_JOIN;
      break;
    }
    case SUPA_EVENT_PRESENCE_SYNC:
      printf("presence sync\n");
      bit = SEEN_SYNC;
      break;
    case SUPA_EVENT_POSTGRES_CHANGE: {
      const char *new_row = supa_event_change_new_json(ev, &len);
      const char *old_row = supa_event_change_old_json(ev, &len2);
      printf("%s on %s.%s: new=%.*s old=%.*s\n", supa_event_name(ev, NULL),
             supa_event_change_schema(ev, NULL), supa_event_change_table(ev, NULL), (int)len,
             new_row, (int)len2, old_row);
      bit = SEEN_CHANGE;
      break;
    }
    default:
      return;
  }
  fflush(stdout);
  pthread_mutex_lock(&s->mu);
  s->seen |= bit;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static int fail(const char *what, supa_result rc) {
  fprintf(stderr, "%s: %s: %s\n", what, supa_result_name(rc), supa_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s URL ANON_KEY TABLE\n", argv[0]);
    return 2;
  }
  struct state s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  supa_options *opts = NULL;
  supa_client *client = NULL;
  supa_channel_options *chopts = NULL;
  supa_channel *room = NULL;

  supa_result rc = supa_options_new(argv[1], argv[2], &opts);
  if (rc != SUPA_OK) return fail("options", rc);
  rc = supa_client_new(opts, &client);
  supa_options_free(opts);
  if (rc != SUPA_OK) return fail("client", rc);

  rc = supa_channel_options_new(&chopts);
  if (rc == SUPA_OK) rc = supa_channel_options_set_broadcast_self(chopts, true);
  if (rc == SUPA_OK) rc = supa_channel_options_set_presence_key(chopts, "c");
  if (rc == SUPA_OK) rc = supa_client_channel(client, "dist-c", chopts, &room);
  supa_channel_options_free(chopts);
  if (rc == SUPA_OK) rc = supa_channel_on_broadcast(room, "*", on_event, &s, NULL, NULL);
  if (rc == SUPA_OK) rc = supa_channel_on_presence(room, on_event, &s, NULL, NULL);
  if (rc == SUPA_OK)
    rc = supa_channel_on_postgres_changes(room, "*", "public", argv[3], NULL, NULL, 0, on_event,
                                          &s, NULL, NULL);
  if (rc != SUPA_OK) return fail("channel", rc);

  rc = supa_channel_subscribe_blocking(room, 30000);
  if (rc != SUPA_OK) return fail("subscribe", rc);
  printf("subscribed\n");
  fflush(stdout);
  rc = supa_channel_track_blocking(room, "{\"user\":\"c\"}", 10000);
  if (rc == SUPA_OK)
    rc = supa_channel_send_broadcast_json_blocking(room, "message", "{\"text\":\"hello from C\"}",
                                                   10000);
  if (rc != SUPA_OK) return fail("track/send", rc);

  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  pthread_mutex_lock(&s.mu);
  while (s.seen != SEEN_ALL && pthread_cond_timedwait(&s.cv, &s.mu, &deadline) == 0) {
  }
  unsigned seen = s.seen;
  pthread_mutex_unlock(&s.mu);

  supa_channel_free(room);
  supa_client_free(client); /* joins the dispatcher: no callback runs after this */
  if (seen != SEEN_ALL) {
    fprintf(stderr, "missing events (seen mask %u of %u)\n", seen, (unsigned)SEEN_ALL);
    return 1;
  }
  return 0;
}
