/* size_class.h — the size classes shared by the pool (and later the GC).
 *
 * Classes 0..15 are 16, 32, … 256 bytes (16-byte spacing). Above 256, each
 * power-of-two range is split into 8 classes, so a request wastes at most
 * 1/8 (12.5 %) of its cell to rounding: 288, 320, … 512, 576, … Every class
 * size is a multiple of 16, so every cell is 16-byte aligned. The table is
 * pure arithmetic (no lookup table to keep in cache); size_class_of and
 * size_class_bytes are inverse on class sizes, which tests check for every
 * class.
 */
#ifndef MULCH_SIZE_CLASS_H
#define MULCH_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

/* 16 linear + 8 per doubling from 2^8 up to 2^23 (8 MiB, the largest class
 * a 4 MiB-block pool serves from spans). */
#define MULCH_MAX_CLASSES (16u + 8u * 15u)

static inline unsigned size_class_of(size_t size) {
    if (size <= 256) return size == 0 ? 0u : (unsigned)((size - 1) >> 4);
    size_t s = size - 1;
    unsigned bit = 63u - (unsigned)__builtin_clzll((unsigned long long)s); /* >= 8 */
    unsigned shift = bit - 3u;
    return 16u + (bit - 8u) * 8u + (unsigned)((s >> shift) - 8u);
}

/* size_class_of for sizes from 1 on, without a branch: the allocation
 * fast path sees sizes on both sides of 256 (churn: 16..1024), and the
 * two-way version cost it a jump either way (session 27). Or-ing 255 into
 * size - 1 keeps its top bit at 7 or above, where the formula of the
 * upper classes gives (size - 1) >> 4, the linear classes' index. */
static inline unsigned size_class_of_nonzero(size_t size) {
    size_t s = size - 1;
    unsigned bit = 63u ^ (unsigned)__builtin_clzll((unsigned long long)(s | 255u));
    return 8u * bit - 56u + (unsigned)(s >> (bit - 3u));
}

static inline size_t size_class_bytes(unsigned cls) {
    if (cls < 16) return ((size_t)cls + 1) << 4;
    unsigned j = cls - 16u;
    unsigned bit = 8u + j / 8u;
    return ((size_t)9 + j % 8u) << (bit - 3u);
}

#endif /* MULCH_SIZE_CLASS_H */
