/* Channel management as the official clients have it: supa_client_channels (getChannels),
 * supa_client_remove_channel (removeChannel) and supa_client_remove_all_channels
 * (removeAllChannels), blocking and not, against the real server. Every removed channel ends
 * with exactly one final CLOSED status saying "removed", delivered before its userdata
 * destructor runs. */
#include "harness.h"

/* A channel's registration: every event recorded; at destroy time, how many CLOSED statuses
 * had been delivered (the destructor must run after the final one). */
typedef struct watched {
  recorder r;
  int closed_at_destroy;
} watched;

static int count_closed(recorder *r, const char *reason) {
  int n = 0;
  for (size_t i = 0; i < r->len; i++) {
    const supa_event *ev = r->events[i];
    if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS ||
        supa_event_subscribe_status(ev) != SUPA_STATUS_CLOSED)
      continue;
    size_t len = 0;
    const char *why = supa_event_reason(ev, &len);
    if (reason && !text_eq(why, &len, reason)) FAIL("CLOSED said %.*s, not %s", (int)len, why ? why : "", reason);
    n++;
  }
  return n;
}

static void watched_destroy(void *userdata) {
  watched *w = (watched *)userdata;
  pthread_mutex_lock(&w->r.mu);
  w->closed_at_destroy = count_closed(&w->r, NULL);
  w->r.destroyed++;
  pthread_cond_broadcast(&w->r.cv);
  pthread_mutex_unlock(&w->r.mu);
}

/* A subscribed channel `name` of `c` whose events `w` records. */
static supa_channel *watched_channel(supa_client *c, const char *name, watched *w) {
  recorder_init(&w->r);
  w->closed_at_destroy = -1;
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, name, NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, recorder_cb, w, watched_destroy, NULL));
  CHECK_OK(supa_channel_subscribe_blocking(ch, DEADLINE_MS));
  return ch;
}

/* The channel ended once, with "removed", before its destructor ran; then nothing more. */
static void expect_removed(watched *w, const char *what) {
  recorder_wait_destroyed(&w->r, 1, what);
  pthread_mutex_lock(&w->r.mu);
  int closed = count_closed(&w->r, "removed");
  int at_destroy = w->closed_at_destroy;
  int destroyed = w->r.destroyed;
  pthread_mutex_unlock(&w->r.mu);
  if (closed != 1) FAIL("%s: %d final CLOSED statuses, expected 1", what, closed);
  if (at_destroy != 1) FAIL("%s: the destructor ran before the final CLOSED", what);
  if (destroyed != 1) FAIL("%s: the destructor ran %d times", what, destroyed);
  recorder_destroy_all(&w->r);
}

static size_t channel_count(supa_client *c) {
  size_t n = 99;
  CHECK_OK(supa_client_channels(c, NULL, 0, &n));
  return n;
}

