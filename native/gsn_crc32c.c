/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and S3's
 * x-amz-checksum-crc32c use it. On x86-64 CPUs with SSE4.2 the CRC32 instruction
 * does 8 bytes at a time (chosen at run time); elsewhere a byte-wise table.
 */
#include "gsn_native.h"

#include <pthread.h>
#include <string.h>

#define GSN_CRC32C_POLY 0x82F63B78u

static uint32_t gsn_crc32c_table[256];
static pthread_once_t gsn_crc32c_table_once = PTHREAD_ONCE_INIT;

static void gsn_crc32c_make_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (GSN_CRC32C_POLY & (0u - (c & 1u)));
        gsn_crc32c_table[n] = c;
    }
}

static uint32_t gsn_crc32c_bytes(uint32_t crc, const uint8_t *p, size_t len)
{
    pthread_once(&gsn_crc32c_table_once, gsn_crc32c_make_table);
    while (len--)
        crc = gsn_crc32c_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t gsn_crc32c_sse42(uint32_t crc,
                                                                   const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7u)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

static int gsn_sse42;
static pthread_once_t gsn_sse42_once = PTHREAD_ONCE_INIT;

static void gsn_detect_sse42(void)
{
    __builtin_cpu_init();
    gsn_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

static int gsn_has_sse42(void)
{
    pthread_once(&gsn_sse42_once, gsn_detect_sse42);
    return gsn_sse42;
}
#endif

uint32_t gsn_crc32c(uint32_t crc, const uint8_t *data, size_t len)
{
    uint32_t c = ~crc;
    if (data == NULL || len == 0)
        return crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (gsn_has_sse42())
        return ~gsn_crc32c_sse42(c, data, len);
#endif
    return ~gsn_crc32c_bytes(c, data, len);
}
