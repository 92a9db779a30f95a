{
  "targets": [
    {
      "target_name": "peercred",
      "sources": ["host/controls/native/peercred.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra"] }
    },
    {
      "target_name": "watchdog",
      "sources": ["host/sandbox/native/watchdog.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_cc": ["-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"],
      "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra"] }
    },
    {
      "target_name": "crypt",
      "sources": ["host/auth/native/crypt.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"],
      "xcode_settings": { "OTHER_CFLAGS": ["-Wall", "-Wextra"] }
    }
  ]
}
