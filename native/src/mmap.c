/* File mappings with a shared reference count (see mmap.h). */
#define _GNU_SOURCE
#include "mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct cairn_mapping {
  atomic_long refs;
  uint8_t *data;
  uint64_t size;
  int fd; /* kept open to drop this file's pages from the page cache (cairn_map_drop_range) */
};

cairn_mapping *cairn_map_open(const char *path, cairn_map_status *status, char *err, size_t err_len) {
  *status = CAIRN_MAP_FAILED;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) *status = CAIRN_MAP_NOT_FOUND;
    snprintf(err, err_len, "cannot map '%s': %s", path, strerror(e));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, err_len, "cannot map '%s': %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    snprintf(err, err_len, "cannot map '%s': it is a directory, not a file", path);
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, err_len, "cannot map '%s': not a regular file", path);
    close(fd);
    return NULL;
  }
  if (st.st_size <= 0) {
    snprintf(err, err_len, "cannot map '%s': the file is empty", path);
    close(fd);
    return NULL;
  }
  void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  if (data == MAP_FAILED) {
    close(fd);
    snprintf(err, err_len, "cannot map '%s': %s", path, strerror(map_errno));
    return NULL;
  }
#ifdef MADV_HUGEPAGE
  /* Pages read in through this mapping come as 2 MiB folios mapped by one page-table entry each
     (where the kernel and file system can): weights are read in long streams, and 4 KiB pages cost
     a TLB miss (two-level under virtualization) and a stalled prefetcher at every page boundary. */
  madvise(data, (size_t)st.st_size, MADV_HUGEPAGE);
#endif
  cairn_mapping *m = malloc(sizeof *m);
  if (!m) {
    munmap(data, (size_t)st.st_size);
    close(fd);
    snprintf(err, err_len, "cannot map '%s': out of memory", path);
    return NULL;
  }
  atomic_init(&m->refs, 1);
  m->data = data;
  m->size = (uint64_t)st.st_size;
  m->fd = fd;
  *status = CAIRN_MAP_OK;
  return m;
}

const uint8_t *cairn_map_data(const cairn_mapping *m) { return m->data; }

uint64_t cairn_map_size(const cairn_mapping *m) { return m->size; }

void cairn_map_retain(cairn_mapping *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void cairn_map_release(cairn_mapping *m) {
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  munmap(m->data, (size_t)m->size);
  close(m->fd);
  free(m);
}

int64_t cairn_map_large_bytes(const cairn_mapping *m) {
#ifdef __linux__
  FILE *f = fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  /* The kernel lists the mapping's end rounded up to a whole page. */
  const unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
  const unsigned long start = (unsigned long)(uintptr_t)m->data, end = (start + (unsigned long)m->size + page - 1) & ~(page - 1);
  char line[512];
  int inside = 0, seen = 0;
  int64_t total = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    char perms[8];
    /* A mapping's first line is "start-end perms ..."; its fields follow as "Name: value kB". */
    if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3) {
      inside = a >= start && b <= end;
      seen |= inside;
      continue;
    }
    unsigned long kb;
    if (inside && sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1) total += (int64_t)kb * 1024;
  }
  fclose(f);
  return seen ? total : -1;
#else
  (void)m;
  return -1;
#endif
}

int cairn_map_drop_range(cairn_mapping *m, uint64_t offset, uint64_t length) {
  if (offset >= m->size || length == 0) return 0;
  if (length > m->size - offset) length = m->size - offset;
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  const uint64_t from = offset & ~(page - 1), to = offset + length;
  /* Our own page-table entries first: the page cache keeps a page that any mapping still maps. */
  if (madvise(m->data + from, (size_t)(to - from), MADV_DONTNEED) != 0) return -1;
#ifdef POSIX_FADV_DONTNEED
  if (posix_fadvise(m->fd, (off_t)from, (off_t)(to - from), POSIX_FADV_DONTNEED) != 0) return -1;
  return 0;
#else
  return -1;
#endif
}

int cairn_map_unmap_range(cairn_mapping *m, uint64_t offset, uint64_t length) {
  if (offset >= m->size || length == 0) return 0;
  if (length > m->size - offset) length = m->size - offset;
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  /* Whole pages only: a page this range shares with a neighbour stays mapped for it. */
  const uint64_t from = (offset + page - 1) & ~(page - 1), to = (offset + length) & ~(page - 1);
  if (to <= from) return 0;
  return madvise(m->data + from, (size_t)(to - from), MADV_DONTNEED) == 0 ? 0 : -1;
}

/* Huge page size on x86-64 and arm64 with 4 KiB base pages. */
#define HUGE_PAGE ((uintptr_t)2 << 20)

int cairn_advise_huge(void *p, size_t len) {
#ifdef MADV_HUGEPAGE
  const uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), end = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
  if (end <= start) return -1;
  return madvise((void *)start, end - start, MADV_HUGEPAGE) == 0 ? 0 : -1;
#else
  (void)p;
  (void)len;
  return -1;
#endif
}

int cairn_advise_willneed(const void *p, size_t len) {
  if (len == 0) return 0;
  /* madvise wants a page-aligned start; widening the range to whole pages is harmless. */
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t start = (uintptr_t)p & ~(page - 1);
  const uintptr_t end = (uintptr_t)p + len;
  return madvise((void *)start, end - start, MADV_WILLNEED) == 0 ? 0 : -1;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

int cairn_populate_read(const void *p, size_t len) {
  if (len == 0) return 0;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t start = (uintptr_t)p & ~(page - 1);
  const uintptr_t end = (uintptr_t)p + len;
  /* Linux 5.14+: the kernel faults the whole range in at once, far cheaper than one fault per page. */
  if (madvise((void *)start, end - start, MADV_POPULATE_READ) == 0) return 0;
  /* Older kernels: read one byte per page. */
  volatile unsigned char sink = 0;
  for (uintptr_t a = start < (uintptr_t)p ? (uintptr_t)p : start; a < end; a += page) sink ^= *(const volatile unsigned char *)a;
  (void)sink;
  return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int cairn_populate_write(void *p, size_t len) {
  if (len == 0) return 0;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t start = (uintptr_t)p & ~(page - 1);
  const uintptr_t end = (uintptr_t)p + len;
  /* Linux 5.14+: writable pages (huge ones where advised) faulted in at once; the bytes stay as they
     are. Elsewhere nothing is done: touching pages by hand would write to memory whose permissions
     this does not know. */
  return madvise((void *)start, end - start, MADV_POPULATE_WRITE) == 0 ? 0 : -1;
}

int cairn_evict_file(const char *path) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  const int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  return r == 0 ? 0 : -1;
}
