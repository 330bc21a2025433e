// Elementwise kernels written with AVX-512 intrinsics. Swift compiles SIMD16<Float> for the baseline x86-64
// target (SSE2, four 128-bit operations per vector) because the package must run on CPUs without AVX-512; these
// functions carry their own target attribute and are called only after `peft_avx512_supported()` said yes.
// The arithmetic is the same as Engine/VectorMath.swift (same polynomials, same constants), so both paths agree
// to float32 rounding.

#include "VectorKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512dq")))

int peft_avx512_supported(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    if (!((ebx >> 16) & 1) || !((ebx >> 17) & 1)) return 0;  // AVX-512 F, DQ
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !((ecx >> 27) & 1)) return 0;  // OSXSAVE
    if (!((ecx >> 29) & 1)) return 0;  // F16C (the quantised kernels convert block scales with it)
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6;  // SSE, AVX, opmask, ZMM_Hi256 and Hi16_ZMM state
}

// Mask of the first `remaining` (1 to 15) lanes.
static inline __mmask16 tail_mask(long remaining) { return (__mmask16)((1u << remaining) - 1); }

// e^x by x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial (as vectorExp in VectorMath.swift).
TARGET static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.69314575f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i integer = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000));
    __m512i exponent = _mm512_slli_epi32(_mm512_add_epi32(integer, _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(exponent));
}

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) with erf from Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
// Also returns exp(-x^2 / 2) in *gauss, the exponential the formula needs anyway, which GELU's derivative reuses
// for phi(x). 1 / (1 + p a) is a reciprocal estimate refined by one Newton step (relative error about 2^-28)
// instead of a division.
TARGET static inline __m512 normal_cdf16(__m512 x, __m512 *gauss) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    __m512 a = _mm512_abs_ps(z);
    __m512 d = _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), a, one);
    __m512 t = _mm512_rcp14_ps(d);
    t = _mm512_fmadd_ps(t, _mm512_fnmadd_ps(d, t, one), t);
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    poly = _mm512_mul_ps(poly, t);
    *gauss = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
    __m512 erf_abs = _mm512_fnmadd_ps(poly, *gauss, one);
    __mmask16 negative = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 erf = _mm512_mask_sub_ps(erf_abs, negative, _mm512_setzero_ps(), erf_abs);
    return _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(one, erf));
}

TARGET void peft_gelu_forward_avx512(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 gauss;
        _mm512_storeu_ps(y + i, _mm512_mul_ps(v, normal_cdf16(v, &gauss)));
    }
    if (i < n) {
        __mmask16 tail = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(tail, x + i);
        __m512 gauss;
        _mm512_mask_storeu_ps(y + i, tail, _mm512_mul_ps(v, normal_cdf16(v, &gauss)));
    }
}

TARGET static inline __m512 gelu_derivative16(__m512 v) {
    __m512 gauss;
    __m512 cdf = normal_cdf16(v, &gauss);
    return _mm512_fmadd_ps(v, _mm512_mul_ps(gauss, _mm512_set1_ps(0.3989422804014327f)), cdf);
}

TARGET void peft_gelu_backward_avx512(const float *x, const float *g, float *gx, long n, int accumulate) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_mul_ps(_mm512_loadu_ps(g + i), gelu_derivative16(_mm512_loadu_ps(x + i)));
        if (accumulate) d = _mm512_add_ps(d, _mm512_loadu_ps(gx + i));
        _mm512_storeu_ps(gx + i, d);
    }
    if (i < n) {
        __mmask16 tail = tail_mask(n - i);
        __m512 d = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, g + i),
                                 gelu_derivative16(_mm512_maskz_loadu_ps(tail, x + i)));
        if (accumulate) d = _mm512_add_ps(d, _mm512_maskz_loadu_ps(tail, gx + i));
        _mm512_mask_storeu_ps(gx + i, tail, d);
    }
}

