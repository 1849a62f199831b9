/* What the subsystems share through addon.c: the per-environment state (Node may load the
 * addon into several environments: the main thread and workers) and each subsystem's
 * registration of its exports. */
#ifndef TVPN_ADDON_H
#define TVPN_ADDON_H

#include <stdbool.h>

#include <node_api.h>

#include "handle.h"

typedef struct aead_state aead_state; /* aead.c */

typedef struct {
  napi_ref ctor[HANDLE_KINDS]; /* handle.c: the TunHandle and UdpHandle classes */
  bool constructing;           /* handle.c: only the open* factories may construct handles */
  aead_state *aead;            /* aead.c: created on first use */
} addon_state;

/* Frees st->aead (NULL is fine). */
void aead_state_free(aead_state *a);

/* Each adds its functions (and handle class) to exports; false with an exception pending. */
bool tun_register(napi_env env, napi_value exports);
bool udp_register(napi_env env, napi_value exports);
bool aead_register(napi_env env, napi_value exports);
bool netns_register(napi_env env, napi_value exports);
bool unix_register(napi_env env, napi_value exports);

#endif
