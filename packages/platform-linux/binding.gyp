{
  "targets": [
    {
      "target_name": "rps_platform",
      "sources": ["native/rps_platform.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}
