/*
 * glance_store_ng._native: see gsn_native.h for the contract.
 *
 * Digests: OpenSSL's EVP interface for the hashlib algorithms, libxxhash for
 * XXH3 (64 and 128 bits, seed 0, canonical big-endian output as the xxhash
 * Python package gives) when the build found its header (GSN_HAVE_XXHASH; the
 * Python wrapper hashes XXH3 through the xxhash package otherwise). Zero
 * detection: glibc's vectorised memcmp.
 */
#include "gsn_native.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#ifdef GSN_HAVE_XXHASH
#include <xxhash.h>
#endif

#ifndef GSN_VERSION
#error "GSN_VERSION must be defined by the build (native/build_native.py)"
#endif

enum gsn_kind { GSN_KIND_EVP, GSN_KIND_XXH3_64, GSN_KIND_XXH3_128 };

struct gsn_algo {
    const char *name;     /* hashlib spelling */
    const char *evp_name; /* OpenSSL name valid in 1.1 and 3.x; NULL for XXH3 */
    enum gsn_kind kind;
};

static const struct gsn_algo gsn_algos[] = {
    {"md5", "MD5", GSN_KIND_EVP},
    {"sha1", "SHA1", GSN_KIND_EVP},
    {"sha224", "SHA224", GSN_KIND_EVP},
    {"sha256", "SHA256", GSN_KIND_EVP},
    {"sha384", "SHA384", GSN_KIND_EVP},
    {"sha512", "SHA512", GSN_KIND_EVP},
    {"sha512_224", "SHA512-224", GSN_KIND_EVP},
    {"sha512_256", "SHA512-256", GSN_KIND_EVP},
    {"sha3_224", "SHA3-224", GSN_KIND_EVP},
    {"sha3_256", "SHA3-256", GSN_KIND_EVP},
    {"sha3_384", "SHA3-384", GSN_KIND_EVP},
    {"sha3_512", "SHA3-512", GSN_KIND_EVP},
    {"blake2b", "BLAKE2b512", GSN_KIND_EVP},
    {"blake2s", "BLAKE2s256", GSN_KIND_EVP},
    {"sm3", "SM3", GSN_KIND_EVP},
    {"ripemd160", "RIPEMD160", GSN_KIND_EVP},
    {"md5-sha1", "MD5-SHA1", GSN_KIND_EVP},
#ifdef GSN_HAVE_XXHASH
    {"xxh3_64", NULL, GSN_KIND_XXH3_64},
    {"xxh3_128", NULL, GSN_KIND_XXH3_128},
#endif
};

#define GSN_N_ALGOS (sizeof(gsn_algos) / sizeof(gsn_algos[0]))

struct gsn_digest {
    const struct gsn_algo *algo;
    size_t size;
    EVP_MD_CTX *evp;
#ifdef GSN_HAVE_XXHASH
    XXH3_state_t *xxh;
#endif
};

/*
 * The EVP_MD of each algorithm, looked up once per process. OpenSSL 3 would
 * otherwise fetch the implementation from its provider on every init.
 */
static const EVP_MD *gsn_mds[GSN_N_ALGOS];
static pthread_once_t gsn_mds_once = PTHREAD_ONCE_INIT;

static void gsn_fetch_mds(void)
{
    for (size_t i = 0; i < GSN_N_ALGOS; i++) {
        if (gsn_algos[i].evp_name == NULL)
            continue;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        gsn_mds[i] = EVP_MD_fetch(NULL, gsn_algos[i].evp_name, NULL);
#else
        gsn_mds[i] = EVP_get_digestbyname(gsn_algos[i].evp_name);
#endif
    }
}

const char *gsn_version(void)
{
    return GSN_VERSION;
}

const char *gsn_strerror(int code)
{
    switch (code) {
    case GSN_OK:
        return "success";
    case GSN_EINVAL:
        return "invalid argument";
    case GSN_ENOMEM:
        return "out of memory";
    case GSN_EUNSUPPORTED:
        return "algorithm not supported by this build or by the crypto library's configuration";
    case GSN_ECRYPTO:
        return "the crypto library reported an error";
    case GSN_ETHREAD:
        return "a hashing thread, or its mutex or condition variable, could not be created";
    case GSN_ECLOSED:
        return "the hash pipe is closed";
    default:
        return "unknown error";
    }
}

