// Products with block-quantised weights (Q4_0, Q4_1, Q8_0; layout in VectorKernels.h). The matrix-vector forms
// expand each 32-value block into registers and multiply it with up to four input rows at once, so the weights are
// read from memory in their 4.5 to 8.5 bits per value and never written out as float32. Larger products expand
// row panels with `peft_quant_dequantize_rows` and run through the SGEMM (Engine/QuantizedMatrix.swift).

#include "VectorKernels.h"
#include <stdint.h>
#include <string.h>

enum { Q4_0 = 0, Q4_1 = 1, Q8_0 = 2 };

long peft_quant_block_bytes(int format) {
    switch (format) {
    case Q4_0: return 18;
    case Q4_1: return 20;
    case Q8_0: return 34;
    default: return 0;
    }
}

// IEEE half to float, bit by bit (no F16C needed): normals, subnormals, infinities and NaN.
static inline float half_to_float(const unsigned char *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int shift = 0;
            while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
            mantissa &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// A block's scale d and offset (value = d q + offset with q the unsigned nibble or signed byte) and its q bytes.
static inline const unsigned char *block_header(int format, const unsigned char *b, float *d, float *offset) {
    *d = half_to_float(b);
    switch (format) {
    case Q4_0: *offset = -8.0f * *d; return b + 2;
    case Q4_1: *offset = half_to_float(b + 2); return b + 4;
    default: *offset = 0; return b + 2;
    }
}

static inline void expand_block(int format, const unsigned char *b, float *v) {
    float d, offset;
    const unsigned char *q = block_header(format, b, &d, &offset);
    if (format == Q8_0) {
        for (int j = 0; j < 32; j++) v[j] = d * (float)(int8_t)q[j];
    } else {
        for (int j = 0; j < 16; j++) {
            v[j] = d * (float)(q[j] & 0x0F) + offset;
            v[j + 16] = d * (float)(q[j] >> 4) + offset;
        }
    }
}

void peft_quant_dequantize_rows(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo) {
    long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes;
    for (long r = r0; r < r1; r++) {
        const unsigned char *row = w + r * rowBytes;
        float *target = out + (r - r0) * ldo;
        for (long b = 0; b < blocks; b++) expand_block(format, row + b * blockBytes, target + b * 32);
    }
}

void peft_quant_matvec_portable(int format, const unsigned char *w, long columns, long n0, long n1,
                                const float *x, long m, long ldx, float *y, long ldy) {
    long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes;
    float v[32];
    for (long n = n0; n < n1; n++) {
        const unsigned char *row = w + n * rowBytes;
        for (long i = 0; i < m; i++) y[i * ldy + n] = 0;
        for (long b = 0; b < blocks; b++) {
            expand_block(format, row + b * blockBytes, v);
            for (long i = 0; i < m; i++) {
                const float *xi = x + i * ldx + b * 32;
                float sum = 0;
                for (int j = 0; j < 32; j++) sum += v[j] * xi[j];
                y[i * ldy + n] += sum;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// ---- AVX2 + FMA: a block is four YMM registers ----
#define TARGET2 __attribute__((target("avx2,fma,f16c")))

// The block's scale and offset with the F16C conversion (every CPU with AVX2 or AVX-512 has F16C; the
// `peft_*_supported` checks include it).
#define SIMD_BLOCK_HEADER(TARGET_ATTRIBUTES, NAME)                                                              \
    TARGET_ATTRIBUTES static inline __attribute__((always_inline)) const unsigned char *NAME(                  \
        int format, const unsigned char *b, float *d, float *offset) {                                          \
        uint16_t hd, hm;                                                                                        \
        memcpy(&hd, b, 2);                                                                                      \
        *d = _cvtsh_ss(hd);                                                                                     \
        switch (format) {                                                                                       \
        case Q4_0: *offset = -8.0f * *d; return b + 2;                                                          \
        case Q4_1: memcpy(&hm, b + 2, 2); *offset = _cvtsh_ss(hm); return b + 4;                                \
        default: *offset = 0; return b + 2;                                                                     \
        }                                                                                                       \
    }
SIMD_BLOCK_HEADER(TARGET2, block_header_avx2)

TARGET2 static inline __attribute__((always_inline)) void expand_block_avx2(int format, const unsigned char *b, __m256 v[4]) {
    float d, offset;
    const unsigned char *q = block_header_avx2(format, b, &d, &offset);
    __m256 vd = _mm256_set1_ps(d), vo = _mm256_set1_ps(offset);
    if (format == Q8_0) {
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * k)))));
    } else {
        __m128i bytes = _mm_loadu_si128((const __m128i *)q), mask = _mm_set1_epi8(0x0F);
        __m128i lo = _mm_and_si128(bytes, mask), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
        v[0] = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), vo);
        v[1] = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), vo);
        v[2] = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), vo);
        v[3] = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), vo);
    }
}

