// tn_gemm: C = Aᵀ B over a long token dimension, for LoRA weight gradients: A [T, R] thin (xa, or the LoRA input
// gradient), B [T, N] wide (the output gradient, or the layer input), C [R, N] fp32.
//
// Why: these products reduce over T (thousands of packed tokens) into a tiny [R, N] result; the BLAS gets a
// transposed thin operand and ran them at 0.14–0.22 TFLOP/s here, 3× slower than their FLOPs at the bf16 peak.
// Here each thread owns 32 output columns: it walks the tokens in pairs, interleaves the two B rows into bf16
// pairs in registers (vpunpck), and accumulates 8 rows of A at a time in 16 fp32 registers, so B is read R/8
// times, A (tiny) is pre-paired once, and nothing is packed in memory.
//
//   A [T, R] bf16 (unit column stride, any row stride), R a multiple of 8;  B [T, N] bf16 (same);  C [R, N] fp32.
//
// (The other thin LoRA products, x Aᵀ and g B with a [T, r] output, were tried the same way: a register-tiled
// kernel ran at 0.21 TFLOP/s, broadcast-bound, against the BLAS's 0.17–0.21, so they stay with the BLAS.)
#include <torch/extension.h>

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if !defined(__AVX512BF16__)
#error "domainlm's CPU GEMM kernel needs AVX512-BF16 (the BLAS serves other CPUs)"
#endif

using u16 = uint16_t;
using u32 = uint32_t;

namespace {

constexpr int kRows = 8;   // rows of C per register tile (x 2 zmm of 16 columns = 16 accumulators)

inline __mmask32 lanes32(int64_t count) {
  return count >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1ull << count) - 1);
}

inline __mmask16 lanes16(int64_t count) {
  return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

}  // namespace

torch::Tensor tn_gemm(torch::Tensor a, torch::Tensor b) {
  TORCH_CHECK(a.scalar_type() == at::kBFloat16 && b.scalar_type() == at::kBFloat16 && a.device().is_cpu() &&
              b.device().is_cpu(), "bf16 CPU tensors expected");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0), "A [T, R] and B [T, N] expected");
  TORCH_CHECK(a.stride(1) == 1 && b.stride(1) == 1, "rows of unit stride expected");
  const int64_t T = a.size(0), R = a.size(1), N = b.size(1), lda = a.stride(0), ldb = b.stride(0);
  TORCH_CHECK(R % kRows == 0, "R must be a multiple of ", kRows);
  auto c = torch::empty({R, N}, a.options().dtype(at::kFloat));
  if (T == 0 || N == 0) return c.zero_();
  const u16* ap = reinterpret_cast<const u16*>(a.data_ptr());
  const u16* bp = reinterpret_cast<const u16*>(b.data_ptr());
  float* cp = c.data_ptr<float>();
  const int64_t pairs = (T + 1) / 2;
  // A as token pairs: apair[tp][r] = (A[2tp][r], A[2tp+1][r]), the odd tail paired with zero
  std::vector<u32> apair(pairs * R);
  for (int64_t tp = 0; tp < pairs; ++tp)
    for (int64_t r = 0; r < R; ++r) {
      const u32 lo = ap[2 * tp * lda + r], hi = 2 * tp + 1 < T ? ap[(2 * tp + 1) * lda + r] : 0;
      apair[tp * R + r] = lo | (hi << 16);
    }
  // unpacklo/hi interleave within 128-bit lanes: lo holds columns 0-3, 8-11, 16-19, 24-27; hi the others
  const __m512i order_lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i order_hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const int64_t tiles = (N + 31) / 32;

#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t col = tile * 32;
    const __mmask32 m = lanes32(N - col);
    for (int64_t r0 = 0; r0 < R; r0 += kRows) {
      __m512 acc_lo[kRows], acc_hi[kRows];
      for (int r = 0; r < kRows; ++r) acc_lo[r] = acc_hi[r] = _mm512_setzero_ps();
      for (int64_t tp = 0; tp < pairs; ++tp) {
        const __m512i even = _mm512_maskz_loadu_epi16(m, bp + 2 * tp * ldb + col);
        const __m512i odd = 2 * tp + 1 < T ? _mm512_maskz_loadu_epi16(m, bp + (2 * tp + 1) * ldb + col)
                                           : _mm512_setzero_si512();
        const __m512bh lo = (__m512bh)_mm512_unpacklo_epi16(even, odd);
        const __m512bh hi = (__m512bh)_mm512_unpackhi_epi16(even, odd);
        const u32* ar = apair.data() + tp * R + r0;
        for (int r = 0; r < kRows; ++r) {
          const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(ar[r]));
          acc_lo[r] = _mm512_dpbf16_ps(acc_lo[r], lo, x);
          acc_hi[r] = _mm512_dpbf16_ps(acc_hi[r], hi, x);
        }
      }
      for (int r = 0; r < kRows; ++r) {
        float* cr = cp + (r0 + r) * N + col;
        _mm512_mask_storeu_ps(cr, lanes16(N - col), _mm512_permutex2var_ps(acc_lo[r], order_lo, acc_hi[r]));
        _mm512_mask_storeu_ps(cr + 16, lanes16(N - col - 16), _mm512_permutex2var_ps(acc_lo[r], order_hi, acc_hi[r]));
      }
    }
  }
  return c;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tn_gemm", &tn_gemm, "A^T B over the token dimension (bf16 in, fp32 out)");
}
