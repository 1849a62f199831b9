/* Endpoint entries (the per-slot UDP peers of a batch) <-> socket addresses. */
#include "endpoint.h"

#include <string.h>

#include "constants.h"
#include "napi_util.h"

static const uint8_t V4_MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

socklen_t endpoint_to_sockaddr(const uint8_t *ep, int sock_family, sockaddr_any *sa) {
  uint16_t port_be;
  memcpy(&port_be, ep + 2, 2);
  memset(sa, 0, sizeof *sa);
  if (ep[0] == 4 && sock_family == AF_INET) {
    sa->in4.sin_family = AF_INET;
    sa->in4.sin_port = port_be;
    memcpy(&sa->in4.sin_addr, ep + 4, 4);
    return sizeof sa->in4;
  }
  if (ep[0] == 4 || ep[0] == 6) {
    sa->in6.sin6_family = AF_INET6;
    sa->in6.sin6_port = port_be;
    if (ep[0] == 4) {
      memcpy(sa->in6.sin6_addr.s6_addr, V4_MAPPED_PREFIX, 12);
      memcpy(sa->in6.sin6_addr.s6_addr + 12, ep + 4, 4);
    } else {
      memcpy(sa->in6.sin6_addr.s6_addr, ep + 4, 16);
    }
    return sizeof sa->in6;
  }
  return 0;
}

void sockaddr_to_endpoint(const sockaddr_any *sa, uint8_t *ep) {
  memset(ep, 0, ENDPOINT_SIZE);
  if (sa->sa.sa_family == AF_INET) {
    ep[0] = 4;
    memcpy(ep + 2, &sa->in4.sin_port, 2);
    memcpy(ep + 4, &sa->in4.sin_addr, 4);
  } else if (sa->sa.sa_family == AF_INET6) {
    const uint8_t *a = sa->in6.sin6_addr.s6_addr;
    memcpy(ep + 2, &sa->in6.sin6_port, 2);
    if (memcmp(a, V4_MAPPED_PREFIX, 12) == 0) {
      ep[0] = 4;
      memcpy(ep + 4, a + 12, 4);
    } else {
      ep[0] = 6;
      memcpy(ep + 4, a, 16);
    }
  }
}

bool check_endpoint_family(napi_env env, const uint8_t *ep, bool allow_none) {
  if (ep[0] == 4 || ep[0] == 6 || (allow_none && ep[0] == 0)) return true;
  throw_range(env, allow_none ? "endpoint entry family must be 0, 4 or 6" : "endpoint entry family must be 4 or 6");
  return false;
}
