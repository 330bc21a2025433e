// Small matrix products in bfloat16 for attention's per-head products (a few dozen to a few hundred rows and
// columns), with the operand conversions they need. The operands are converted once per head into "pair"
// layouts (two bf16 values of consecutive k in one 32-bit word, the unit VDPBF16PS multiplies), then a
// register-tiled kernel (up to 6 rows x 64 columns of C in 24 registers) runs the whole k loop.
//
// Layouts (uint32 words, each holding the bf16 of k = 2p in its low half and k = 2p + 1 in its high half):
// - "row pairs" of a matrix X [rows, k]: word (i, p) at out[i * ldo + p];
// - "column pairs" of a matrix Y [k, n]: word (p, j) at out[p * ldo + j].
// A product C = A B reads A as row pairs and B as column pairs. An operand that is only available transposed is
// converted to the other layout and then transposed as 32-bit words (a plain float transpose moves them intact).

#include "BF16Kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

static inline __mmask16 lanes16(long remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1);
}

static inline uint16_t bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

TARGET void peft_bf16_row_pairs(const float *x, long ldx, long rows, long k, uint32_t *out, long ldo) {
    for (long i = 0; i < rows; i++) {
        const float *src = x + i * ldx;
        uint16_t *dst = (uint16_t *)(out + i * ldo);
        long t = 0;
        for (; t + 32 <= k; t += 32) {
            __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + t + 16), _mm512_loadu_ps(src + t));
            _mm512_storeu_si512(dst + t, (__m512i)both);
        }
        for (; t < k; t++) dst[t] = bf16_round(src[t]);
        if (k % 2) dst[k] = 0;
    }
}

TARGET void peft_bf16_column_pairs(const float *y, long ldy, long k, long n, uint32_t *out, long ldo) {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const long pairs = (k + 1) / 2;
    for (long p = 0; p < pairs; p++) {
        const float *r0 = y + 2 * p * ldy;
        const int odd_missing = 2 * p + 1 >= k;
        const float *r1 = r0 + ldy;
        uint32_t *dst = out + p * ldo;
        for (long j = 0; j < n; j += 16) {
            const __mmask16 m = lanes16(n - j);
            const __m512 v0 = _mm512_maskz_loadu_ps(m, r0 + j);
            const __m512 v1 = odd_missing ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, r1 + j);
            // 32 bf16: v0's 16 in the low half, v1's in the high half; interleave to (v0[j], v1[j]) words.
            __m512i both = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            __m512i words = _mm512_permutexvar_epi16(interleave, both);
            _mm512_mask_storeu_epi32(dst + j, m, words);
        }
    }
}

// One tile of C: R rows (<= 6) by V vectors of 16 columns (<= 4), the last vector masked.
TARGET static inline __attribute__((always_inline)) void tile(
        const int R, const int V, long n_left, long pairs, float alpha, const uint32_t *a, long lda,
        const uint32_t *b, long ldb, float beta, float *c, long ldc) {
    __mmask16 mask[4];
    for (int v = 0; v < V; v++) mask[v] = lanes16(n_left - 16 * v);
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (long p = 0; p < pairs; p++) {
        const uint32_t *brow = b + p * ldb;
        __m512bh bv[4];
        for (int v = 0; v < V; v++) bv[v] = (__m512bh)_mm512_maskz_loadu_epi32(mask[v], brow + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * lda + p]);
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < R; r++) {
        float *crow = c + r * ldc;
        for (int v = 0; v < V; v++) {
            __m512 out = _mm512_mul_ps(acc[r][v], va);
            if (beta != 0) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], crow + 16 * v), out);
            _mm512_mask_storeu_ps(crow + 16 * v, mask[v], out);
        }
    }
}

#define TILE_ARGS long n_left, long pairs, float alpha, const uint32_t *a, long lda, const uint32_t *b, long ldb, \
                  float beta, float *c, long ldc
#define TILE_PASS n_left, pairs, alpha, a, lda, b, ldb, beta, c, ldc
#define TILE_INSTANCE(R, V) TARGET static void tile_##R##_##V(TILE_ARGS) { tile(R, V, TILE_PASS); }
#define TILE_ROW(R) TILE_INSTANCE(R, 1) TILE_INSTANCE(R, 2) TILE_INSTANCE(R, 3) TILE_INSTANCE(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)

typedef void (*tile_fn)(TILE_ARGS);
static const tile_fn tiles[6][4] = {
    {tile_1_1, tile_1_2, tile_1_3, tile_1_4}, {tile_2_1, tile_2_2, tile_2_3, tile_2_4},
    {tile_3_1, tile_3_2, tile_3_3, tile_3_4}, {tile_4_1, tile_4_2, tile_4_3, tile_4_4},
    {tile_5_1, tile_5_2, tile_5_3, tile_5_4}, {tile_6_1, tile_6_2, tile_6_3, tile_6_4},
};

TARGET void peft_bf16_small_gemm(long m, long n, long pairs, float alpha, const uint32_t *a, long lda,
                                 const uint32_t *b, long ldb, float beta, float *c, long ldc) {
    for (long j0 = 0; j0 < n; j0 += 64) {
        const long cols = n - j0 < 64 ? n - j0 : 64;
        const int nv = (int)((cols + 15) / 16);
        for (long i = 0; i < m; i += 6) {
            const int mr = m - i < 6 ? (int)(m - i) : 6;
            tiles[mr - 1][nv - 1](cols, pairs, alpha, a + i * lda, lda, b + j0, ldb, beta, c + i * ldc + j0, ldc);
        }
    }
}

#else

void peft_bf16_row_pairs(const float *x, long ldx, long rows, long k, uint32_t *out, long ldo) {
    (void)x; (void)ldx; (void)rows; (void)k; (void)out; (void)ldo;
}
void peft_bf16_column_pairs(const float *y, long ldy, long k, long n, uint32_t *out, long ldo) {
    (void)y; (void)ldy; (void)k; (void)n; (void)out; (void)ldo;
}
void peft_bf16_small_gemm(long m, long n, long pairs, float alpha, const uint32_t *a, long lda, const uint32_t *b,
                          long ldb, float beta, float *c, long ldc) {
    (void)m; (void)n; (void)pairs; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
}

#endif