const char *gsn_algorithm_name(size_t index)
{
    return index < GSN_N_ALGOS ? gsn_algos[index].name : NULL;
}

static gsn_digest *gsn_digest_alloc(const struct gsn_algo *algo)
{
    gsn_digest *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->algo = algo;
    if (algo->kind == GSN_KIND_EVP) {
        d->evp = EVP_MD_CTX_new();
        if (d->evp != NULL)
            return d;
    }
#ifdef GSN_HAVE_XXHASH
    else {
        d->xxh = XXH3_createState();
        if (d->xxh != NULL)
            return d;
    }
#endif
    free(d);
    return NULL;
}

int gsn_digest_new(const char *name, gsn_digest **out)
{
    const struct gsn_algo *algo = NULL;
    size_t i;

    if (name == NULL || out == NULL)
        return GSN_EINVAL;
    *out = NULL;
    for (i = 0; i < GSN_N_ALGOS; i++) {
        if (strcmp(gsn_algos[i].name, name) == 0) {
            algo = &gsn_algos[i];
            break;
        }
    }
    if (algo == NULL)
        return GSN_EUNSUPPORTED;
    if (algo->kind == GSN_KIND_EVP) {
        if (pthread_once(&gsn_mds_once, gsn_fetch_mds) != 0)
            return GSN_ECRYPTO;
        if (gsn_mds[i] == NULL)
            return GSN_EUNSUPPORTED;
    }

    gsn_digest *d = gsn_digest_alloc(algo);
    if (d == NULL)
        return GSN_ENOMEM;
    switch (algo->kind) {
    case GSN_KIND_EVP:
        /* Fails e.g. for md5 when the FIPS provider is enforced. */
        if (EVP_DigestInit_ex(d->evp, gsn_mds[i], NULL) != 1) {
            gsn_digest_free(d);
            return GSN_EUNSUPPORTED;
        }
        d->size = (size_t)EVP_MD_CTX_size(d->evp);
        break;
#ifdef GSN_HAVE_XXHASH
    case GSN_KIND_XXH3_64:
        if (XXH3_64bits_reset(d->xxh) != XXH_OK) {
            gsn_digest_free(d);
            return GSN_ECRYPTO;
        }
        d->size = sizeof(XXH64_canonical_t);
        break;
    case GSN_KIND_XXH3_128:
        if (XXH3_128bits_reset(d->xxh) != XXH_OK) {
            gsn_digest_free(d);
            return GSN_ECRYPTO;
        }
        d->size = sizeof(XXH128_canonical_t);
        break;
#else
    default: /* not in the table without libxxhash */
        gsn_digest_free(d);
        return GSN_EUNSUPPORTED;
#endif
    }
    if (d->size == 0 || d->size > GSN_MAX_DIGEST_SIZE) {
        gsn_digest_free(d);
        return GSN_ECRYPTO;
    }
    *out = d;
    return GSN_OK;
}

int gsn_digest_copy(const gsn_digest *src, gsn_digest **out)
{
    if (src == NULL || out == NULL)
        return GSN_EINVAL;
    *out = NULL;
    gsn_digest *d = gsn_digest_alloc(src->algo);
    if (d == NULL)
        return GSN_ENOMEM;
    d->size = src->size;
    if (d->evp != NULL) {
        if (EVP_MD_CTX_copy_ex(d->evp, src->evp) != 1) {
            gsn_digest_free(d);
            return GSN_ECRYPTO;
        }
    }
#ifdef GSN_HAVE_XXHASH
    else {
        XXH3_copyState(d->xxh, src->xxh);
    }
#endif
    *out = d;
    return GSN_OK;
}

int gsn_digest_update(gsn_digest *digest, const uint8_t *data, size_t len)
{
    if (digest == NULL || (data == NULL && len != 0))
        return GSN_EINVAL;
    if (len == 0)
        return GSN_OK;
    if (digest->evp != NULL)
        return EVP_DigestUpdate(digest->evp, data, len) == 1 ? GSN_OK : GSN_ECRYPTO;
#ifdef GSN_HAVE_XXHASH
    if (digest->algo->kind == GSN_KIND_XXH3_64)
        return XXH3_64bits_update(digest->xxh, data, len) == XXH_OK ? GSN_OK : GSN_ECRYPTO;
    return XXH3_128bits_update(digest->xxh, data, len) == XXH_OK ? GSN_OK : GSN_ECRYPTO;
#else
    return GSN_EUNSUPPORTED;
#endif
}

