{
  "targets": [
    {
      "target_name": "cairn_native",
      "sources": ["native/binding.c"],
      "cflags": ["-O3", "-std=c11"],
      "cflags_c": ["-std=c11"]
    }
  ]
}
