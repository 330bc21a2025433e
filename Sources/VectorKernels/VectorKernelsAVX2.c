// The VectorKernels for x86-64 CPUs with AVX2 and FMA but no AVX-512 (Zen 1-3, Haswell to Alder Lake): eight
// floats per register, 16 registers, tails by vmaskmov. Same contracts, polynomials and constants as the AVX-512
// file, so every path agrees with the others to float32 rounding. Each function carries its own target attribute
// and is called only after `peft_avx2_supported()` said yes.

#include "VectorKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>

#define TARGET __attribute__((target("avx2,fma")))

int peft_avx2_supported(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!((ecx >> 12) & 1) || !((ecx >> 27) & 1) || !((ecx >> 28) & 1)) return 0;  // FMA, OSXSAVE, AVX
    if (!((ecx >> 29) & 1)) return 0;  // F16C (the quantised kernels convert block scales with it)
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !((ebx >> 5) & 1)) return 0;  // AVX2
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0x6) == 0x6;  // SSE and AVX (YMM) state saved by the OS
}

// Lane masks for vmaskmov: the first `remaining` (1 to 8) lanes on. Masked moves serve only the tails: on AMD
// cores a masked store costs many times a plain one, so every loop runs whole vectors first.
static const int32_t lane_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
TARGET static inline __m256i tail_mask(long remaining) {
    return _mm256_loadu_si256((const __m256i *)(lane_masks + 8 - remaining));
}
TARGET static inline __m256i lanes_up_to(long remaining) {
    return remaining >= 8 ? _mm256_set1_epi32(-1) : tail_mask(remaining);
}

// Loads and stores of lanes [0, remaining): plain when the vector is whole, masked otherwise.
TARGET static inline __m256 load_lanes(const float *p, long remaining) {
    return remaining >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(remaining));
}
TARGET static inline void store_lanes(float *p, long remaining, __m256 v) {
    if (remaining >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(remaining), v);
}

TARGET static inline float sum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

TARGET static inline float max8(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

// e^x by x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial (as exp16 and vectorExp).
TARGET static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.69314575f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i integer = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000));
    __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(integer, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

// Phi(x) with erf from Abramowitz & Stegun 7.1.26, and exp(-x^2 / 2) in *gauss (see normal_cdf16). The
// reciprocal estimate has 12 bits here (vrcpps), so two Newton steps bring it to float32 precision.
TARGET static inline __m256 normal_cdf8(__m256 x, __m256 *gauss) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
    __m256 d = _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one);
    __m256 t = _mm256_rcp_ps(d);
    t = _mm256_fmadd_ps(t, _mm256_fnmadd_ps(d, t, one), t);
    t = _mm256_fmadd_ps(t, _mm256_fnmadd_ps(d, t, one), t);
    __m256 poly = _mm256_set1_ps(1.061405429f);
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
    poly = _mm256_mul_ps(poly, t);
    *gauss = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
    __m256 erf_abs = _mm256_fnmadd_ps(poly, *gauss, one);
    // erf is odd: flip the sign where z < 0 (the sign bit of z moved onto erf(|z|)).
    __m256 erf = _mm256_xor_ps(erf_abs, _mm256_and_ps(z, _mm256_set1_ps(-0.0f)));
    return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(one, erf));
}

TARGET static inline __m256 gelu8(__m256 v) {
    __m256 gauss;
    return _mm256_mul_ps(v, normal_cdf8(v, &gauss));
}

TARGET static inline __m256 gelu_derivative8(__m256 v) {
    __m256 gauss;
    __m256 cdf = normal_cdf8(v, &gauss);
    return _mm256_fmadd_ps(v, _mm256_mul_ps(gauss, _mm256_set1_ps(0.3989422804014327f)), cdf);
}

TARGET void peft_gelu_forward_avx2(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i tail = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, tail, gelu8(_mm256_maskload_ps(x + i, tail)));
    }
}

TARGET void peft_gelu_backward_avx2(const float *x, const float *g, float *gx, long n, int accumulate) {
    for (long i = 0; i < n; i += 8) {
        const long left = n - i;
        __m256 d = _mm256_mul_ps(load_lanes(g + i, left), gelu_derivative8(load_lanes(x + i, left)));
        if (accumulate) d = _mm256_add_ps(d, load_lanes(gx + i, left));
        store_lanes(gx + i, left, d);
    }
}

