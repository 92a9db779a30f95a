{
  "targets": [
    {
      "target_name": "peercred",
      "sources": ["host/controls/native/peercred.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra"] }
    }
  ]
}
