/*
 * glance_store_ng._native: digests (OpenSSL EVP, xxHash XXH3) and zero-block
 * detection over caller-owned buffers.
 *
 * Every function that can fail returns an int status: GSN_OK (0) or a negative
 * GSN_E* code that gsn_strerror() describes. No function keeps a pointer to a
 * caller's buffer after it returns, and none touches Python, so the binding
 * may release the GIL around each call. A gsn_digest must not be used by two
 * threads at once; distinct digests are independent.
 *
 * The declarations between the CDEF markers are read by native/build_native.py
 * as the cffi cdef: keep them free of preprocessor conditionals.
 */
#ifndef GSN_NATIVE_H
#define GSN_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
#define GSN_OK 0
#define GSN_EINVAL -1
#define GSN_ENOMEM -2
#define GSN_EUNSUPPORTED -3
#define GSN_ECRYPTO -4
#define GSN_ETHREAD -5
#define GSN_ECLOSED -6

/* The largest digest any algorithm here produces, in bytes. */
#define GSN_MAX_DIGEST_SIZE 64

typedef struct gsn_digest gsn_digest;

/* The glance_store_ng version this module was built from. */
const char *gsn_version(void);

/* A static, human-readable text for a status code. */
const char *gsn_strerror(int code);

/* Algorithm names (hashlib spelling) known to this module, index 0..n-1;
 * NULL past the end. Whether one works at run time (e.g. md5 under FIPS)
 * is told by gsn_digest_new(). */
const char *gsn_algorithm_name(size_t index);

/* A new digest state for algorithm `name` (hashlib spelling) in *out. */
int gsn_digest_new(const char *name, gsn_digest **out);

/* An independent copy of `src` in *out. */
int gsn_digest_copy(const gsn_digest *src, gsn_digest **out);

/* Feed `len` bytes at `data` (`data` may be NULL when `len` is 0). */
int gsn_digest_update(gsn_digest *digest, const uint8_t *data, size_t len);

/* The digest of everything fed so far, written to `out` (at least
 * gsn_digest_size() bytes). The state is left as it was: more data may follow. */
int gsn_digest_final(const gsn_digest *digest, uint8_t *out, size_t out_len);

/* The digest length in bytes. */
size_t gsn_digest_size(const gsn_digest *digest);

/* Release a state from gsn_digest_new()/gsn_digest_copy(); NULL is allowed. */
void gsn_digest_free(gsn_digest *digest);

/* 1 when all `len` bytes at `buf` are zero (also when `len` is 0), else 0. */
int gsn_is_zero(const uint8_t *buf, size_t len);

/*
 * The all-zero regions of buf[0:len) at block granularity, merged, as
 * (start, end) pairs: extents[2*i] = start, extents[2*i+1] = end.
 * Blocks start at multiples of `block_size` from `buf`; the last one may be
 * shorter. Scanning starts at `offset` (a multiple of `block_size`, at most
 * `len`) and stops when the buffer ends or before an extent that would not fit
 * in `max_extents`. *count receives the number of pairs written, *next_offset
 * where to resume (== len when done). Extents from successive calls need no
 * merging: a resumed scan starts on a zero block that follows a non-zero one.
 */
int gsn_zero_extents(const uint8_t *buf, size_t len, size_t block_size, size_t offset,
                     size_t *extents, size_t max_extents, size_t *count,
                     size_t *next_offset);

/* The CRC-32C (Castagnoli) of data[0:len), continuing from `crc` (the value
 * returned for the data before; 0 to start), as S3's x-amz-checksum-crc32c. */
uint32_t gsn_crc32c(uint32_t crc, const uint8_t *data, size_t len);

/*
 * A hash pipe: buffers fed, in order, to several digests, each digest on a
 * thread of its own (so md5 and sha512 of one stream use two cores). The
 * caller keeps each buffer valid and unchanged until gsn_hashpipe_wait() has
 * returned for its sequence number; the digests belong to the pipe's threads
 * until gsn_hashpipe_close() returns.
 */
typedef struct gsn_hashpipe gsn_hashpipe;

/* A pipe over `n_digests` digests with at most `capacity` buffers in flight.
 * GSN_ETHREAD (or GSN_ENOMEM) when a thread, mutex or condition variable
 * cannot be created; nothing is left behind then. */
int gsn_hashpipe_new(gsn_digest **digests, size_t n_digests, size_t capacity,
                     gsn_hashpipe **out);

/* Queue data[0:len) for every digest; *seq receives its number (1, 2, ...).
 * Blocks while `capacity` buffers are in flight. */
int gsn_hashpipe_submit(gsn_hashpipe *pipe, const uint8_t *data, size_t len, uint64_t *seq);

/* Block until every digest has consumed buffer `seq` and all before it.
 * GSN_ECLOSED after an abandoning close: then buffers are free only once
 * gsn_hashpipe_close() has returned. */
int gsn_hashpipe_wait(gsn_hashpipe *pipe, uint64_t seq);

/* Stop and join the threads: after the queued buffers, or at once when
 * `abandon` is non-zero. Returns the first error a digest reported.
 * Safe to call again, and from several threads at once: the first call
 * decides `abandon` and joins the threads; the others wait until it has and
 * return the same status. */
int gsn_hashpipe_close(gsn_hashpipe *pipe, int abandon);

/* Close (abandoning) if still open, and release the pipe; NULL is allowed.
 * Call it once, when no other call on the pipe is running or will follow. */
void gsn_hashpipe_free(gsn_hashpipe *pipe);
/* CDEF END */

#endif /* GSN_NATIVE_H */
