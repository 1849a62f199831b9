{
  "targets": [
    {
      "target_name": "tvpn",
      "sources": ["tvpn.c", "tun_offload.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
