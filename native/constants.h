/* The numbers the TypeScript side mirrors. addon.c exports each under the same name, and
 * src/addon/addon.ts fails at load when one differs from TypeScript's (a stale build). */
#ifndef TVPN_CONSTANTS_H
#define TVPN_CONSTANTS_H

#define SLOT_HEADER 16         /* WireGuard transport header in front of each AEAD payload */
#define TAG_LENGTH 16          /* Poly1305 tag */
#define ENDPOINT_SIZE 20       /* family(4|6|0), pad, port BE, 16 address bytes */
#define MAX_SLOT_SIZE (1 << 20)
#define GSO_MAX_SEGMENTS 64    /* UDP_MAX_SEGMENTS before Linux 6.9 raised it to 128 */
#define GSO_MAX_BYTES 65507    /* largest IPv4 UDP payload; IPv6 allows 20 more, not worth it */

#endif
