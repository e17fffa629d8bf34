/*
 * Read-only file mappings shared by many views. A mapping is reference-counted: the opener holds
 * one reference and every view (an external ArrayBuffer) holds one, so the pages stay mapped
 * until the last user lets go, whatever order that happens in.
 */
#ifndef CAIRN_MMAP_H
#define CAIRN_MMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cairn_mapping cairn_mapping;

/* Why a mapping could not be opened. */
typedef enum { CAIRN_MAP_OK = 0, CAIRN_MAP_NOT_FOUND, CAIRN_MAP_FAILED } cairn_map_status;

/*
 * Maps the whole file at `path` read-only (MAP_SHARED, PROT_READ) with one reference held by the
 * caller. On failure returns NULL, sets *status and writes a sentence naming the path into `err`.
 */
cairn_mapping *cairn_map_open(const char *path, cairn_map_status *status, char *err, size_t err_len);

/* First byte of the mapping. */
const uint8_t *cairn_map_data(const cairn_mapping *m);

/* Size of the mapped file in bytes. */
uint64_t cairn_map_size(const cairn_mapping *m);

/* Takes one more reference. */
void cairn_map_retain(cairn_mapping *m);

/* Drops one reference; the last one unmaps the file and frees `m`. */
void cairn_map_release(cairn_mapping *m);

/*
 * Bytes of the mapping the kernel maps with huge-page (PMD) entries, from /proc/self/smaps; -1
 * where that cannot be read (not Linux, or no such mapping listed).
 */
int64_t cairn_map_large_bytes(const cairn_mapping *m);
/*
 * Unmaps [offset, offset + length) of the file from this mapping's page tables and asks the
 * kernel to drop those pages from the page cache (pages another mapping still maps stay). The
 * next read through the mapping reads the file again, in huge folios where the kernel can.
 * 0, or -1 when the kernel refused.
 */
int cairn_map_drop_range(cairn_mapping *m, uint64_t offset, uint64_t length);

/*
 * Unmaps the whole pages inside [offset, offset + length) from this mapping's page tables only:
 * the page cache keeps them (reclaimable, and a later read maps them again), and the process no
 * longer holds them. 0, or -1 when the kernel refused.
 */
int cairn_map_unmap_range(cairn_mapping *m, uint64_t offset, uint64_t length);

/*
 * Asks for huge pages under the whole 2 MiB pages inside [p, p + len) of anonymous memory (an
 * aligned arena, or a large buffer just allocated and not yet touched, whose first touches then fault
 * in 2 MiB at a time). 0, or -1 where the kernel refused or the range holds no whole huge page.
 */
int cairn_advise_huge(void *p, size_t len);

/* Asks the kernel to read [p, p + len) ahead of use. Returns 0, or -1 if the kernel refused. */
int cairn_advise_willneed(const void *p, size_t len);
/* Faults a range of a mapping in now (so the first use does not wait on page faults). */
int cairn_populate_read(const void *p, size_t len);
/*
 * Faults [p, p + len) of writable memory in now, writable, without changing a byte (memory a
 * first request would otherwise wait on: a KV cache, activation buffers). 0, or -1 where the OS
 * cannot (before Linux 5.14, other systems) or refused.
 */
int cairn_populate_write(void *p, size_t len);
/* Drops a file's pages from the page cache (for cold-start benchmarks). 0 or -1. */
int cairn_evict_file(const char *path);

#endif
