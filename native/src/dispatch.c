/*
 * Run-time choice of the instruction-set group. A feature counts only when the CPU reports it and
 * the OS has enabled saving its registers (XCR0), since a hypervisor or kernel may hide AVX-512
 * state even on a CPU that has the instructions.
 */
#include "cairn.h"
#include "cpu_features.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

typedef struct {
  cairn_isa best;
  int n_features;
  const char *features[CAIRN_MAX_CPU_FEATURES];
} cpu_report;

static cpu_report g_report;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* -1 until a test forces a level; read on every kernel call, so kept lock-free. */
static atomic_int g_forced = -1;

static void add_feature(cpu_report *r, int present, const char *name) {
  if (present && r->n_features < CAIRN_MAX_CPU_FEATURES) r->features[r->n_features++] = name;
}

#if defined(__x86_64__)
static unsigned long long read_xcr0(void) {
  unsigned int lo, hi;
  /* xgetbv is encoded by hand so the baseline group needs no -mxsave. */
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

/*
 * AMX tile data is off for a Linux process until it asks for it (the kernel then saves 8 KiB more
 * per context switch); elsewhere the OS gives no such permission, so AMX stays unused.
 */
static int os_grants_amx(void) {
#if defined(__linux__)
  const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  return 0;
#endif
}

static void detect(cpu_report *r) {
  unsigned int a, b, c, d;
  r->best = CAIRN_ISA_SCALAR;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  const int osxsave = (c >> 27) & 1;
  const int avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
  const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
  /* XMM and YMM state for AVX; additionally opmask, ZMM_Hi256 and Hi16_ZMM for AVX-512. */
  const int os_avx = (xcr0 & 0x6) == 0x6;
  const int os_avx512 = (xcr0 & 0xe6) == 0xe6;

  unsigned int b7 = 0, c7 = 0, d7 = 0, a71 = 0;
  if (__get_cpuid_max(0, 0) >= 7) {
    __cpuid_count(7, 0, a, b7, c7, d7);
    __cpuid_count(7, 1, a71, b, c, d);
  }
  const int avx2 = (b7 >> 5) & 1, bmi2 = (b7 >> 8) & 1;
  const int f = (b7 >> 16) & 1, dq = (b7 >> 17) & 1, cd = (b7 >> 28) & 1;
  const int bw = (b7 >> 30) & 1, vl = (b7 >> 31) & 1;
  const int vnni = (c7 >> 11) & 1, bf16 = (a71 >> 5) & 1;
  const int amx_tile = (d7 >> 24) & 1, amx_int8 = (d7 >> 25) & 1, amx_bf16 = (d7 >> 22) & 1;
  /* XTILECFG and XTILEDATA state enabled by the OS. */
  const int os_amx = (xcr0 & 0x60000) == 0x60000;

  const int ok_avx = os_avx && avx;
  const int ok_512 = ok_avx && os_avx512;
  add_feature(r, ok_avx, "avx");
  add_feature(r, ok_avx && avx2, "avx2");
  add_feature(r, ok_avx && fma, "fma");
  add_feature(r, ok_avx && f16c, "f16c");
  add_feature(r, bmi2, "bmi2");
  add_feature(r, ok_512 && f, "avx512f");
  add_feature(r, ok_512 && bw, "avx512bw");
  add_feature(r, ok_512 && vl, "avx512vl");
  add_feature(r, ok_512 && dq, "avx512dq");
  add_feature(r, ok_512 && cd, "avx512cd");
  add_feature(r, ok_512 && vnni, "avx512vnni");
  add_feature(r, ok_512 && bf16, "avx512bf16");

  if (ok_avx && avx2 && fma && f16c && bmi2) r->best = CAIRN_ISA_AVX2;
  /* AVX-512 without VNNI/BF16 (Skylake-X) gains little over AVX2 for our kernels. */
  if (r->best == CAIRN_ISA_AVX2 && ok_512 && f && bw && vl && dq && cd && vnni && bf16) r->best = CAIRN_ISA_AVX512;
  /* Every AMX CPU so far has both tile types; the level takes F16 weights on the bf16 ones. */
  const int ok_amx = r->best == CAIRN_ISA_AVX512 && os_amx && amx_tile && amx_int8 && amx_bf16 && os_grants_amx();
  add_feature(r, ok_amx, "amx-tile");
  add_feature(r, ok_amx, "amx-int8");
  add_feature(r, ok_amx, "amx-bf16");
  if (ok_amx) r->best = CAIRN_ISA_AMX;
}
#elif defined(__aarch64__)
static void detect(cpu_report *r) {
  r->best = CAIRN_ISA_SCALAR;
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  /* HWCAP bits from the Linux arm64 ABI: FPHP 9, ASIMDHP 10, ASIMDDP 20. */
  const int fphp = (hw >> 9) & 1, asimdhp = (hw >> 10) & 1, dotprod = (hw >> 20) & 1;
  add_feature(r, 1, "neon");
  add_feature(r, fphp && asimdhp, "fp16");
  add_feature(r, dotprod, "dotprod");
  if (fphp && asimdhp && dotprod) r->best = CAIRN_ISA_NEON;
#elif defined(__APPLE__)
  /* Every Apple arm64 CPU has dotprod and fp16. */
  add_feature(r, 1, "neon");
  add_feature(r, 1, "fp16");
  add_feature(r, 1, "dotprod");
  r->best = CAIRN_ISA_NEON;
#endif
}
#else
static void detect(cpu_report *r) { r->best = CAIRN_ISA_SCALAR; }
#endif

/* Whether `isa` runs where `best` is the best level. */
static int usable_below(cairn_isa best, cairn_isa isa) {
  if (isa == CAIRN_ISA_SCALAR) return 1;
  /* Levels are ordered within an architecture only: NEON never runs on x86 and vice versa. */
  if (best == CAIRN_ISA_NEON) return isa == CAIRN_ISA_NEON;
  return isa != CAIRN_ISA_NEON && isa <= best;
}

/*
 * CAIRN_ISA=<scalar|avx2|avx512|amx|neon> caps the level for the whole process (to compare paths or
 * work around a problem in one of them); a level this CPU lacks is reported and ignored.
 */
static void apply_env_override(void) {
  const char *want = getenv("CAIRN_ISA");
  if (!want || !*want) return;
  cairn_isa isa;
  if (cairn_isa_parse(want, &isa) != 0 || !usable_below(g_report.best, isa)) {
    fprintf(stderr, "cairn: ignoring CAIRN_ISA=%s (this CPU supports up to %s)\n", want, cairn_isa_name(g_report.best));
    return;
  }
  if (isa != g_report.best) atomic_store(&g_forced, (int)isa);
}

static void detect_once(void) {
  detect(&g_report);
  apply_env_override();
}

cairn_isa cairn_isa_detect(void) {
  pthread_once(&g_once, detect_once);
  return g_report.best;
}

int cairn_isa_usable(cairn_isa isa) { return usable_below(cairn_isa_detect(), isa); }

cairn_isa cairn_isa_active(void) {
  const cairn_isa best = cairn_isa_detect(); /* first, so a CAIRN_ISA override is in place */
  const int forced = atomic_load_explicit(&g_forced, memory_order_relaxed);
  return forced >= 0 ? (cairn_isa)forced : best;
}

int cairn_isa_force(cairn_isa isa) {
  if ((int)isa < 0 || !cairn_isa_usable(isa)) return -1;
  atomic_store(&g_forced, isa == cairn_isa_detect() ? -1 : (int)isa);
  return 0;
}

static const char *const k_names[] = {"scalar", "avx2", "avx512", "neon", "amx"};

const char *cairn_isa_name(cairn_isa isa) {
  return (unsigned)isa < sizeof k_names / sizeof k_names[0] ? k_names[isa] : "unknown";
}

int cairn_isa_parse(const char *name, cairn_isa *out) {
  for (unsigned i = 0; i < sizeof k_names / sizeof k_names[0]; i++) {
    if (strcmp(name, k_names[i]) == 0) {
      *out = (cairn_isa)i;
      return 0;
    }
  }
  return -1;
}

int cairn_cpu_features(const char **names, int max) {
  cairn_isa_detect();
  const int n = g_report.n_features < max ? g_report.n_features : max;
  for (int i = 0; i < n; i++) names[i] = g_report.features[i];
  return n;
}
