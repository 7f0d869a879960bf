// The header as C++: compiles with -Wall -Wextra -Werror -Wpedantic, links, and the enums
// work as C++ types (scoped underlying type uint32_t).
#include "supa_realtime.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(std::is_same<std::underlying_type<supa_result>::type, uint32_t>::value,
              "supa_result is a uint32_t enum in C++");

int main() {
  if (std::strlen(supa_version()) == 0) return 1;
  if (std::strcmp(supa_result_name(SUPA_TIMEOUT), "SUPA_TIMEOUT") != 0) return 1;
  supa_options *o = nullptr;
  if (supa_options_new(nullptr, "k", &o) != SUPA_NULL_ARGUMENT || o != nullptr) return 1;
  if (supa_options_new("http://127.0.0.1:1/realtime/v1", "k", &o) != SUPA_OK) return 1;
  if (supa_options_set_dispatch_mode(o, SUPA_DISPATCH_APP_PUMPED) != SUPA_OK) return 1;
  supa_client *c = nullptr;
  if (supa_client_new(o, &c) != SUPA_OK) return 1;
  supa_options_free(o);
  supa_metrics m{};
  m.struct_size = sizeof m;
  if (supa_client_metrics(c, &m) != SUPA_OK || m.connects != 0) return 1;
  supa_client_free(c);
  std::puts("test_cpp: ok");
  return 0;
}
