{
  "targets": [
    {
      "target_name": "tvpn",
      "sources": ["addon.c", "napi_util.c", "handle.c", "tun.c", "tun_offload.c", "tun_gso.c", "endpoint.c", "udp.c", "udp_recv.c", "aead.c", "aead_pool.c", "netns.c", "unix.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