static void test_channels_lists_live_channels(void) {
  test_begin("supa_client_channels: count first, then new handles, oldest first");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  CHECK(channel_count(c) == 0);
  supa_channel *a = NULL, *b = NULL, *a2 = NULL;
  CHECK_OK(supa_client_channel(c, "list-a", NULL, &a));
  CHECK_OK(supa_client_channel(c, "list-b", NULL, &b));
  CHECK_OK(supa_client_channel(c, "list-a", NULL, &a2)); /* the same live channel */
  CHECK(channel_count(c) == 2);

  supa_channel *out[3] = {NULL, NULL, NULL};
  size_t n = 0;
  CHECK_OK(supa_client_channels(c, out, 1, &n)); /* too small: one written, count says 2 */
  CHECK(n == 2 && out[0] != NULL && out[1] == NULL);
  CHECK(strcmp(supa_channel_topic(out[0]), "realtime:list-a") == 0);
  supa_channel_free(out[0]);
  out[0] = NULL;
  CHECK_OK(supa_client_channels(c, out, 3, &n));
  CHECK(n == 2 && out[2] == NULL);
  CHECK(strcmp(supa_channel_topic(out[0]), "realtime:list-a") == 0);
  CHECK(strcmp(supa_channel_topic(out[1]), "realtime:list-b") == 0);
  /* A listed handle is a handle like any other: it acts on the channel. */
  CHECK_OK(supa_channel_subscribe_blocking(out[1], DEADLINE_MS));
  CHECK(supa_channel_get_state(b) == SUPA_CHANNEL_JOINED);
  supa_channel_free(out[0]);
  supa_channel_free(out[1]);

  CHECK_RC(supa_client_channels(NULL, out, 3, &n), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_channels(c, out, 3, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_channels(c, NULL, 1, &n), SUPA_NULL_ARGUMENT);

  /* An unsubscribed channel is no longer listed. */
  CHECK_OK(supa_channel_unsubscribe_blocking(b, DEADLINE_MS));
  CHECK(channel_count(c) == 1);
  supa_channel_free(a);
  supa_channel_free(a2);
  supa_channel_free(b);
  supa_client_free(c);
}

static void test_remove_channel(void) {
  test_begin("supa_client_remove_channel: one final CLOSED (removed) before the destructor");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  watched wa, wb;
  supa_channel *a = watched_channel(c, "remove-a", &wa);
  supa_channel *b = watched_channel(c, "remove-b", &wb);
  CHECK(channel_count(c) == 2);

  CHECK_OK(supa_client_remove_channel(c, a));
  expect_removed(&wa, "remove-a");
  CHECK(channel_count(c) == 1);
  CHECK(supa_channel_get_state(a) == SUPA_CHANNEL_CLOSED);
  /* The handle stays valid; the channel is single-use. */
  CHECK_RC(supa_channel_subscribe(a), SUPA_INVALID_ARGUMENT);

  CHECK_OK(supa_client_remove_channel_blocking(c, b, DEADLINE_MS));
  expect_removed(&wb, "remove-b");
  CHECK(channel_count(c) == 0);

  /* A channel of another client is refused and left alone. */
  supa_client *other = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *theirs = NULL;
  CHECK_OK(supa_client_channel(other, "theirs", NULL, &theirs));
  CHECK_RC(supa_client_remove_channel(c, theirs), SUPA_INVALID_ARGUMENT);
  CHECK(strstr(supa_last_error_message(), "another client") != NULL);
  CHECK_RC(supa_client_remove_channel_blocking(c, theirs, 100), SUPA_INVALID_ARGUMENT);
  CHECK(channel_count(other) == 1);

  CHECK_RC(supa_client_remove_channel(NULL, a), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_remove_channel(c, NULL), SUPA_NULL_ARGUMENT);
  CHECK_RC(supa_client_remove_channel_blocking(c, NULL, 100), SUPA_NULL_ARGUMENT);

  supa_channel_free(theirs);
  supa_client_free(other);
  supa_channel_free(a);
  supa_channel_free(b);
  supa_client_free(c);
}

static void test_remove_all_channels(void) {
  test_begin("supa_client_remove_all_channels: every channel ends once with removed");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  watched w[3];
  supa_channel *ch[3];
  const char *names[3] = {"all-a", "all-b", "all-c"};
  for (int i = 0; i < 3; i++) ch[i] = watched_channel(c, names[i], &w[i]);
  CHECK(channel_count(c) == 3);
  CHECK_OK(supa_client_remove_all_channels(c));
  for (int i = 0; i < 3; i++) expect_removed(&w[i], names[i]);
  CHECK(channel_count(c) == 0);
  for (int i = 0; i < 3; i++) supa_channel_free(ch[i]);

  for (int i = 0; i < 2; i++) ch[i] = watched_channel(c, names[i], &w[i]);
  CHECK_OK(supa_client_remove_all_channels_blocking(c, DEADLINE_MS));
  CHECK(channel_count(c) == 0);
  for (int i = 0; i < 2; i++) {
    expect_removed(&w[i], names[i]);
    supa_channel_free(ch[i]);
  }
  /* Nothing to remove is not an error. */
  CHECK_OK(supa_client_remove_all_channels(c));
  CHECK_OK(supa_client_remove_all_channels_blocking(c, DEADLINE_MS));
  CHECK_RC(supa_client_remove_all_channels(NULL), SUPA_NULL_ARGUMENT);
  supa_client_free(c);
}

/* Inside a callback the blocking forms would wait on the dispatcher thread itself. */
static supa_client *cb_client;
static supa_result cb_blocking_rc = SUPA_OK, cb_all_blocking_rc = SUPA_OK;

static void remove_from_callback(void *userdata, const supa_event *ev) {
  recorder *r = (recorder *)userdata;
  if (supa_event_get_kind(ev) == SUPA_EVENT_CHANNEL_STATUS &&
      supa_event_subscribe_status(ev) == SUPA_STATUS_SUBSCRIBED) {
    supa_channel *chs[1] = {NULL};
    size_t n = 0;
    CHECK_OK(supa_client_channels(cb_client, chs, 1, &n));
    CHECK(n == 1);
    cb_blocking_rc = supa_client_remove_channel_blocking(cb_client, chs[0], 1000);
    cb_all_blocking_rc = supa_client_remove_all_channels_blocking(cb_client, 1000);
    CHECK_OK(supa_client_remove_channel(cb_client, chs[0]));
    supa_channel_free(chs[0]);
  }
  recorder_cb(r, ev);
}

static void test_remove_inside_a_callback(void) {
  test_begin("inside a callback: removing works, the blocking forms refuse");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  cb_client = c;
  recorder r;
  recorder_init(&r);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "remove-in-cb", NULL, &ch));
  CHECK_OK(supa_channel_on_event(ch, remove_from_callback, &r, recorder_destroyed, NULL));
  CHECK_OK(supa_channel_subscribe(ch));
  size_t i = wait_status(&r, 0, SUPA_STATUS_CLOSED);
  size_t len = 0;
  CHECK(text_eq(supa_event_reason(recorder_at(&r, i), &len), &len, "removed"));
  recorder_wait_destroyed(&r, 1, "remove-in-cb");
  CHECK_RC(cb_blocking_rc, SUPA_WOULD_DEADLOCK);
  CHECK_RC(cb_all_blocking_rc, SUPA_WOULD_DEADLOCK);
  CHECK(channel_count(c) == 0);
  supa_channel_free(ch);
  supa_client_free(c);
  recorder_destroy_all(&r);
}

static void test_after_shutdown(void) {
  test_begin("after shutdown: SUPA_SHUTDOWN from every channel-management call");
  supa_client *c = test_client(SUPA_DISPATCH_THREAD);
  supa_channel *ch = NULL;
  CHECK_OK(supa_client_channel(c, "late", NULL, &ch));
  CHECK_OK(supa_client_shutdown(c));
  size_t n = 0;
  CHECK_RC(supa_client_channels(c, NULL, 0, &n), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_remove_channel(c, ch), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_remove_channel_blocking(c, ch, 100), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_remove_all_channels(c), SUPA_SHUTDOWN);
  CHECK_RC(supa_client_remove_all_channels_blocking(c, 100), SUPA_SHUTDOWN);
  supa_channel_free(ch);
  supa_client_free(c);
}

int main(void) {
  test_channels_lists_live_channels();
  test_remove_channel();
  test_remove_all_channels();
  test_remove_inside_a_callback();
  test_after_shutdown();
  fprintf(stderr, "test_channels: ok\n");
  return 0;
}
