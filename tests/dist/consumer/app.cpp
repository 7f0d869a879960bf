// The C++ counterpart of app.c, built against the unpacked SDK (tests/dist/run): the C API from
// C++11 with RAII handles. Same arguments, output and exit status as app.c.
#include <supa_realtime.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

namespace {

struct ClientFree {
  void operator()(supa_client *c) const { supa_client_free(c); }
};
struct ChannelFree {
  void operator()(supa_channel *c) const { supa_channel_free(c); }
};

enum : unsigned { kBroadcast = 1, kJoin = 2, kSync = 4, kChange = 8, kAll = 15 };

struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  unsigned mask = 0;
};

std::string text(const char *p, size_t len) { return p ? std::string(p, len) : std::string(); }

// Runs on the library's dispatcher thread, one event at a time.
void on_event(void *userdata, const supa_event *ev) {
  auto *seen = static_cast<Seen *>(userdata);
  size_t len = 0, len2 = 0;
  unsigned bit = 0;
  switch (supa_event_get_kind(ev)) {
    case SUPA_EVENT_BROADCAST: {
      const char *json = supa_event_payload_json(ev, &len);
      std::printf("broadcast %s: %s\n", supa_event_name(ev, nullptr), text(json, len).c_str());
      bit = kBroadcast;
      break;
    }
    case SUPA_EVENT_PRESENCE_JOIN: {
      const char *metas = supa_event_presence_changed_json(ev, &len);
      std::printf("presence join %s: %s\n", supa_event_presence_key(ev, nullptr),
                  text(metas, len).c_str());
      bit = kJoin;
      break;
    }
    case SUPA_EVENT_PRESENCE_SYNC:
      std::printf("presence sync\n");
      bit = kSync;
      break;
    case SUPA_EVENT_POSTGRES_CHANGE: {
      const char *new_row = supa_event_change_new_json(ev, &len);
      const char *old_row = supa_event_change_old_json(ev, &len2);
      std::printf("%s on %s.%s: new=%s old=%s\n", supa_event_name(ev, nullptr),
                  supa_event_change_schema(ev, nullptr), supa_event_change_table(ev, nullptr),
                  text(new_row, len).c_str(), text(old_row, len2).c_str());
      bit = kChange;
      break;
    }
    default:
      return;
  }
  std::fflush(stdout);
  std::lock_guard<std::mutex> lock(seen->mu);
  seen->mask |= bit;
  seen->cv.notify_all();
}

int fail(const char *what, supa_result rc) {
  std::fprintf(stderr, "%s: %s: %s\n", what, supa_result_name(rc), supa_last_error_message());
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s URL ANON_KEY TABLE\n", argv[0]);
    return 2;
  }
  Seen seen;
  supa_options *opts = nullptr;
  supa_client *raw_client = nullptr;
  supa_result rc = supa_options_new(argv[1], argv[2], &opts);
  if (rc != SUPA_OK) return fail("options", rc);
  rc = supa_client_new(opts, &raw_client);
  supa_options_free(opts);
  if (rc != SUPA_OK) return fail("client", rc);
  // Declared before the channel so that it is freed last; freeing it joins the dispatcher, so
  // no callback touches `seen` after main returns.
  std::unique_ptr<supa_client, ClientFree> client(raw_client);

  supa_channel_options *chopts = nullptr;
  supa_channel *raw_room = nullptr;
  rc = supa_channel_options_new(&chopts);
  if (rc == SUPA_OK) rc = supa_channel_options_set_broadcast_self(chopts, true);
  if (rc == SUPA_OK) rc = supa_channel_options_set_presence_key(chopts, "cpp");
  if (rc == SUPA_OK) rc = supa_client_channel(client.get(), "dist-cpp", chopts, &raw_room);
  supa_channel_options_free(chopts);
  if (rc != SUPA_OK) return fail("channel", rc);
  std::unique_ptr<supa_channel, ChannelFree> room(raw_room);
  rc = supa_channel_on_broadcast(room.get(), "*", on_event, &seen, nullptr, nullptr);
  if (rc == SUPA_OK) rc = supa_channel_on_presence(room.get(), on_event, &seen, nullptr, nullptr);
  if (rc == SUPA_OK)
    rc = supa_channel_on_postgres_changes(room.get(), "*", "public", argv[3], nullptr, nullptr, 0,
                                          on_event, &seen, nullptr, nullptr);
  if (rc != SUPA_OK) return fail("listeners", rc);

  rc = supa_channel_subscribe_blocking(room.get(), 30000);
  if (rc != SUPA_OK) return fail("subscribe", rc);
  std::printf("subscribed\n");
  std::fflush(stdout);
  rc = supa_channel_track_blocking(room.get(), R"({"user":"cpp"})", 10000);
  if (rc == SUPA_OK)
    rc = supa_channel_send_broadcast_json_blocking(room.get(), "message",
                                                   R"({"text":"hello from C++"})", 10000);
  if (rc != SUPA_OK) return fail("track/send", rc);

  unsigned mask;
  {
    std::unique_lock<std::mutex> lock(seen.mu);
    seen.cv.wait_for(lock, std::chrono::seconds(30), [&] { return seen.mask == kAll; });
    mask = seen.mask;
  }
  room.reset();
  client.reset();
  if (mask != kAll) {
    std::fprintf(stderr, "missing events (seen mask %u of %u)\n", mask, unsigned(kAll));
    return 1;
  }
  return 0;
}