TARGET2 void peft_quant_dequantize_rows_avx2(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo) {
    long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes;
    for (long r = r0; r < r1; r++) {
        const unsigned char *row = w + r * rowBytes;
        float *target = out + (r - r0) * ldo;
        for (long b = 0; b < blocks; b++) {
            __m256 v[4];
            expand_block_avx2(format, row + b * blockBytes, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(target + b * 32 + 8 * k, v[k]);
        }
    }
}

TARGET2 static inline float sum_avx2(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// R input rows (1 to 4) against output columns [n0, n1); two accumulators per row.
#define MATVEC_AVX2(R)                                                                                           \
    TARGET2 static void matvec_avx2_##R(int format, const unsigned char *w, long columns, long n0, long n1,     \
                                        const float *x, long ldx, float *y, long ldy) {                         \
        long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes; \
        for (long n = n0; n < n1; n++) {                                                                         \
            const unsigned char *row = w + n * rowBytes;                                                         \
            __m256 a[R][2];                                                                                      \
            for (int i = 0; i < R; i++) a[i][0] = a[i][1] = _mm256_setzero_ps();                                 \
            for (long b = 0; b < blocks; b++) {                                                                  \
                __m256 v[4];                                                                                     \
                expand_block_avx2(format, row + b * blockBytes, v);                                              \
                for (int i = 0; i < R; i++) {                                                                    \
                    const float *xi = x + i * ldx + b * 32;                                                      \
                    a[i][0] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(xi), a[i][0]);                               \
                    a[i][1] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(xi + 8), a[i][1]);                           \
                    a[i][0] = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xi + 16), a[i][0]);                          \
                    a[i][1] = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xi + 24), a[i][1]);                          \
                }                                                                                                \
            }                                                                                                    \
            for (int i = 0; i < R; i++) y[i * ldy + n] = sum_avx2(_mm256_add_ps(a[i][0], a[i][1]));              \
        }                                                                                                        \
    }
MATVEC_AVX2(1)
MATVEC_AVX2(2)
MATVEC_AVX2(4)

void peft_quant_matvec_avx2(int format, const unsigned char *w, long columns, long n0, long n1,
                            const float *x, long m, long ldx, float *y, long ldy) {
    long i = 0;
    for (; i + 4 <= m; i += 4) matvec_avx2_4(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
    for (; i + 2 <= m; i += 2) matvec_avx2_2(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
    for (; i < m; i++) matvec_avx2_1(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
}

// ---- AVX-512 F: a block is two ZMM registers ----
#define TARGET5 __attribute__((target("avx512f,f16c")))

SIMD_BLOCK_HEADER(TARGET5, block_header_avx512)

TARGET5 static inline __attribute__((always_inline)) void expand_block_avx512(int format, const unsigned char *b, __m512 v[2]) {
    float d, offset;
    const unsigned char *q = block_header_avx512(format, b, &d, &offset);
    __m512 vd = _mm512_set1_ps(d), vo = _mm512_set1_ps(offset);
    if (format == Q8_0) {
        v[0] = _mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))));
        v[1] = _mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16)))));
    } else {
        // The 16 values a nibble can stand for, d q + offset for q = 0..15, then each nibble picks its value: a
        // permute reads only the low 4 bits of each index, so the bytes widened to 32 bits index the low nibbles
        // as they are and the high nibbles after a shift by 4.
        const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        __m512 table = _mm512_fmadd_ps(iota, vd, vo);
        __m512i nibbles = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
        v[0] = _mm512_permutexvar_ps(nibbles, table);
        v[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(nibbles, 4), table);
    }
}