TARGET void peft_softmax_rows_avx512(float *rows, long count, long n, long stride) {
    const long full = n & ~15L;
    const __mmask16 tail = tail_mask(n - full);
    for (long r = 0; r < count; r++) {
        float *row = rows + r * stride;
        __m512 maxv = _mm512_set1_ps(-__builtin_inff());
        for (long i = 0; i < full; i += 16) maxv = _mm512_max_ps(maxv, _mm512_loadu_ps(row + i));
        if (full < n) maxv = _mm512_mask_max_ps(maxv, tail, maxv, _mm512_maskz_loadu_ps(tail, row + full));
        float m = _mm512_reduce_max_ps(maxv);
        if (m == -__builtin_inff()) {
            for (long i = 0; i < n; i++) row[i] = 0;
            continue;
        }
        const __m512 mv = _mm512_set1_ps(m);
        __m512 sum = _mm512_setzero_ps();
        for (long i = 0; i < full; i += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), mv));
            _mm512_storeu_ps(row + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (full < n) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + full), mv));
            _mm512_mask_storeu_ps(row + full, tail, e);
            sum = _mm512_mask_add_ps(sum, tail, sum, e);
        }
        const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        for (long i = 0; i < full; i += 16) _mm512_storeu_ps(row + i, _mm512_mul_ps(_mm512_loadu_ps(row + i), inverse));
        if (full < n) _mm512_mask_storeu_ps(row + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + full), inverse));
    }
}

TARGET void peft_softmax_backward_rows_avx512(const float *p, float *d, long count, long n) {
    const long full = n & ~15L;
    const __mmask16 tail = tail_mask(n - full);
    for (long r = 0; r < count; r++) {
        const float *pr = p + r * n;
        float *dr = d + r * n;
        __m512 dot = _mm512_setzero_ps();
        for (long i = 0; i < full; i += 16) dot = _mm512_fmadd_ps(_mm512_loadu_ps(pr + i), _mm512_loadu_ps(dr + i), dot);
        if (full < n) dot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, pr + full), _mm512_maskz_loadu_ps(tail, dr + full), dot);
        const __m512 dv = _mm512_set1_ps(_mm512_reduce_add_ps(dot));
        for (long i = 0; i < full; i += 16)
            _mm512_storeu_ps(dr + i, _mm512_mul_ps(_mm512_loadu_ps(pr + i), _mm512_sub_ps(_mm512_loadu_ps(dr + i), dv)));
        if (full < n)
            _mm512_mask_storeu_ps(dr + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, pr + full),
                                                                 _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, dr + full), dv)));
    }
}

TARGET void peft_layernorm_forward_avx512(const float *x, const float *w, const float *b, float *y, float *mean,
                                          float *rstd, long rows, long c, float eps) {
    const long full = c & ~15L;
    const __mmask16 tail = tail_mask(c - full);
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * c;
        float *dst = y + r * c;
        __m512 sum = _mm512_setzero_ps();
        for (long i = 0; i < full; i += 16) sum = _mm512_add_ps(sum, _mm512_loadu_ps(row + i));
        if (full < c) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(tail, row + full));
        const float m = _mm512_reduce_add_ps(sum) / (float)c;
        const __m512 mv = _mm512_set1_ps(m);
        __m512 var = _mm512_setzero_ps();
        for (long i = 0; i < full; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(row + i), mv);
            var = _mm512_fmadd_ps(d, d, var);
        }
        if (full < c) {
            __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, row + full), mv);
            var = _mm512_fmadd_ps(d, d, var);
        }
        const float rs = 1.0f / __builtin_sqrtf(_mm512_reduce_add_ps(var) / (float)c + eps);
        mean[r] = m;
        rstd[r] = rs;
        const __m512 rv = _mm512_set1_ps(rs);
        for (long i = 0; i < full; i += 16) {
            __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + i), mv), rv);
            _mm512_storeu_ps(dst + i, _mm512_fmadd_ps(xhat, _mm512_loadu_ps(w + i), _mm512_loadu_ps(b + i)));
        }
        if (full < c) {
            __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + full), mv), rv);
            _mm512_mask_storeu_ps(dst + full, tail, _mm512_fmadd_ps(xhat, _mm512_maskz_loadu_ps(tail, w + full),
                                                                    _mm512_maskz_loadu_ps(tail, b + full)));
        }
    }
}