TARGET void peft_softmax_rows_avx2(float *rows, long count, long n, long stride) {
    const long full = n & ~7L;
    const __m256i tail = tail_mask(n - full > 0 ? n - full : 8);
    const __m256 negative_infinity = _mm256_set1_ps(-__builtin_inff());
    for (long r = 0; r < count; r++) {
        float *row = rows + r * stride;
        __m256 maxv = negative_infinity;
        for (long i = 0; i < full; i += 8) maxv = _mm256_max_ps(maxv, _mm256_loadu_ps(row + i));
        if (full < n) {
            __m256 last = _mm256_blendv_ps(negative_infinity, _mm256_maskload_ps(row + full, tail), _mm256_castsi256_ps(tail));
            maxv = _mm256_max_ps(maxv, last);
        }
        float m = max8(maxv);
        if (m == -__builtin_inff()) {
            for (long i = 0; i < n; i++) row[i] = 0;
            continue;
        }
        const __m256 mv = _mm256_set1_ps(m);
        __m256 sum = _mm256_setzero_ps();
        for (long i = 0; i < full; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), mv));
            _mm256_storeu_ps(row + i, e);
            sum = _mm256_add_ps(sum, e);
        }
        if (full < n) {
            __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(row + full, tail), mv)), _mm256_castsi256_ps(tail));
            _mm256_maskstore_ps(row + full, tail, e);
            sum = _mm256_add_ps(sum, e);
        }
        const __m256 inverse = _mm256_set1_ps(1.0f / sum8(sum));
        for (long i = 0; i < full; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
        if (full < n) _mm256_maskstore_ps(row + full, tail, _mm256_mul_ps(_mm256_maskload_ps(row + full, tail), inverse));
    }
}

TARGET void peft_softmax_backward_rows_avx2(const float *p, float *d, long count, long n) {
    for (long r = 0; r < count; r++) {
        const float *pr = p + r * n;
        float *dr = d + r * n;
        __m256 dot = _mm256_setzero_ps();
        for (long i = 0; i < n; i += 8)
            dot = _mm256_fmadd_ps(load_lanes(pr + i, n - i), load_lanes(dr + i, n - i), dot);
        const __m256 dv = _mm256_set1_ps(sum8(dot));
        for (long i = 0; i < n; i += 8)
            store_lanes(dr + i, n - i, _mm256_mul_ps(load_lanes(pr + i, n - i), _mm256_sub_ps(load_lanes(dr + i, n - i), dv)));
    }
}

TARGET void peft_layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y, float *mean,
                                        float *rstd, long rows, long c, float eps) {
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * c;
        float *dst = y + r * c;
        __m256 sum = _mm256_setzero_ps();
        for (long i = 0; i < c; i += 8) sum = _mm256_add_ps(sum, load_lanes(row + i, c - i));
        const float m = sum8(sum) / (float)c;
        const __m256 mv = _mm256_set1_ps(m);
        __m256 var = _mm256_setzero_ps();
        for (long i = 0; i < c; i += 8) {
            const __m256i k = lanes_up_to(c - i);
            __m256 dev = _mm256_and_ps(_mm256_sub_ps(load_lanes(row + i, c - i), mv), _mm256_castsi256_ps(k));
            var = _mm256_fmadd_ps(dev, dev, var);
        }
        const float rs = 1.0f / __builtin_sqrtf(sum8(var) / (float)c + eps);
        mean[r] = m;
        rstd[r] = rs;
        const __m256 rv = _mm256_set1_ps(rs);
        for (long i = 0; i < c; i += 8) {
            const long left = c - i;
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(load_lanes(row + i, left), mv), rv);
            store_lanes(dst + i, left, _mm256_fmadd_ps(xhat, load_lanes(w + i, left), load_lanes(b + i, left)));
        }
    }
}