TARGET5 void peft_quant_dequantize_rows_avx512(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo) {
    long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes;
    for (long r = r0; r < r1; r++) {
        const unsigned char *row = w + r * rowBytes;
        float *target = out + (r - r0) * ldo;
        for (long b = 0; b < blocks; b++) {
            __m512 v[2];
            expand_block_avx512(format, row + b * blockBytes, v);
            _mm512_storeu_ps(target + b * 32, v[0]);
            _mm512_storeu_ps(target + b * 32 + 16, v[1]);
        }
    }
}

// Two blocks per step, each into its own pair of accumulators, so that one row's FMA chains are four long.
#define MATVEC_AVX512(R)                                                                                         \
    TARGET5 static void matvec_avx512_##R(int format, const unsigned char *w, long columns, long n0, long n1,   \
                                          const float *x, long ldx, float *y, long ldy) {                       \
        long blocks = columns / 32, blockBytes = peft_quant_block_bytes(format), rowBytes = blocks * blockBytes; \
        for (long n = n0; n < n1; n++) {                                                                         \
            const unsigned char *row = w + n * rowBytes;                                                         \
            __m512 a[R][4];                                                                                      \
            for (int i = 0; i < R; i++) a[i][0] = a[i][1] = a[i][2] = a[i][3] = _mm512_setzero_ps();             \
            long b = 0;                                                                                          \
            for (; b + 2 <= blocks; b += 2) {                                                                    \
                __m512 v[4];                                                                                     \
                expand_block_avx512(format, row + b * blockBytes, v);                                            \
                expand_block_avx512(format, row + (b + 1) * blockBytes, v + 2);                                  \
                for (int i = 0; i < R; i++) {                                                                    \
                    const float *xi = x + i * ldx + b * 32;                                                      \
                    for (int k = 0; k < 4; k++) a[i][k] = _mm512_fmadd_ps(v[k], _mm512_loadu_ps(xi + 16 * k), a[i][k]); \
                }                                                                                                \
            }                                                                                                    \
            if (b < blocks) {                                                                                    \
                __m512 v[2];                                                                                     \
                expand_block_avx512(format, row + b * blockBytes, v);                                            \
                for (int i = 0; i < R; i++) {                                                                    \
                    const float *xi = x + i * ldx + b * 32;                                                      \
                    a[i][0] = _mm512_fmadd_ps(v[0], _mm512_loadu_ps(xi), a[i][0]);                               \
                    a[i][1] = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(xi + 16), a[i][1]);                          \
                }                                                                                                \
            }                                                                                                    \
            for (int i = 0; i < R; i++)                                                                          \
                y[i * ldy + n] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]),             \
                                                                    _mm512_add_ps(a[i][2], a[i][3])));           \
        }                                                                                                        \
    }
MATVEC_AVX512(1)
MATVEC_AVX512(2)
MATVEC_AVX512(4)

void peft_quant_matvec_avx512(int format, const unsigned char *w, long columns, long n0, long n1,
                              const float *x, long m, long ldx, float *y, long ldy) {
    long i = 0;
    for (; i + 4 <= m; i += 4) matvec_avx512_4(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
    for (; i + 2 <= m; i += 2) matvec_avx512_2(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
    for (; i < m; i++) matvec_avx512_1(format, w, columns, n0, n1, x + i * ldx, ldx, y + i * ldy, ldy);
}

#else  // not x86-64: the portable form serves every call

void peft_quant_dequantize_rows_avx2(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo) {
    peft_quant_dequantize_rows(format, w, columns, r0, r1, out, ldo);
}
void peft_quant_dequantize_rows_avx512(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo) {
    peft_quant_dequantize_rows(format, w, columns, r0, r1, out, ldo);
}

void peft_quant_matvec_avx2(int format, const unsigned char *w, long columns, long n0, long n1,
                            const float *x, long m, long ldx, float *y, long ldy) {
    peft_quant_matvec_portable(format, w, columns, n0, n1, x, m, ldx, y, ldy);
}
void peft_quant_matvec_avx512(int format, const unsigned char *w, long columns, long n0, long n1,
                              const float *x, long m, long ldx, float *y, long ldy) {
    peft_quant_matvec_portable(format, w, columns, n0, n1, x, m, ldx, y, ldy);
}

#endif