int gsn_digest_final(const gsn_digest *digest, uint8_t *out, size_t out_len)
{
    if (digest == NULL || out == NULL || out_len < digest->size)
        return GSN_EINVAL;
    if (digest->evp != NULL) {
        /* Finalise a copy: the caller may go on feeding the original. */
        EVP_MD_CTX *tmp = EVP_MD_CTX_new();
        unsigned int n = 0;
        int ok;
        if (tmp == NULL)
            return GSN_ENOMEM;
        ok = EVP_MD_CTX_copy_ex(tmp, digest->evp) == 1 && EVP_DigestFinal_ex(tmp, out, &n) == 1 &&
             n == digest->size;
        EVP_MD_CTX_free(tmp);
        return ok ? GSN_OK : GSN_ECRYPTO;
    }
#ifdef GSN_HAVE_XXHASH
    if (digest->algo->kind == GSN_KIND_XXH3_64) {
        XXH64_canonical_t c;
        XXH64_canonicalFromHash(&c, XXH3_64bits_digest(digest->xxh));
        memcpy(out, c.digest, sizeof(c.digest));
    } else {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(digest->xxh));
        memcpy(out, c.digest, sizeof(c.digest));
    }
    return GSN_OK;
#else
    return GSN_EUNSUPPORTED;
#endif
}

size_t gsn_digest_size(const gsn_digest *digest)
{
    return digest == NULL ? 0 : digest->size;
}

void gsn_digest_free(gsn_digest *digest)
{
    if (digest == NULL)
        return;
    EVP_MD_CTX_free(digest->evp);
#ifdef GSN_HAVE_XXHASH
    if (digest->xxh != NULL)
        XXH3_freeState(digest->xxh);
#endif
    free(digest);
}

/*
 * All-zero test. After checking the first 16 bytes, buf[i] == buf[i + 16] for
 * every i means every byte equals a zero byte. glibc's memcmp is vectorised
 * (SSE2/AVX2/EVEX chosen at run time) and stops at the first difference, and
 * both operands share cache lines, so memory is streamed once.
 */
static int gsn_span_is_zero(const uint8_t *p, size_t n)
{
    uint64_t head[2];

    if (n < sizeof(head)) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0)
                return 0;
        return 1;
    }
    memcpy(head, p, sizeof(head));
    if ((head[0] | head[1]) != 0)
        return 0;
    return memcmp(p, p + sizeof(head), n - sizeof(head)) == 0;
}

int gsn_is_zero(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return 1;
    if (buf == NULL)
        return 0;
    return gsn_span_is_zero(buf, len);
}

int gsn_zero_extents(const uint8_t *buf, size_t len, size_t block_size, size_t offset,
                     size_t *extents, size_t max_extents, size_t *count,
                     size_t *next_offset)
{
    size_t n = 0;
    size_t pos = offset;
    size_t start = 0;
    int in_run = 0;

    if (count == NULL || next_offset == NULL || extents == NULL || max_extents == 0 ||
        block_size == 0 || offset > len || offset % block_size != 0 ||
        (buf == NULL && len != 0))
        return GSN_EINVAL;

    while (pos < len) {
        size_t end = len - pos > block_size ? pos + block_size : len;
        if (gsn_span_is_zero(buf + pos, end - pos)) {
            if (!in_run) {
                if (n == max_extents)
                    break; /* resume on this block: it follows a non-zero one */
                start = pos;
                in_run = 1;
            }
        } else if (in_run) {
            extents[2 * n] = start;
            extents[2 * n + 1] = pos;
            n++;
            in_run = 0;
        }
        pos = end;
    }
    if (in_run) {
        extents[2 * n] = start;
        extents[2 * n + 1] = len;
        n++;
    }
    *count = n;
    *next_offset = pos;
    return GSN_OK;
}