TARGET void peft_layernorm_backward_avx2(const float *x, const float *g, const float *w, const float *mean,
                                         const float *rstd, float *gx, float *dw, float *db, long rows, long c) {
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * c, *grow = g + r * c;
        const __m256 mv = _mm256_set1_ps(mean[r]), rv = _mm256_set1_ps(rstd[r]);
        __m256 sum_dxhat = _mm256_setzero_ps(), sum_dxhat_xhat = _mm256_setzero_ps();
        for (long i = 0; i < c; i += 8) {
            const long left = c - i;
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(load_lanes(row + i, left), mv), rv);
            __m256 gv = load_lanes(grow + i, left);  // zero in the lanes past c, so dxhat is too
            __m256 dxhat = _mm256_mul_ps(gv, load_lanes(w + i, left));
            sum_dxhat = _mm256_add_ps(sum_dxhat, dxhat);
            sum_dxhat_xhat = _mm256_fmadd_ps(dxhat, xhat, sum_dxhat_xhat);
            store_lanes(dw + i, left, _mm256_fmadd_ps(gv, xhat, load_lanes(dw + i, left)));
            store_lanes(db + i, left, _mm256_add_ps(gv, load_lanes(db + i, left)));
        }
        if (!gx) continue;
        const __m256 mean_dxhat = _mm256_set1_ps(sum8(sum_dxhat) / (float)c);
        const __m256 mean_dxhat_xhat = _mm256_set1_ps(sum8(sum_dxhat_xhat) / (float)c);
        float *dst = gx + r * c;
        for (long i = 0; i < c; i += 8) {
            const long left = c - i;
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(load_lanes(row + i, left), mv), rv);
            __m256 dxhat = _mm256_mul_ps(load_lanes(grow + i, left), load_lanes(w + i, left));
            __m256 inner = _mm256_sub_ps(_mm256_sub_ps(dxhat, mean_dxhat), _mm256_mul_ps(xhat, mean_dxhat_xhat));
            store_lanes(dst + i, left, _mm256_fmadd_ps(rv, inner, load_lanes(dst + i, left)));
        }
    }
}

// One tile of C: MR rows (at most 6) by NV vectors of 8 columns (at most 2), the last vector masked to the
// columns left: 12 accumulators, 2 B vectors and one broadcast A value fill 15 of the 16 YMM registers (the
// classic 6 x 16 Haswell shape). MR and NV are compile-time constants in every instance, so the loops unroll.
TARGET static inline __attribute__((always_inline)) void small_gemm_tile(
        const int MR, const int NV, long n_left, long k, float alpha, const float *a, long ars, long acs,
        const float *b, long ldb, float beta, float *c, long ldc) {
    __m256i mask[2];
    for (int v = 0; v < NV; v++) mask[v] = lanes_up_to(n_left - 8 * v);
    const int full_last = n_left >= 8 * NV;  // the last vector is whole: plain loads and stores throughout
    __m256 acc[6][2];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    for (long kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        __m256 bv[2];
        for (int v = 0; v < NV; v++)
            bv[v] = (v < NV - 1 || full_last) ? _mm256_loadu_ps(brow + 8 * v) : _mm256_maskload_ps(brow + 8 * v, mask[v]);
        for (int r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * ars + kk * acs);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int r = 0; r < MR; r++) {
        float *crow = c + r * ldc;
        for (int v = 0; v < NV; v++) {
            __m256 out = _mm256_mul_ps(acc[r][v], va);
            const long left = n_left - 8 * v;
            if (beta != 0) out = _mm256_fmadd_ps(vb, load_lanes(crow + 8 * v, left), out);
            store_lanes(crow + 8 * v, left, out);
        }
    }
}

#define SG_ARGS long n_left, long k, float alpha, const float *a, long ars, long acs, const float *b, long ldb, \
                float beta, float *c, long ldc
#define SG_PASS n_left, k, alpha, a, ars, acs, b, ldb, beta, c, ldc
#define SG_INSTANCE(R, V) \
    TARGET static void small_gemm_tile_##R##_##V(SG_ARGS) { small_gemm_tile(R, V, SG_PASS); }
#define SG_ROW(R) SG_INSTANCE(R, 1) SG_INSTANCE(R, 2)
SG_ROW(1) SG_ROW(2) SG_ROW(3) SG_ROW(4) SG_ROW(5) SG_ROW(6)

typedef void (*small_gemm_tile_fn)(SG_ARGS);
static const small_gemm_tile_fn small_gemm_tiles[6][2] = {
    {small_gemm_tile_1_1, small_gemm_tile_1_2}, {small_gemm_tile_2_1, small_gemm_tile_2_2},
    {small_gemm_tile_3_1, small_gemm_tile_3_2}, {small_gemm_tile_4_1, small_gemm_tile_4_2},
    {small_gemm_tile_5_1, small_gemm_tile_5_2}, {small_gemm_tile_6_1, small_gemm_tile_6_2},
};

