/* File mappings with a shared reference count (see mmap.h). */
#define _GNU_SOURCE
#include "mmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct cairn_mapping {
  atomic_long refs;
  uint8_t *data;
  uint64_t size;
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
  close(fd); /* the mapping keeps the file open by itself */
  if (data == MAP_FAILED) {
    snprintf(err, err_len, "cannot map '%s': %s", path, strerror(map_errno));
    return NULL;
  }
  cairn_mapping *m = malloc(sizeof *m);
  if (!m) {
    munmap(data, (size_t)st.st_size);
    snprintf(err, err_len, "cannot map '%s': out of memory", path);
    return NULL;
  }
  atomic_init(&m->refs, 1);
  m->data = data;
  m->size = (uint64_t)st.st_size;
  *status = CAIRN_MAP_OK;
  return m;
}

const uint8_t *cairn_map_data(const cairn_mapping *m) { return m->data; }

uint64_t cairn_map_size(const cairn_mapping *m) { return m->size; }

void cairn_map_retain(cairn_mapping *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void cairn_map_release(cairn_mapping *m) {
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  munmap(m->data, (size_t)m->size);
  free(m);
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

int cairn_evict_file(const char *path) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  const int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  return r == 0 ? 0 : -1;
}
