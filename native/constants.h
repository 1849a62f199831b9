/* Numbers used by several of the addon's files; TypeScript mirrors some of them
 * (src/crypto/aead.ts, src/io/endpoint.ts, src/io/batch.ts). */
#ifndef TVPN_CONSTANTS_H
#define TVPN_CONSTANTS_H

#define SLOT_HEADER 16         /* WireGuard transport header in front of each AEAD payload */
#define TAG_LENGTH 16          /* Poly1305 tag */
#define ENDPOINT_SIZE 20       /* family(4|6|0), pad, port BE, 16 address bytes */
#define MAX_SLOT_SIZE (1 << 20)
#define GSO_MAX_SEGMENTS 64    /* UDP_MAX_SEGMENTS before Linux 6.9 raised it to 128 */
#define GSO_MAX_BYTES 65507    /* largest IPv4 UDP payload; IPv6 allows 20 more, not worth it */

#endif
