/* A small terminal chat: broadcast messages and presence in one room.
 *
 *   chat URL ANON_KEY ROOM NAME
 *
 * Type a line to send it; `/who` lists who is here; end input (Ctrl-D) to leave. Shows the
 * app-pumped mode: the program's own poll() loop waits on stdin and on a pipe that the
 * library's wakeup callback writes to, and runs callbacks with supa_client_dispatch on this
 * thread, so no locking is needed. Build: see examples/c/README.md. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <supa_realtime.h>

struct chat {
  const char *name;
  supa_client *client;
  supa_channel *room;
  int wake_pipe[2];
  int subscribed;
  long sent, echoed; /* our own messages, sent and seen back */
};

/* Called from a library thread: only signal the main loop. */
/* The wakeup's destructor: runs once, after its last call; closing the write end then is safe. */
static void wake_closed(void *userdata) {
  struct chat *c = userdata;
  close(c->wake_pipe[1]);
}

static void wake(void *userdata) {
  struct chat *c = userdata;
  char b = 1;
  ssize_t n = write(c->wake_pipe[1], &b, 1);
  (void)n; /* a full pipe already means "wake up" */
}

/* Appends `s` to `out` as a JSON string body (quotes not included). */
static void json_escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch < 0x20) {
      o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
    } else {
      out[o++] = (char)ch;
    }
  }
  out[o] = '\0';
}

static void on_message(void *userdata, const supa_event *ev) {
  struct chat *c = userdata;
  size_t len = 0;
  const char *json = supa_event_payload_json(ev, &len);
  if (!json) return;
  printf("<< %.*s\n", (int)len, json);
  char mine[300], from[280];
  json_escape(c->name, from, sizeof from);
  snprintf(mine, sizeof mine, "\"from\":\"%s\"", from);
  if (strstr(json, mine)) c->echoed++;
}

static void on_presence(void *userdata, const supa_event *ev) {
  (void)userdata;
  const char *key = supa_event_presence_key(ev, NULL);
  switch (supa_event_get_kind(ev)) {
    case SUPA_EVENT_PRESENCE_JOIN: printf("** %s joined\n", key); break;
    case SUPA_EVENT_PRESENCE_LEAVE: printf("** %s left\n", key); break;
    default: break;
  }
}

static void on_status(void *userdata, const supa_event *ev) {
  struct chat *c = userdata;
  if (supa_event_get_kind(ev) != SUPA_EVENT_CHANNEL_STATUS) return;
  uint32_t status = supa_event_subscribe_status(ev);
  const char *reason = supa_event_reason(ev, NULL);
  printf("-- %s%s%s\n", supa_event_status_name(ev), reason ? ": " : "", reason ? reason : "");
  if (status == SUPA_STATUS_SUBSCRIBED && !c->subscribed) {
    c->subscribed = 1;
    char meta[400], name[280];
    json_escape(c->name, name, sizeof name);
    snprintf(meta, sizeof meta, "{\"name\":\"%s\"}", name);
    /* Inside a callback: the non-blocking form (a blocking one would return WOULD_DEADLOCK). */
    supa_channel_track(c->room, meta);
    printf("-- joined as %s; type to chat, /who, Ctrl-D to leave\n", c->name);
  }
}

static void pump(struct chat *c) {
  char buf[64];
  while (read(c->wake_pipe[0], buf, sizeof buf) > 0) {
  }
  supa_client_dispatch(c->client, 256, NULL);
  fflush(stdout);
}

