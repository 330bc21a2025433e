#ifndef PEFT_VECTOR_KERNELS_H
#define PEFT_VECTOR_KERNELS_H

// Every kernel comes in two forms with one contract: _avx512 (VectorKernelsAVX512.c) and _avx2 (AVX2 + FMA,
// VectorKernelsAVX2.c). Call a form only after its `peft_*_supported()` returned 1; on other architectures both
// report 0 and the kernels are empty stubs. Engine/VectorKernelSet.swift chooses among them at run time.

/// 1 when the CPU (and OS) can run the AVX-512 kernels below (AVX-512 F and DQ, ZMM state saved), else 0.
int peft_avx512_supported(void);

/// 1 when the CPU (and OS) can run the AVX2 kernels below (AVX2 and FMA, YMM state saved), else 0.
int peft_avx2_supported(void);

/// y[i] = gelu(x[i]) = 0.5 x (1 + erf(x / sqrt 2)) for i in [0, n).
void peft_gelu_forward_avx512(const float *x, float *y, long n);
void peft_gelu_forward_avx2(const float *x, float *y, long n);

/// gx[i] (+)= g[i] * gelu'(x[i]) for i in [0, n); gelu'(x) = Phi(x) + x phi(x). With accumulate == 0, gx is
/// overwritten (never read).
void peft_gelu_backward_avx512(const float *x, const float *g, float *gx, long n, int accumulate);
void peft_gelu_backward_avx2(const float *x, const float *g, float *gx, long n, int accumulate);

/// Softmax in place over each of `count` rows of n values (row r starts at rows + r * stride). A row whose
/// values are all -infinity becomes zeros.
void peft_softmax_rows_avx512(float *rows, long count, long n, long stride);
void peft_softmax_rows_avx2(float *rows, long count, long n, long stride);

/// Softmax backward for `count` rows of n values: d = p * (d - sum(p * d)) per row, in place on d.
///
void peft_softmax_backward_rows_avx512(const float *p, float *d, long count, long n);
void peft_softmax_backward_rows_avx2(const float *p, float *d, long count, long n);

/// LayerNorm forward over `rows` rows of c values: y = (x - mean) * rstd * w + b, with the row's mean and
/// rstd = 1 / sqrt(var + eps) written to mean[r] and rstd[r] (two-pass variance).
void peft_layernorm_forward_avx512(const float *x, const float *w, const float *b, float *y, float *mean,
                                   float *rstd, long rows, long c, float eps);
void peft_layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y, float *mean,
                                 float *rstd, long rows, long c, float eps);

/// LayerNorm backward over `rows` rows: adds g * xhat to dw and g to db (c values each), and, when gx is not
/// NULL, adds rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) to gx, with dxhat = g * w.
///
void peft_layernorm_backward_avx512(const float *x, const float *g, const float *w, const float *mean,
                                    const float *rstd, float *gx, float *dw, float *db, long rows, long c);
void peft_layernorm_backward_avx2(const float *x, const float *g, const float *w, const float *mean,
                                  const float *rstd, float *gx, float *dw, float *db, long rows, long c);

/// C = alpha * A * B + beta * C for small matrices, single-threaded, float32 with FMA: A is m x k with element
/// (i, p) at a[i * a_row_stride + p * a_col_stride] (so a transposed A needs no copy), B is k x n row-major
/// (ldb), C is m x n row-major (ldc). Made for the per-head products of attention (n and k of a few dozen to a
/// few hundred), where a BLAS call costs more in packing and dispatch than the arithmetic. beta == 0 never reads
/// C.
void peft_small_gemm_avx512(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                            long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc);
void peft_small_gemm_avx2(long m, long n, long k, float alpha, const float *a, long a_row_stride,
                          long a_col_stride, const float *b, long ldb, float beta, float *c, long ldc);

/// dst[j * ldd + i] = src[i * lds + j] for a rows x cols block (a plain transpose) (16 x 16 or 8 x 8 blocks
/// transposed in registers, edges scalar).
///
void peft_transpose_avx512(const float *src, long lds, long rows, long cols, float *dst, long ldd);
void peft_transpose_avx2(const float *src, long lds, long rows, long cols, float *dst, long ldd);

/// dst[i] += scale * dot(left + rows[i] * length, right + cols[i] * length) over `length` floats, for i in
/// [0, count): SHiRA's gradient at its sampled positions.
void peft_sampled_dots_avx512(const float *left, const float *right, long length, const int *rows, const int *cols,
                              long count, float scale, float *dst);
void peft_sampled_dots_avx2(const float *left, const float *right, long length, const int *rows, const int *cols,
                            long count, float scale, float *dst);

/// Runs `iterations` rounds of 12 independent fused multiply-adds on full registers (8 lanes with AVX2, 16 with
/// AVX-512: 192 or 384 FLOPs per round) and returns their sum so nothing is optimised away: timing it on every
/// core measures the machine's float32 FMA peak.
float peft_fma_loop_avx512(long iterations);
float peft_fma_loop_avx2(long iterations);

// Block-quantised weight matrices (GGUF's Q4_0, Q4_1 and Q8_0; QuantizedKernels.c). A matrix of `rows` rows of
// `columns` values (a multiple of 32) is stored row by row, each row as columns / 32 blocks of `peft_quant_block_bytes`
// bytes: Q4_0 = f16 scale d, 16 bytes of 4-bit q (value d (q - 8)); Q4_1 = f16 d, f16 minimum m, 16 bytes (value
// d q + m); Q8_0 = f16 d, 32 signed bytes (value d q). In a 4-bit block, byte j holds value j (low nibble) and
// value j + 16 (high nibble). Formats: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.

/// Bytes of one 32-value block of `format`, or 0 for an unknown format.
long peft_quant_block_bytes(int format);

/// out[r * ldo + c] = value (r0 + r, c) for the rows [r0, r1) (plain C: the compiler's baseline vectorisation).
void peft_quant_dequantize_rows(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo);
void peft_quant_dequantize_rows_avx2(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo);
void peft_quant_dequantize_rows_avx512(int format, const unsigned char *w, long columns, long r0, long r1, float *out, long ldo);

/// y[i * ldy + n] = sum_c x[i * ldx + c] value(n, c) for the m input rows i (m of any size; best for m <= 8) and
/// the output columns n in [n0, n1): weights expanded block by block in registers, never stored.
void peft_quant_matvec_portable(int format, const unsigned char *w, long columns, long n0, long n1,
                                const float *x, long m, long ldx, float *y, long ldy);
void peft_quant_matvec_avx2(int format, const unsigned char *w, long columns, long n0, long n1,
                            const float *x, long m, long ldx, float *y, long ldy);
void peft_quant_matvec_avx512(int format, const unsigned char *w, long columns, long n0, long n1,
                              const float *x, long m, long ldx, float *y, long ldy);

#include "SpinningPool.h"

#endif
