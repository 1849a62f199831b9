/* Endpoint entries <-> socket addresses (endpoint.c). An entry is ENDPOINT_SIZE bytes:
 * family (4, 6, or 0 for none), a zero byte, the port big-endian, 16 address bytes (IPv4 in
 * the first 4); the layout is documented in src/io/endpoint.ts. */
#ifndef TVPN_ENDPOINT_H
#define TVPN_ENDPOINT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <node_api.h>

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} sockaddr_any;

/* Builds the destination for an entry; returns its length, or 0 for family 0 (use the
 * connected peer). IPv4 entries become v4-mapped addresses on an IPv6 socket. */
socklen_t endpoint_to_sockaddr(const uint8_t *ep, int sock_family, sockaddr_any *sa);

/* Fills an entry from a received address; v4-mapped IPv6 addresses become IPv4 entries so
 * a peer compares equal however a dual-stack socket saw it. */
void sockaddr_to_endpoint(const sockaddr_any *sa, uint8_t *ep);

/* Throws a RangeError unless the entry's family is 4 or 6 (or 0 with allow_none). */
bool check_endpoint_family(napi_env env, const uint8_t *ep, bool allow_none);

#endif