static void send_line(struct chat *c, const char *line) {
  if (strcmp(line, "/who") == 0) {
    char *state = NULL;
    if (supa_channel_presence_state_json(c->room, &state) == SUPA_OK) {
      printf("-- here: %s\n", state);
      supa_string_free(state);
    }
    return;
  }
  char text[2048], name[280], payload[2400];
  json_escape(line, text, sizeof text);
  json_escape(c->name, name, sizeof name);
  snprintf(payload, sizeof payload, "{\"from\":\"%s\",\"text\":\"%s\"}", name, text);
  supa_result rc = supa_channel_send_broadcast_json(c->room, "message", payload);
  if (rc == SUPA_OK)
    c->sent++;
  else
    fprintf(stderr, "send: %s: %s\n", supa_result_name(rc), supa_last_error_message());
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs the loop: with read_stdin, until end of input; without, until our messages came back.
 * Stops at `deadline` (monotonic ms) when it is not 0. */
static void loop(struct chat *c, int read_stdin, long deadline) {
  char line[1024];
  size_t used = 0;
  for (;;) {
    if (!read_stdin && c->echoed >= c->sent) return;
    long left = deadline - now_ms();
    if (deadline > 0 && left <= 0) return;
    struct pollfd fds[2] = {{c->wake_pipe[0], POLLIN, 0}, {0, POLLIN, 0}};
    int n = poll(fds, read_stdin && c->subscribed ? 2 : 1, deadline > 0 ? (int)left : -1);
    if (n < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) pump(c);
    if (read_stdin && c->subscribed && (fds[1].revents & (POLLIN | POLLHUP))) {
      ssize_t r = read(0, line + used, sizeof line - 1 - used);
      if (r <= 0) return; /* end of input: leave */
      used += (size_t)r;
      line[used] = '\0';
      char *nl;
      while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        if (*line) send_line(c, line);
        used -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, used + 1);
      }
      if (used == sizeof line - 1) used = 0; /* drop an overlong line */
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s URL ANON_KEY ROOM NAME\n", argv[0]);
    return 2;
  }
  struct chat c;
  memset(&c, 0, sizeof c);
  c.name = argv[4];
  if (pipe(c.wake_pipe) != 0) return 1;
  /* Non-blocking pipe: the wakeup must never block a library thread. */
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(c.wake_pipe[i], F_GETFL);
    fcntl(c.wake_pipe[i], F_SETFL, fl | O_NONBLOCK);
  }

  supa_options *opts = NULL;
  supa_channel_options *copts = NULL;
  supa_result rc = supa_options_new(argv[1], argv[2], &opts);
  if (rc == SUPA_OK) rc = supa_options_set_dispatch_mode(opts, SUPA_DISPATCH_APP_PUMPED);
  if (rc == SUPA_OK) rc = supa_client_new(opts, &c.client);
  supa_options_free(opts);
  if (rc == SUPA_OK) rc = supa_client_set_wakeup(c.client, wake, &c, wake_closed);
  if (rc == SUPA_OK) rc = supa_channel_options_new(&copts);
  if (rc == SUPA_OK) rc = supa_channel_options_set_broadcast_self(copts, true);
  if (rc == SUPA_OK) rc = supa_channel_options_set_presence_key(copts, c.name);
  if (rc == SUPA_OK) rc = supa_client_channel(c.client, argv[3], copts, &c.room);
  supa_channel_options_free(copts);
  if (rc == SUPA_OK) rc = supa_channel_on_event(c.room, on_status, &c, NULL, NULL);
  if (rc == SUPA_OK) rc = supa_channel_on_broadcast(c.room, "message", on_message, &c, NULL, NULL);
  if (rc == SUPA_OK) rc = supa_channel_on_presence(c.room, on_presence, &c, NULL, NULL);
  if (rc == SUPA_OK) rc = supa_channel_subscribe(c.room);
  if (rc != SUPA_OK) {
    fprintf(stderr, "%s: %s\n", supa_result_name(rc), supa_last_error_message());
    return 1;
  }

  loop(&c, 1, 0);
  /* Leaving: wait (up to 5 s) until our own messages came back, then say goodbye. */
  loop(&c, 0, now_ms() + 5000);
  int ok = c.echoed >= c.sent;
  supa_channel_untrack(c.room);
  supa_channel_unsubscribe(c.room);
  supa_channel_free(c.room);
  supa_client_free(c.client);
  /* The library drops the wakeup soon after: wait (bounded) for its destructor to close the
   * pipe's write end, which shows up here as end of file. */
  long deadline = now_ms() + 5000;
  for (;;) {
    char buf[64];
    ssize_t r = read(c.wake_pipe[0], buf, sizeof buf);
    if (r == 0 || now_ms() > deadline) break;
    if (r < 0) {
      struct pollfd p = {c.wake_pipe[0], POLLIN, 0};
      poll(&p, 1, 100);
    }
  }
  close(c.wake_pipe[0]);
  printf("-- left (%ld sent, %ld seen back)\n", c.sent, c.echoed);
  return ok ? 0 : 1;
}
