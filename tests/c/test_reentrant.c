/* Re-entrancy on the dispatcher thread: from inside callbacks, blocking calls return
 * SUPA_WOULD_DEADLOCK; sending, unsubscribing, freeing the channel handle and freeing the
 * client itself all work; every destructor runs exactly once, after the last callback. */
#include "harness.h"

typedef struct scene {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  supa_client *client;
  supa_channel *channel;
  int subscribed, echoed, closed, client_freed;
  int calls_after_close; /* callbacks of this scene after its destructor ran */
  int destroyed;
} scene;

static void scene_destroyed(void *userdata) {
  scene *s = (scene *)userdata;
  pthread_mutex_lock(&s->mu);
  s->destroyed++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void on_status(void *userdata, const supa_event *ev) {
  scene *s = (scene *)userdata;
  pthread_mutex_lock(&s->mu);
  if (s->destroyed) s->calls_after_close++;
  pthread_mutex_unlock(&s->mu);
  if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS) return;
  uint32_t status = supa_event_subscribe_status(ev);
  if (status == SUPA_STATUS_SUBSCRIBED) {
    CHECK_RC(supa_channel_subscribe_blocking(s->channel, 1000), SUPA_WOULD_DEADLOCK);
    CHECK_RC(supa_client_connect_blocking(s->client, 1000), SUPA_WOULD_DEADLOCK);
    CHECK_RC(supa_channel_send_broadcast_json_blocking(s->channel, "x", "{}", 1000),
             SUPA_WOULD_DEADLOCK);
    CHECK_RC(supa_channel_unsubscribe_blocking(s->channel, 1000), SUPA_WOULD_DEADLOCK);
    /* Re-entrant, non-blocking calls. */
    CHECK_OK(supa_channel_track(s->channel, "{\"in\":\"callback\"}"));
    CHECK_OK(supa_channel_send_broadcast_json(s->channel, "echo", "[1,2,3]"));
    pthread_mutex_lock(&s->mu);
    s->subscribed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  } else if (status == SUPA_STATUS_CLOSED) {
    supa_client *c = s->client;
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    s->client = NULL;
    pthread_mutex_unlock(&s->mu);
    /* The dispatcher thread frees its own client: it must detach, not join itself. */
    supa_client_free(c);
    pthread_mutex_lock(&s->mu);
    s->client_freed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

static void on_echo(void *userdata, const supa_event *ev) {
  scene *s = (scene *)userdata;
  size_t len = 0;
  const char *json = supa_event_payload_json(ev, &len);
  CHECK(text_eq(json, &len, "[1,2,3]"));
  /* Leave, and free the handle this callback was registered through. */
  CHECK_OK(supa_channel_unsubscribe(s->channel));
  supa_channel_free(s->channel);
  pthread_mutex_lock(&s->mu);
  s->channel = NULL;
  s->echoed++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void wait_flag(scene *s, const int *flag, int value, const char *what) {
  struct timespec dl = deadline_after(DEADLINE_MS);
  pthread_mutex_lock(&s->mu);
  while (*flag < value)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) {
      pthread_mutex_unlock(&s->mu);
      FAIL("timed out waiting for %s", what);
    }
  pthread_mutex_unlock(&s->mu);
}

int main(void) {
  test_begin("dispatcher thread: send, unsubscribe, free channel and client from callbacks");
  scene s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.client = test_client(SUPA_DISPATCH_THREAD);
  supa_channel_options *co = NULL;
  CHECK_OK(supa_channel_options_new(&co));
  CHECK_OK(supa_channel_options_set_broadcast_self(co, true));
  CHECK_OK(supa_channel_options_set_presence_enabled(co, true));
  /* Hold the scene's lock while wiring up, so callbacks see the handles. */
  pthread_mutex_lock(&s.mu);
  CHECK_OK(supa_client_channel(s.client, "reentrant", co, &s.channel));
  supa_channel_options_free(co);
  CHECK_OK(supa_channel_on_event(s.channel, on_status, &s, scene_destroyed, NULL));
  CHECK_OK(supa_channel_on_broadcast(s.channel, "echo", on_echo, &s, scene_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe(s.channel));
  pthread_mutex_unlock(&s.mu);

  wait_flag(&s, &s.subscribed, 1, "SUBSCRIBED");
  wait_flag(&s, &s.echoed, 1, "the echo");
  wait_flag(&s, &s.client_freed, 1, "CLOSED and the client freed in the callback");
  wait_flag(&s, &s.destroyed, 2, "both destructors");

  pthread_mutex_lock(&s.mu);
  CHECK(s.destroyed == 2);
  CHECK(s.echoed == 1);
  CHECK(s.calls_after_close == 0);
  CHECK(s.channel == NULL && s.client == NULL);
  pthread_mutex_unlock(&s.mu);
  fprintf(stderr, "test_reentrant: ok\n");
  return 0;
}
