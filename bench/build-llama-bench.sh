#!/usr/bin/env bash
# Builds llama.cpp's own `llama-bench` for this machine (GGML_NATIVE: every instruction set this
# CPU has) from the very llama.cpp source node-llama-cpp bundles, so `cairn bench --vs-llama-bench`
# compares with llama.cpp as its users build it, not only with node-llama-cpp's prebuilt binaries.
#
#   bash bench/build-llama-bench.sh [OUT_DIR [CMAKE_OPTIONS...]]    (default: .bench/llama.cpp; about 7-15 minutes on 2 cores)
#
# CMAKE_OPTIONS build a GPU llama-bench for `cairn bench --backend gpu --vs-llama-bench`, e.g.
# -DGGML_CUDA=ON (needs the CUDA toolkit) or -DGGML_VULKAN=ON (needs the Vulkan headers and glslc).
#
# Prints the path of the built binary on its last line. Needs cmake and a C++ compiler; works
# offline (the source is in node_modules).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/.bench/llama.cpp}"
shift || true
bundle="$root/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [ ! -f "$bundle" ]; then
  echo "build-llama-bench: $bundle is missing; run npm install first (node-llama-cpp is a devDependency)" >&2
  exit 1
fi
for tool in cmake git c++; do
  command -v "$tool" >/dev/null || { echo "build-llama-bench: $tool is missing (apt-get install cmake git g++)" >&2; exit 1; }
done
if [ ! -d "$out/src/.git" ]; then
  rm -rf "$out/src"
  mkdir -p "$out"
  git clone --quiet "$bundle" "$out/src"
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# On a CPU with AMX, GCC 12 drops the stores that fill ggml's tile configuration before LDTILECFG
# (it does not count the instruction's read of the struct as a use), so the native build's AMX
# kernels fault (SIGILL) at their first tile load. Dead-store elimination off keeps them.
workaround=()
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && c++ -v 2>&1 | grep -q '^gcc version' &&
  [ "$(c++ -dumpversion | cut -d. -f1)" -lt 13 ]; then
  workaround=("-DCMAKE_C_FLAGS=-fno-tree-dse -fno-dse" "-DCMAKE_CXX_FLAGS=-fno-tree-dse -fno-dse")
  echo "build-llama-bench: AMX CPU with GCC < 13: building with -fno-tree-dse -fno-dse (GCC 12 drops ggml's tile configuration)" >&2
fi
cmake -S "$out/src" -B "$out/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON "${workaround[@]}" \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON "$@" >/dev/null
cmake --build "$out/build" --target llama-bench -j "$(nproc)"
bin="$out/build/bin/llama-bench"
[ -x "$bin" ] || { echo "build-llama-bench: the build ended without $bin" >&2; exit 1; }
echo "$bin"