TARGET void peft_layernorm_backward_avx512(const float *x, const float *g, const float *w, const float *mean,
                                           const float *rstd, float *gx, float *dw, float *db, long rows, long c) {
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * c, *grow = g + r * c;
        const __m512 mv = _mm512_set1_ps(mean[r]), rv = _mm512_set1_ps(rstd[r]);
        __m512 sum_dxhat = _mm512_setzero_ps(), sum_dxhat_xhat = _mm512_setzero_ps();
        for (long i = 0; i < c; i += 16) {
            const __mmask16 k = c - i >= 16 ? (__mmask16)0xFFFF : tail_mask(c - i);
            __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), mv), rv);
            __m512 gv = _mm512_maskz_loadu_ps(k, grow + i);
            __m512 dxhat = _mm512_mul_ps(gv, _mm512_maskz_loadu_ps(k, w + i));
            sum_dxhat = _mm512_add_ps(sum_dxhat, dxhat);
            sum_dxhat_xhat = _mm512_fmadd_ps(dxhat, xhat, sum_dxhat_xhat);
            _mm512_mask_storeu_ps(dw + i, k, _mm512_fmadd_ps(gv, xhat, _mm512_maskz_loadu_ps(k, dw + i)));
            _mm512_mask_storeu_ps(db + i, k, _mm512_add_ps(gv, _mm512_maskz_loadu_ps(k, db + i)));
        }
        if (!gx) continue;
        const __m512 mean_dxhat = _mm512_set1_ps(_mm512_reduce_add_ps(sum_dxhat) / (float)c);
        const __m512 mean_dxhat_xhat = _mm512_set1_ps(_mm512_reduce_add_ps(sum_dxhat_xhat) / (float)c);
        float *dst = gx + r * c;
        for (long i = 0; i < c; i += 16) {
            const __mmask16 k = c - i >= 16 ? (__mmask16)0xFFFF : tail_mask(c - i);
            __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), mv), rv);
            __m512 dxhat = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grow + i), _mm512_maskz_loadu_ps(k, w + i));
            __m512 inner = _mm512_sub_ps(_mm512_sub_ps(dxhat, mean_dxhat), _mm512_mul_ps(xhat, mean_dxhat_xhat));
            _mm512_mask_storeu_ps(dst + i, k, _mm512_fmadd_ps(rv, inner, _mm512_maskz_loadu_ps(k, dst + i)));
        }
    }
}

// One tile of C: MR rows (at most 6) by NV vectors of 16 columns (at most 4), the last vector masked to the
// columns left; the whole k loop runs with the MR x NV accumulators in registers (24 of the 32 ZMM registers at
// 6 x 4). MR and NV are compile-time constants in every instance (see small_gemm_tile_for), so the loops unroll
// and no work is spent on empty rows or vectors.
TARGET static inline __attribute__((always_inline)) void small_gemm_tile(
        const int MR, const int NV, long n_left, long k, float alpha, const float *a, long ars, long acs,
        const float *b, long ldb, float beta, float *c, long ldc) {
    __mmask16 mask[4];
    for (int v = 0; v < NV; v++) {
        long left = n_left - 16 * v;
        mask[v] = left >= 16 ? (__mmask16)0xFFFF : tail_mask(left);
    }
    __m512 acc[6][4];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (long kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        __m512 bv[4];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(mask[v], brow + 16 * v);
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars + kk * acs]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < MR; r++) {
        float *crow = c + r * ldc;
        for (int v = 0; v < NV; v++) {
            __m512 out = _mm512_mul_ps(acc[r][v], va);
            if (beta != 0) out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], crow + 16 * v), out);
            _mm512_mask_storeu_ps(crow + 16 * v, mask[v], out);
        }
    }
}

#define SG_ARGS long n_left, long k, float alpha, const float *a, long ars, long acs, const float *b, long ldb, \
                float beta, float *c, long ldc
#define SG_PASS n_left, k, alpha, a, ars, acs, b, ldb, beta, c, ldc
#define SG_INSTANCE(R, V) \
    TARGET static void small_gemm_tile_##R##_##V(SG_ARGS) { small_gemm_tile(R, V, SG_PASS); }
#define SG_ROW(R) SG_INSTANCE(R, 1) SG_INSTANCE(R, 2) SG_INSTANCE(R, 3) SG_INSTANCE(R, 4)
SG_ROW(1) SG_ROW(2) SG_ROW(3) SG_ROW(4) SG_ROW(5) SG_ROW(6)

typedef void (*small_gemm_tile_fn)(SG_ARGS);
static const small_gemm_tile_fn small_gemm_tiles[6][4] = {
    {small_gemm_tile_1_1, small_gemm_tile_1_2, small_gemm_tile_1_3, small_gemm_tile_1_4},
    {small_gemm_tile_2_1, small_gemm_tile_2_2, small_gemm_tile_2_3, small_gemm_tile_2_4},
    {small_gemm_tile_3_1, small_gemm_tile_3_2, small_gemm_tile_3_3, small_gemm_tile_3_4},
    {small_gemm_tile_4_1, small_gemm_tile_4_2, small_gemm_tile_4_3, small_gemm_tile_4_4},
    {small_gemm_tile_5_1, small_gemm_tile_5_2, small_gemm_tile_5_3, small_gemm_tile_5_4},
    {small_gemm_tile_6_1, small_gemm_tile_6_2, small_gemm_tile_6_3, small_gemm_tile_6_4},
};

