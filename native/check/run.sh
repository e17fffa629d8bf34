#!/usr/bin/env bash
# Builds the kernel library without Node.js together with kernel_check.c and runs the check:
#   native/check/run.sh            on this machine (x86-64 or arm64); CAIRN_ISA=avx2 checks that level
#   native/check/run.sh arm64      cross-compiled for aarch64 and run under qemu-aarch64
# arm64 needs Debian's gcc-aarch64-linux-gnu and qemu-user. Exit status 0: all kernels agree;
# 2: the toolchain is missing (the message says which package).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${1:-host}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "$target" = arm64 ]; then
  cc=aarch64-linux-gnu-gcc
  command -v "$cc" >/dev/null || { echo "missing $cc (apt install gcc-aarch64-linux-gnu)"; exit 2; }
  command -v qemu-aarch64 >/dev/null || { echo "missing qemu-aarch64 (apt install qemu-user)"; exit 2; }
  isa_dirs="arm_neon"
  isa_flags="-march=armv8.2-a+dotprod+fp16"
  run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
else
  cc=${CC:-gcc}
  run=()
  case "$(uname -m)" in
    x86_64) isa_dirs="x86_avx2 x86_avx512" ;;
    aarch64) isa_dirs="arm_neon" ; isa_flags="-march=armv8.2-a+dotprod+fp16" ;;
    *) isa_dirs="" ;;
  esac
fi

common=(-O2 -std=gnu11 -fno-math-errno -ffp-contract=off -I"$root/native/src")
objs=()
for f in "$root"/native/src/*.c; do
  case "$(basename "$f")" in binding*.c) continue ;; esac
  "$cc" "${common[@]}" -c "$f" -o "$out/$(basename "$f" .c).o"
  objs+=("$out/$(basename "$f" .c).o")
done
for d in $isa_dirs; do
  case "$d" in
    x86_avx2) flags="-mavx2 -mfma -mf16c -mbmi2" ;;
    x86_avx512) flags="-mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512cd -mavx512vnni -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16" ;;
    arm_neon) flags="$isa_flags" ;;
  esac
  for f in "$root/native/$d"/*.c; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC2086
    "$cc" "${common[@]}" $flags -c "$f" -o "$out/$d-$(basename "$f" .c).o"
    objs+=("$out/$d-$(basename "$f" .c).o")
  done
done
"$cc" "${common[@]}" "$here/kernel_check.c" "${objs[@]}" -o "$out/kernel_check" -lm -lpthread
"${run[@]}" "$out/kernel_check"
