#ifndef PEFT_BF16_KERNELS_H
#define PEFT_BF16_KERNELS_H

#include <stdint.h>

/// 1 when the CPU (and OS) can run the AVX-512 BF16 kernels below, else 0.
int peft_bf16_supported(void);

/// Number of uint16 values `peft_bf16_pack_b` writes for op(B) of k x n.
long peft_bf16_packed_b_count(int k, int n);

/// Number of 32-column panels of a packed op(B) with n columns.
int peft_bf16_panel_count(int n);

/// Converts op(B) (k x n; B stored row-major as k x n, or as n x k when trans_b) to bfloat16 panels of 32
/// columns with pairs of consecutive k interleaved, the layout the kernel reads. Only panels
/// [panel_start, panel_end) are written, so several threads can pack one matrix.
void peft_bf16_pack_b(int trans_b, int k, int n, const float *b, int ldb, uint16_t *packed,
                      int panel_start, int panel_end);

/// C = alpha * A * op(B) + bias + beta * C for rows [0, m) of A (m x k, row-major, lda) and C (ldc), with A
/// rounded to bfloat16 on the fly, op(B) packed by `peft_bf16_pack_b`, products accumulated in float32. `bias`
/// (n values added to every row) may be NULL. Single-threaded.
void peft_bf16_gemm_packed(int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                           const float *bias, float beta, float *c, int ldc);

/// Small products in bfloat16 (attention's per-head products; see BF16SmallKernels.c for the pair layouts).
/// Single-threaded; call only when `peft_bf16_supported()`.
///
/// Row pairs of x [rows, k] (row stride ldx): word (i, p) = (bf16 x[i][2p], bf16 x[i][2p + 1]) at out[i * ldo + p],
/// a zero high half when k is odd.
void peft_bf16_row_pairs(const float *x, long ldx, long rows, long k, uint32_t *out, long ldo);

/// Column pairs of y [k, n] (row stride ldy): word (p, j) = (bf16 y[2p][j], bf16 y[2p + 1][j]) at out[p * ldo + j],
/// a zero high half when k is odd.
void peft_bf16_column_pairs(const float *y, long ldy, long k, long n, uint32_t *out, long ldo);

/// C = alpha * A * B + beta * C (C m x n row-major, float32) for A in row pairs (m rows of `pairs` words, lda) and
/// B in column pairs (`pairs` rows of n words, ldb); products accumulated in float32. beta == 0 never reads C.
void peft_bf16_small_gemm(long m, long n, long pairs, float alpha, const uint32_t *a, long lda, const uint32_t *b,
                          long ldb, float beta, float *c, long ldc);

#endif