TARGET void peft_small_gemm_avx512(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                                   long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc) {
    for (long j0 = 0; j0 < n; j0 += 64) {
        const long cols = n - j0 < 64 ? n - j0 : 64;
        const int nv = (int)((cols + 15) / 16);
        for (long i = 0; i < m; i += 6) {
            const int mr = m - i < 6 ? (int)(m - i) : 6;
            small_gemm_tiles[mr - 1][nv - 1](cols, k, alpha, a + i * a_row_stride, a_row_stride, a_col_stride, b + j0, ldb,
                                             beta, c + i * ldc + j0, ldc);
        }
    }
}

// 16 rows of 16 floats in, their transpose out (three shuffle stages: 32-bit pairs, 64-bit pairs, 128-bit lanes).
TARGET static inline void transpose16x16(const float *src, long lds, float *dst, long ldd) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
        r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

TARGET void peft_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    const long full_rows = rows & ~15L, full_cols = cols & ~15L;
    for (long i0 = 0; i0 < full_rows; i0 += 16)
        for (long j0 = 0; j0 < full_cols; j0 += 16)
            transpose16x16(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
    // Edges: the last rows (all columns) and the last columns (the full rows).
    for (long i = full_rows; i < rows; i++)
        for (long j = 0; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
    for (long i = 0; i < full_rows; i++)
        for (long j = full_cols; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
}

TARGET void peft_sampled_dots_avx512(const float *left, const float *right, long length, const int *rows,
                                     const int *cols, long count, float scale, float *dst) {
    const long full = length & ~63L;
    for (long i = 0; i < count; i++) {
        const float *a = left + (long)rows[i] * length, *b = right + (long)cols[i] * length;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
               acc3 = _mm512_setzero_ps();
        long t = 0;
        for (; t < full; t += 64) {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t), _mm512_loadu_ps(b + t), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t + 16), _mm512_loadu_ps(b + t + 16), acc1);
            acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t + 32), _mm512_loadu_ps(b + t + 32), acc2);
            acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + t + 48), _mm512_loadu_ps(b + t + 48), acc3);
        }
        for (; t < length; t += 16) {
            const __mmask16 k = length - t >= 16 ? (__mmask16)0xFFFF : tail_mask(length - t);
            acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + t), _mm512_maskz_loadu_ps(k, b + t), acc0);
        }
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
        dst[i] += scale * _mm512_reduce_add_ps(sum);
    }
}

TARGET float peft_fma_loop_avx512(long iterations) {
    __m512 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 total = acc[0];
    for (int i = 1; i < 12; i++) total = _mm512_add_ps(total, acc[i]);
    return _mm512_reduce_add_ps(total);
}

#else

int peft_avx512_supported(void) { return 0; }
float peft_fma_loop_avx512(long iterations) { (void)iterations; return 0; }
void peft_gelu_forward_avx512(const float *x, float *y, long n) { (void)x; (void)y; (void)n; }
void peft_gelu_backward_avx512(const float *x, const float *g, float *gx, long n, int accumulate) {
    (void)x; (void)g; (void)gx; (void)n; (void)accumulate;
}
void peft_softmax_rows_avx512(float *rows, long count, long n, long stride) {
    (void)rows; (void)count; (void)n; (void)stride;
}
void peft_softmax_backward_rows_avx512(const float *p, float *d, long count, long n) {
    (void)p; (void)d; (void)count; (void)n;
}
void peft_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    (void)src; (void)lds; (void)rows; (void)cols; (void)dst; (void)ldd;
}
void peft_sampled_dots_avx512(const float *left, const float *right, long length, const int *rows, const int *cols,
                              long count, float scale, float *dst) {
    (void)left; (void)right; (void)length; (void)rows; (void)cols; (void)count; (void)scale; (void)dst;
}
void peft_layernorm_forward_avx512(const float *x, const float *w, const float *b, float *y, float *mean,
                                   float *rstd, long rows, long c, float eps) {
    (void)x; (void)w; (void)b; (void)y; (void)mean; (void)rstd; (void)rows; (void)c; (void)eps;
}
void peft_small_gemm_avx512(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                            long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc) {
    (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)a_row_stride; (void)a_col_stride; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
}
void peft_layernorm_backward_avx512(const float *x, const float *g, const float *w, const float *mean,
                                    const float *rstd, float *gx, float *dw, float *db, long rows, long c) {
    (void)x; (void)g; (void)w; (void)mean; (void)rstd; (void)gx; (void)dw; (void)db; (void)rows; (void)c;
}

#endif
