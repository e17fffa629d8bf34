# The native kernel library. Sources are grouped by the instruction set they may use; each group
# is compiled with only its own flags, and native/src/dispatch.c picks a group at run time from
# what the CPU reports, so one binary runs on any x86-64 (or arm64) machine. Flags are given twice:
# `cflags` for make (Linux), `xcode_settings` for macOS builds. The AVX-512 group may also hold AMX
# tile code, which only the AMX level calls (compilers never emit tile instructions on their own).
# -ffp-contract=off keeps the compiler from fusing a*b+c on its own, so the portable C rounds
# exactly as written (and as the TypeScript reference does); hand-written kernels fuse where they
# mean to.
{
  "target_defaults": {
    "cflags": ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-Wall", "-Wno-unused-function"],
    "cflags_c": ["-std=gnu11"],
    "xcode_settings": {
      "GCC_C_LANGUAGE_STANDARD": "gnu11",
      "OTHER_CFLAGS": ["-O3", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wno-unused-function"]
    },
    "include_dirs": ["native/src"]
  },
  "targets": [
    {
      "target_name": "cairn_native",
      "sources": ["<!@(node native/list-sources.cjs src)"],
      "libraries": ["-lpthread", "-lm"],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["cairn_x86_avx2", "cairn_x86_avx512"]
        }],
        ["target_arch=='arm64'", {
          "dependencies": ["cairn_arm_neon"]
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "cairn_x86_avx2",
          "type": "static_library",
          "sources": ["<!@(node native/list-sources.cjs x86_avx2)"],
          "cflags": ["-mavx2", "-mfma", "-mf16c", "-mbmi2"],
          "xcode_settings": {
            "OTHER_CFLAGS": ["-O3", "-fno-math-errno", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c", "-mbmi2"]
          }
        },
        {
          "target_name": "cairn_x86_avx512",
          "type": "static_library",
          "sources": ["<!@(node native/list-sources.cjs x86_avx512)"],
          "cflags": ["-mavx2", "-mfma", "-mf16c", "-mbmi2", "-mavx512f", "-mavx512bw", "-mavx512vl",
                     "-mavx512dq", "-mavx512cd", "-mavx512vnni", "-mavx512bf16", "-mamx-tile", "-mamx-int8", "-mamx-bf16"],
          "xcode_settings": {
            "OTHER_CFLAGS": ["-O3", "-fno-math-errno", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c", "-mbmi2",
                             "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512cd",
                             "-mavx512vnni", "-mavx512bf16", "-mamx-tile", "-mamx-int8", "-mamx-bf16"]
          }
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "cairn_arm_neon",
          "type": "static_library",
          "sources": ["<!@(node native/list-sources.cjs arm_neon)"],
          "cflags": ["-march=armv8.2-a+dotprod+fp16"],
          "xcode_settings": {
            "OTHER_CFLAGS": ["-O3", "-fno-math-errno", "-ffp-contract=off", "-march=armv8.2-a+dotprod+fp16"]
          }
        }
      ]
    }]
  ]
}