TARGET void peft_small_gemm_avx2(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                                 long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc) {
    for (long j0 = 0; j0 < n; j0 += 16) {
        const long cols = n - j0 < 16 ? n - j0 : 16;
        const int nv = cols > 8 ? 2 : 1;
        for (long i = 0; i < m; i += 6) {
            const int mr = m - i < 6 ? (int)(m - i) : 6;
            small_gemm_tiles[mr - 1][nv - 1](cols, k, alpha, a + i * a_row_stride, a_row_stride, a_col_stride, b + j0,
                                             ldb, beta, c + i * ldc + j0, ldc);
        }
    }
}

// 8 rows of 8 floats in, their transpose out (unpack 32-bit pairs, shuffle 64-bit pairs, swap 128-bit halves).
TARGET static inline void transpose8x8(const float *src, long lds, float *dst, long ldd) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
        _mm256_storeu_ps(dst + (4 + i) * ldd, _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
    }
}

TARGET void peft_transpose_avx2(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    const long full_rows = rows & ~7L, full_cols = cols & ~7L;
    for (long i0 = 0; i0 < full_rows; i0 += 8)
        for (long j0 = 0; j0 < full_cols; j0 += 8) transpose8x8(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
    // Edges: the last rows (all columns) and the last columns (the full rows).
    for (long i = full_rows; i < rows; i++)
        for (long j = 0; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
    for (long i = 0; i < full_rows; i++)
        for (long j = full_cols; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
}

TARGET void peft_sampled_dots_avx2(const float *left, const float *right, long length, const int *rows,
                                   const int *cols, long count, float scale, float *dst) {
    const long full = length & ~31L;
    for (long i = 0; i < count; i++) {
        const float *a = left + (long)rows[i] * length, *b = right + (long)cols[i] * length;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
               acc3 = _mm256_setzero_ps();
        long t = 0;
        for (; t < full; t += 32) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t + 8), _mm256_loadu_ps(b + t + 8), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t + 16), _mm256_loadu_ps(b + t + 16), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + t + 24), _mm256_loadu_ps(b + t + 24), acc3);
        }
        for (; t < length; t += 8) acc0 = _mm256_fmadd_ps(load_lanes(a + t, length - t), load_lanes(b + t, length - t), acc0);
        dst[i] += scale * sum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    }
}

TARGET float peft_fma_loop_avx2(long iterations) {
    __m256 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iterations; it++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    __m256 total = acc[0];
    for (int i = 1; i < 12; i++) total = _mm256_add_ps(total, acc[i]);
    return sum8(total);
}

#else  // not x86-64: no AVX2 kernels; callers check peft_avx2_supported() first.

int peft_avx2_supported(void) { return 0; }
float peft_fma_loop_avx2(long iterations) { (void)iterations; return 0; }
void peft_gelu_forward_avx2(const float *x, float *y, long n) { (void)x; (void)y; (void)n; }
void peft_gelu_backward_avx2(const float *x, const float *g, float *gx, long n, int accumulate) {
    (void)x; (void)g; (void)gx; (void)n; (void)accumulate;
}
void peft_softmax_rows_avx2(float *rows, long count, long n, long stride) {
    (void)rows; (void)count; (void)n; (void)stride;
}
void peft_softmax_backward_rows_avx2(const float *p, float *d, long count, long n) {
    (void)p; (void)d; (void)count; (void)n;
}
void peft_layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y, float *mean,
                                 float *rstd, long rows, long c, float eps) {
    (void)x; (void)w; (void)b; (void)y; (void)mean; (void)rstd; (void)rows; (void)c; (void)eps;
}
void peft_layernorm_backward_avx2(const float *x, const float *g, const float *w, const float *mean,
                                  const float *rstd, float *gx, float *dw, float *db, long rows, long c) {
    (void)x; (void)g; (void)w; (void)mean; (void)rstd; (void)gx; (void)dw; (void)db; (void)rows; (void)c;
}
void peft_small_gemm_avx2(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                          long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc) {
    (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)a_row_stride; (void)a_col_stride; (void)b; (void)ldb;
    (void)beta; (void)c; (void)ldc;
}
void peft_transpose_avx2(const float *src, long lds, long rows, long cols, float *dst, long ldd) {
    (void)src; (void)lds; (void)rows; (void)cols; (void)dst; (void)ldd;
}
void peft_sampled_dots_avx2(const float *left, const float *right, long length, const int *rows, const int *cols,
                            long count, float scale, float *dst) {
    (void)left; (void)right; (void)length; (void)rows; (void)cols; (void)count; (void)scale; (void)dst;
}

#endif
