// Causal attention over packed variable-length rows for CPU training: bf16 in and out, AVX512-BF16 dot products
// (32 multiply-adds per instruction, fp32 accumulation), forward and backward, GQA without repeating k/v.
//
// One work item is (row, kv head): the rep query heads that share that kv head, all positions of the row. Items
// are independent (a row attends only to itself), so they run on OpenMP threads, longest rows first; inside an
// item every product is a small GEMM through one register-tiled micro-kernel (4 rows x up to 64 fp32 columns).
// Only the causal lower triangle is computed, to 16-column granularity. Softmax runs in fp32 on the tile just
// produced, so the n x n scores never go to memory in the forward pass; the forward keeps only the log-sum-exp
// per query (as flash attention does) and the backward recomputes the probabilities from it.
//
// Layouts (u32 = one pair of bf16 values, the operand unit of vdpbf16ps):
//   A operands are rows whose reduction pairs are contiguous: a query row (pairs over head_dim), a probability row
//   (pairs over keys), a transposed probability row (pairs over queries).
//   B operands are packed "VNNI" [K/2][N] u32: element (kp, n) holds B[2kp][n], B[2kp+1][n].
//
// Input is the packed q‖k‖v projection [T, (Hq + 2 Hkv) D] (the fused q/k/v GEMM's output, no split or copy)
// and, optionally, RoPE tables cos / signed sin [T, D]: q and k are rotated per item into scratch rows (fp32 math,
// one bf16 rounding) and the backward rotates dq / dk back (the adjoint rotation), so neither the rotated q / k nor
// their gradients ever exist as tensors. The backward returns d(q‖k‖v) in the same packed layout.
//
//   qkv [T, W] bf16, rows ld >= W apart (dqkv comes back contiguous);  cos / sin [T, D] bf16 or empty;
//   out/dout [T, Hq, D] bf16;  lse [T, Hq] fp32;  cu [rows+1] int64.
#include <torch/extension.h>

#include <immintrin.h>
#include <omp.h>

#include "bf16_avx512.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#if !defined(__AVX512BF16__)
#error "domainlm's CPU attention kernel needs AVX512-BF16 (the grouped-GEMM torch ops serve other CPUs)"
#endif

using u16 = uint16_t;
using u32 = uint32_t;

namespace {

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

inline __m512 load_bf16(const u16* src) { return bf16x::load(src); }

inline __m512 load_bf16_mask(const u16* src, __mmask16 m) { return bf16x::load_mask(src, m); }

inline __m256i to_bf16(__m512 v) { return bf16x::pack(v); }

inline __m512 exp_nonpositive(__m512 x) { return bf16x::exp_nonpositive(x); }

inline __mmask16 first(int64_t count) { return bf16x::lanes(count); }  // lanes [0, count) of 16

// C[r][0, 16*NC) (= or +=) sum over kp in [kp0, kp1) of A_r[kp] . B[kp][0, 16*NC), for 4 rows at once:
// per pair NC loads of B, 4 broadcasts of A, 4*NC independent dot-product chains.
template <int NC>
inline void tile4(const u32* const* a, const u32* b, int64_t ldb, int64_t kp0, int64_t kp1, float* c, int64_t ldc,
                  bool add) {
  __m512 acc[4][NC];
  for (int r = 0; r < 4; ++r)
    for (int n = 0; n < NC; ++n) acc[r][n] = _mm512_setzero_ps();
  for (int64_t kp = kp0; kp < kp1; ++kp) {
    const u32* bk = b + kp * ldb;
    __m512bh bv[NC];
    for (int n = 0; n < NC; ++n) bv[n] = (__m512bh)_mm512_loadu_si512(bk + 16 * n);
    for (int r = 0; r < 4; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r][kp]));
      for (int n = 0; n < NC; ++n) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], x, bv[n]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int n = 0; n < NC; ++n) {
      float* cr = c + r * ldc + 16 * n;
      _mm512_storeu_ps(cr, add ? _mm512_add_ps(acc[r][n], _mm512_loadu_ps(cr)) : acc[r][n]);
    }
}

// 4 rows of C[:, 0:ncols) (ncols a multiple of 16) over the pair range [kp0, kp1).
void gemm4(const u32* const* a, const u32* b, int64_t ldb, int64_t kp0, int64_t kp1, float* c, int64_t ldc,
           int64_t ncols, bool add) {
  int64_t col = 0;
  for (; col + 64 <= ncols; col += 64) tile4<4>(a, b + col, ldb, kp0, kp1, c + col, ldc, add);
  switch ((ncols - col) / 16) {
    case 3: tile4<3>(a, b + col, ldb, kp0, kp1, c + col, ldc, add); break;
    case 2: tile4<2>(a, b + col, ldb, kp0, kp1, c + col, ldc, add); break;
    case 1: tile4<1>(a, b + col, ldb, kp0, kp1, c + col, ldc, add); break;
    default: break;
  }
}

// [rows of D bf16] -> transposed pairs over D: out[p][j] = (row_j[2p], row_j[2p+1]), j < n, zero up to ld.
void pack_pairs_over_dim(const u16* base, int64_t stride, int64_t n, int64_t dp, int64_t ld, u32* out) {
  std::fill(out, out + dp * ld, 0u);
  for (int64_t j = 0; j < n; ++j) {
    const u32* row = reinterpret_cast<const u32*>(base + j * stride);
    for (int64_t p = 0; p < dp; ++p) out[p * ld + j] = row[p];
  }
}

// rows r_j of D bf16 (row(j) gives the pointer, nullptr = zero row) -> pairs over rows: out[jp][d] = (r_2jp[d],
// r_2jp+1[d]) for jp < count/2.
template <typename Row>
void pack_pairs_over_rows(Row row, int64_t count, int64_t D, u32* out) {
  for (int64_t jp = 0; jp < count / 2; ++jp) {
    const u16* lo = row(2 * jp);
    const u16* hi = row(2 * jp + 1);
    u32* dst = out + jp * D;
    for (int64_t d = 0; d < D; ++d)
      dst[d] = static_cast<u32>(lo ? lo[d] : 0) | (static_cast<u32>(hi ? hi[d] : 0) << 16);
  }
}

// 4 bf16 rows x 16 columns (row stride lds) -> transposed: dst[c * ldd + r] for c < 16, r < 4 (one 8-byte store
// per column). The 16-bit then 32-bit unpacks work within 128-bit lanes, hence the column order below.
inline void transpose4x16(const u16* src, int64_t lds, u16* dst, int64_t ldd) {
  const __m256i a = _mm256_loadu_si256((const __m256i*)src), b = _mm256_loadu_si256((const __m256i*)(src + lds));
  const __m256i c = _mm256_loadu_si256((const __m256i*)(src + 2 * lds));
  const __m256i d = _mm256_loadu_si256((const __m256i*)(src + 3 * lds));
  const __m256i ab_lo = _mm256_unpacklo_epi16(a, b), ab_hi = _mm256_unpackhi_epi16(a, b);
  const __m256i cd_lo = _mm256_unpacklo_epi16(c, d), cd_hi = _mm256_unpackhi_epi16(c, d);
  const __m256i quads[4] = {_mm256_unpacklo_epi32(ab_lo, cd_lo), _mm256_unpackhi_epi32(ab_lo, cd_lo),
                            _mm256_unpacklo_epi32(ab_hi, cd_hi), _mm256_unpackhi_epi32(ab_hi, cd_hi)};
  for (int x = 0; x < 4; ++x) {   // quads[x] holds columns 2x, 2x+1 (low lane) and 8+2x, 9+2x (high lane)
    const __m128i low = _mm256_castsi256_si128(quads[x]), high = _mm256_extracti128_si256(quads[x], 1);
    _mm_storel_epi64((__m128i*)(dst + (2 * x) * ldd), low);
    _mm_storeh_pd((double*)(dst + (2 * x + 1) * ldd), _mm_castsi128_pd(low));
    _mm_storel_epi64((__m128i*)(dst + (8 + 2 * x) * ldd), high);
    _mm_storeh_pd((double*)(dst + (9 + 2 * x) * ldd), _mm_castsi128_pd(high));
  }
}

// Per-thread scratch reused across items and calls: a fresh multi-MB vector per item would be mmap'd, page-faulted
// and zeroed by the kernel every time.
template <typename T>
T* scratch(int slot, size_t count) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& buffer = buffers[slot];
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

struct Shape {
  int64_t T, Hq, Hkv, D, rep, dp, W, ld;   // ld: qkv's row stride (>= W: q‖k‖v may be the front of a wider GEMM output)
};

Shape shape_of(const torch::Tensor& qkv, int64_t Hq, int64_t Hkv) {
  TORCH_CHECK(qkv.dim() == 2 && Hq > 0 && Hkv > 0 && Hq % Hkv == 0, "qkv [T, (Hq+2Hkv)·D], Hq a multiple of Hkv");
  const int64_t W = qkv.size(1), D = W / (Hq + 2 * Hkv);
  TORCH_CHECK(D * (Hq + 2 * Hkv) == W, "qkv width ", W, " is not (Hq + 2 Hkv) · head_dim");
  TORCH_CHECK(D % 16 == 0 && D <= 256, "head_dim must be a multiple of 16, at most 256");
  TORCH_CHECK(qkv.scalar_type() == at::kBFloat16 && qkv.device().is_cpu() && qkv.stride(1) == 1 &&
              (qkv.size(0) <= 1 || qkv.stride(0) >= W), "qkv: CPU bf16 with unit column stride");
  return {qkv.size(0), Hq, Hkv, D, Hq / Hkv, D / 2, W, qkv.size(0) <= 1 ? W : qkv.stride(0)};
}

// RoPE with the sign of rotate_half folded into ss: y = x·cos + swap_halves(x)·ss, fp32 math, bf16 out.
// Without tables (cos == nullptr) a plain copy.
inline void rope_row(const u16* x, const u16* cos, const u16* ss, int64_t D, u16* y) {
  if (cos == nullptr) {
    std::memcpy(y, x, D * sizeof(u16));
    return;
  }
  const int64_t half = D / 2;
  for (int64_t d = 0; d < half; d += 16) {
    const __mmask16 m = first(half - d);
    const __m512 lo = load_bf16_mask(x + d, m), hi = load_bf16_mask(x + half + d, m);
    const __m512 ylo = _mm512_fmadd_ps(hi, load_bf16_mask(ss + d, m), _mm512_mul_ps(lo, load_bf16_mask(cos + d, m)));
    const __m512 yhi = _mm512_fmadd_ps(lo, load_bf16_mask(ss + half + d, m), _mm512_mul_ps(hi, load_bf16_mask(cos + half + d, m)));
    _mm256_mask_storeu_epi16(y + d, m, to_bf16(ylo));
    _mm256_mask_storeu_epi16(y + half + d, m, to_bf16(yhi));
  }
}

// The adjoint of rope_row applied to scale·g (fp32): dx_lo = g_lo·cos_lo + g_hi·ss_hi, dx_hi = g_hi·cos_hi + g_lo·ss_lo.
inline void rope_adjoint_row(const float* g, float scale, const u16* cos, const u16* ss, int64_t D, u16* dx) {
  const __m512 sc = _mm512_set1_ps(scale);
  if (cos == nullptr) {
    for (int64_t d = 0; d < D; d += 16) _mm256_storeu_si256((__m256i*)(dx + d), to_bf16(_mm512_mul_ps(_mm512_loadu_ps(g + d), sc)));
    return;
  }
  const int64_t half = D / 2;
  for (int64_t d = 0; d < half; d += 16) {
    const __mmask16 m = first(half - d);
    const __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + d), sc), hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + half + d), sc);
    const __m512 xlo = _mm512_fmadd_ps(hi, load_bf16_mask(ss + half + d, m), _mm512_mul_ps(lo, load_bf16_mask(cos + d, m)));
    const __m512 xhi = _mm512_fmadd_ps(lo, load_bf16_mask(ss + d, m), _mm512_mul_ps(hi, load_bf16_mask(cos + half + d, m)));
    _mm256_mask_storeu_epi16(dx + d, m, to_bf16(xlo));
    _mm256_mask_storeu_epi16(dx + half + d, m, to_bf16(xhi));
  }
}

// Where one (row, kv head) item reads its operands: rows of the packed qkv, RoPE tables or none.
struct Packed {
  const u16* qkv;
  const u16* cos;
  const u16* sin;
  Shape s;
  const u16* q(int64_t token, int64_t head) const { return qkv + token * s.ld + head * s.D; }
  const u16* k(int64_t token, int64_t kv) const { return qkv + token * s.ld + (s.Hq + kv) * s.D; }
  const u16* v(int64_t token, int64_t kv) const { return qkv + token * s.ld + (s.Hq + s.Hkv + kv) * s.D; }
  const u16* c(int64_t token) const { return cos ? cos + token * s.D : nullptr; }
  const u16* ss(int64_t token) const { return sin ? sin + token * s.D : nullptr; }
  // rotated k rows [n][D] of kv head g and rotated q rows [rep][n][D] of its query heads, for row [s0, s0 + n)
  void rotate(int64_t s0, int64_t n, int64_t g, u16* kr, u16* qr) const {
    for (int64_t j = 0; j < n; ++j) rope_row(k(s0 + j, g), c(s0 + j), ss(s0 + j), s.D, kr + j * s.D);
    for (int64_t t = 0; t < s.rep; ++t)
      for (int64_t i = 0; i < n; ++i) rope_row(q(s0 + i, g * s.rep + t), c(s0 + i), ss(s0 + i), s.D, qr + (t * n + i) * s.D);
  }
};

Packed packed_of(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin, const Shape& s) {
  const bool rope = cos.numel() > 0;
  if (rope)
    TORCH_CHECK(cos.scalar_type() == at::kBFloat16 && sin.scalar_type() == at::kBFloat16 && cos.is_contiguous() &&
                sin.is_contiguous() && cos.numel() == s.T * s.D && sin.numel() == s.T * s.D,
                "cos / sin: contiguous bf16 [T, head_dim]");
  return {reinterpret_cast<const u16*>(qkv.data_ptr()), rope ? reinterpret_cast<const u16*>(cos.data_ptr()) : nullptr,
          rope ? reinterpret_cast<const u16*>(sin.data_ptr()) : nullptr, s};
}

void check_bf16(std::initializer_list<const torch::Tensor*> tensors) {
  for (const torch::Tensor* t : tensors)
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->is_contiguous() && t->device().is_cpu(),
                "contiguous CPU bf16 tensors expected");
}

// Work items (row, kv head), longest rows first so the tail of the schedule is short.
std::vector<std::pair<int64_t, int64_t>> items_of(const std::vector<int64_t>& cu, int64_t Hkv) {
  std::vector<std::pair<int64_t, int64_t>> items;
  for (int64_t row = 0; row + 1 < static_cast<int64_t>(cu.size()); ++row)
    for (int64_t g = 0; g < Hkv; ++g) items.emplace_back(row, g);
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    return cu[x.first + 1] - cu[x.first] > cu[y.first + 1] - cu[y.first];
  });
  return items;
}

std::vector<int64_t> bounds_of(const torch::Tensor& cu, int64_t T) {
  TORCH_CHECK(cu.scalar_type() == at::kLong && cu.dim() == 1 && cu.size(0) >= 2, "cu_seqlens: int64 [rows+1]");
  auto c = cu.contiguous();
  std::vector<int64_t> out(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.size(0));
  TORCH_CHECK(out.front() == 0 && out.back() == T, "cu_seqlens must start at 0 and end at T");
  for (size_t i = 1; i < out.size(); ++i) TORCH_CHECK(out[i] >= out[i - 1], "cu_seqlens must not decrease");
  return out;
}

// fn(s0, n, g, kr, qr) for every non-empty (row, kv head) item on OpenMP threads, longest rows first, with the
// item's rotated k rows [n][D] and q rows [rep][n][D] in per-thread scratch.
template <typename Fn>
void for_each_item(const std::vector<int64_t>& cu, const Packed& in, Fn fn) {
  const auto items = items_of(cu, in.s.Hkv);
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads())
  for (int64_t it = 0; it < static_cast<int64_t>(items.size()); ++it) {
    const int64_t row = items[it].first, g = items[it].second, s0 = cu[row], n = cu[row + 1] - cu[row];
    if (n == 0) continue;
    u16* kr = scratch<u16>(2, n * in.s.D);
    u16* qr = scratch<u16>(3, in.s.rep * n * in.s.D);
    in.rotate(s0, n, g, kr, qr);
    fn(s0, n, g, kr, qr);
  }
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> attention_forward(torch::Tensor qkv, torch::Tensor cu_seqlens, double scale,
                                                           int64_t Hq, int64_t Hkv, torch::Tensor cos, torch::Tensor sin) {
  const Shape s = shape_of(qkv, Hq, Hkv);
  const Packed in = packed_of(qkv, cos, sin, s);
  const std::vector<int64_t> cu = bounds_of(cu_seqlens, s.T);
  auto out = torch::empty({s.T, s.Hq, s.D}, qkv.options());
  auto lse = torch::empty({s.T, s.Hq}, qkv.options().dtype(at::kFloat));
  u16* op = reinterpret_cast<u16*>(out.data_ptr());
  float* lp = lse.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  const int64_t D = s.D;

  for_each_item(cu, in, [&](int64_t s0, int64_t n, int64_t g, const u16* kr, const u16* qr) {
    const int64_t n16 = round_up(n, 16), n2 = round_up(n, 2);
    std::vector<u32> kt(s.dp * n16), vk(n2 / 2 * D);
    pack_pairs_over_dim(kr, D, n, s.dp, n16, kt.data());
    pack_pairs_over_rows([&](int64_t j) { return j < n ? in.v(s0 + j, g) : nullptr; }, n2, D, vk.data());
    std::vector<float> scores(4 * n16), o(4 * D), inv_sum(4);
    std::vector<u16> probs(4 * n16);
    for (int64_t t = 0; t < s.rep; ++t) {
      const int64_t h = g * s.rep + t;
      for (int64_t i0 = 0; i0 < n; i0 += 4) {
        const int64_t last = std::min(i0 + 4, n);   // keys [0, last) are all this group can see
        const u32* a[4];
        for (int r = 0; r < 4; ++r)
          a[r] = reinterpret_cast<const u32*>(qr + (t * n + std::min(i0 + r, n - 1)) * D);
        const int64_t ncols = round_up(last, 16);   // = round_up(i + 1, 16) for every query i of the group
        gemm4(a, kt.data(), n16, 0, s.dp, scores.data(), n16, ncols, false);
        // numerators e^(s - max) go to bf16 in the same pass that sums them; the 1/sum scales the output row
        // instead of every probability (one pass over the row fewer)
        for (int r = 0; r < 4; ++r) {
          float* sr = scores.data() + r * n16;
          u16* pr = probs.data() + r * n16;
          const int64_t i = i0 + r;
          if (i >= n) {
            std::fill(pr, pr + ncols, u16{0});
            continue;
          }
          __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
          for (int64_t j = 0; j <= i; j += 16)
            vmax = _mm512_mask_max_ps(vmax, first(i + 1 - j), vmax, _mm512_loadu_ps(sr + j));
          const float mx = _mm512_reduce_max_ps(vmax) * sc;
          const __m512 vsc = _mm512_set1_ps(sc), vmx = _mm512_set1_ps(mx);
          __m512 vsum = _mm512_setzero_ps();
          for (int64_t j = 0; j < ncols; j += 16) {
            const __m512 e = _mm512_maskz_mov_ps(first(i + 1 - j),
                                                 exp_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), vsc, vmx)));
            vsum = _mm512_add_ps(vsum, e);
            _mm256_storeu_si256((__m256i*)(pr + j), to_bf16(e));
          }
          const float sum = _mm512_reduce_add_ps(vsum);
          inv_sum[r] = 1.0f / sum;
          lp[(s0 + i) * s.Hq + h] = mx + std::log(sum);
        }
        const u32* pa[4];
        for (int r = 0; r < 4; ++r) pa[r] = reinterpret_cast<const u32*>(probs.data() + r * n16);
        gemm4(pa, vk.data(), D, 0, (last + 1) / 2, o.data(), D, D, false);
        for (int64_t i = i0; i < last; ++i) {
          u16* dst = op + ((s0 + i) * s.Hq + h) * D;
          const __m512 scale_row = _mm512_set1_ps(inv_sum[i - i0]);
          for (int64_t d = 0; d < D; d += 16)
            _mm256_storeu_si256((__m256i*)(dst + d), to_bf16(_mm512_mul_ps(_mm512_loadu_ps(o.data() + (i - i0) * D + d), scale_row)));
        }
      }
    }
  });
  return {out, lse};
}

torch::Tensor attention_backward(torch::Tensor dout, torch::Tensor qkv, torch::Tensor out, torch::Tensor lse,
                                 torch::Tensor cu_seqlens, double scale, int64_t Hq, int64_t Hkv, torch::Tensor cos,
                                 torch::Tensor sin, int64_t query_chunk) {
  check_bf16({&dout, &out});
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.is_contiguous(), "lse: contiguous fp32");
  TORCH_CHECK(query_chunk >= 1, "query_chunk must be positive");
  const int64_t chunk = round_up(query_chunk, 4);   // aligned with the key tiles: see the Pᵀ / dSᵀ zeroing below
  const Shape s = shape_of(qkv, Hq, Hkv);
  const Packed in = packed_of(qkv, cos, sin, s);
  TORCH_CHECK(dout.numel() == s.T * s.Hq * s.D && out.numel() == dout.numel(), "dout / out: [T, Hq, head_dim]");
  const std::vector<int64_t> cu = bounds_of(cu_seqlens, s.T);
  auto dqkv = torch::empty({s.T, s.W}, qkv.options());   // packed and contiguous whatever qkv's row stride
  const u16* op = reinterpret_cast<const u16*>(out.data_ptr());
  const u16* gp = reinterpret_cast<const u16*>(dout.data_ptr());
  const float* lp = lse.data_ptr<float>();
  u16* dp_base = reinterpret_cast<u16*>(dqkv.data_ptr());
  const float sc = static_cast<float>(scale);
  const int64_t D = s.D;

  for_each_item(cu, in, [&](int64_t s0, int64_t n, int64_t g, const u16* kr, const u16* qr) {
    const int64_t n16 = round_up(n, 16), n2 = round_up(n, 2), n4 = round_up(n, 4);
    auto qrow = [&](int64_t i, int64_t t) { return qr + (t * n + i) * D; };
    auto grow = [&](int64_t i, int64_t t) { return gp + ((s0 + i) * s.Hq + g * s.rep + t) * D; };
    // Kᵀ and Vᵀ for the score and dP products (pairs over D), K for dQ = dS K (pairs over keys)
    std::vector<u32> kt(s.dp * n16), vt(s.dp * n16), kk(n2 / 2 * D);
    pack_pairs_over_dim(kr, D, n, s.dp, n16, kt.data());
    pack_pairs_over_dim(in.v(s0, g), s.ld, n, s.dp, n16, vt.data());
    pack_pairs_over_rows([&](int64_t j) { return j < n ? kr + j * D : nullptr; }, n2, D, kk.data());
    // delta_i = dO_i . O_i (= sum_j P_ij dP_ij), per query head
    std::vector<float> delta(s.rep * n);
    for (int64_t t = 0; t < s.rep; ++t)
      for (int64_t i = 0; i < n; ++i) {
        const u16* o = op + ((s0 + i) * s.Hq + g * s.rep + t) * D;
        const u16* go = grow(i, t);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; d += 16) acc = _mm512_fmadd_ps(load_bf16(o + d), load_bf16(go + d), acc);
        delta[t * n + i] = _mm512_reduce_add_ps(acc);
      }
    float* dk_acc = scratch<float>(0, n4 * D);
    float* dv_acc = scratch<float>(1, n4 * D);
    std::fill(dk_acc, dk_acc + n4 * D, 0.0f);
    std::fill(dv_acc, dv_acc + n4 * D, 0.0f);
    std::vector<float> sbuf(4 * n16), dpbuf(4 * n16), dqt(4 * D);
    std::vector<u16> prow(4 * n16), dsrow(4 * n16);
    for (int64_t qs = 0; qs < n; qs += chunk) {
      const int64_t qe = std::min(qs + chunk, n), qc2 = round_up(qe - qs, 2), mc = s.rep * qc2;
      const int64_t qe4 = round_up(qe, 4);
      // this chunk's queries m = t*qc2 + (i - qs), pairs over m (a head's block is even, so no pair spans two)
      std::vector<u32> qq(mc / 2 * D), gq(mc / 2 * D);
      pack_pairs_over_rows([&](int64_t m) { const int64_t t = m / qc2, i = qs + m % qc2; return i < qe ? qrow(i, t) : nullptr; }, mc, D, qq.data());
      pack_pairs_over_rows([&](int64_t m) { const int64_t t = m / qc2, i = qs + m % qc2; return i < qe ? grow(i, t) : nullptr; }, mc, D, gq.data());
      // Pᵀ and dSᵀ [key][query m]. Query groups and key tiles are both aligned to 4 (chunk is), so the group holding
      // query i writes every key j < floor4(i) + 4, which covers all the dV / dK products read for i (they start
      // at key tile floor4(j) <= i). The rest of the buffer is never read, so it is not cleared, except what the
      // products do read but no group writes: key rows [qe, qe4) and an odd chunk's padding query column. Those only
      // meet zero operands, but stale scratch could hold a NaN pattern, and NaN · 0 is not 0.
      u16* pt = scratch<u16>(0, qe4 * mc);
      u16* dst = scratch<u16>(1, qe4 * mc);
      std::fill(pt + qe * mc, pt + qe4 * mc, u16{0});
      std::fill(dst + qe * mc, dst + qe4 * mc, u16{0});
      if (qc2 != qe - qs)
        for (int64_t t = 0; t < s.rep; ++t)
          for (int64_t j = 0; j < qe; ++j) pt[j * mc + t * qc2 + qc2 - 1] = dst[j * mc + t * qc2 + qc2 - 1] = 0;
      for (int64_t t = 0; t < s.rep; ++t) {
        for (int64_t i0 = qs; i0 < qe; i0 += 4) {
          const int64_t last = std::min(i0 + 4, qe), ncols = round_up(last, 16);
          const u32* a[4];
          const u32* ga[4];
          for (int r = 0; r < 4; ++r) {
            a[r] = reinterpret_cast<const u32*>(qrow(std::min(i0 + r, qe - 1), t));
            ga[r] = reinterpret_cast<const u32*>(grow(std::min(i0 + r, qe - 1), t));
          }
          gemm4(a, kt.data(), n16, 0, s.dp, sbuf.data(), n16, ncols, false);
          gemm4(ga, vt.data(), n16, 0, s.dp, dpbuf.data(), n16, ncols, false);
          for (int r = 0; r < 4; ++r) {   // P and dS = P ∘ (dP − delta), straight to bf16 rows
            const float* sr = sbuf.data() + r * n16;
            const float* dr = dpbuf.data() + r * n16;
            u16* psr = prow.data() + r * n16;
            u16* dsr = dsrow.data() + r * n16;
            const int64_t i = i0 + r;
            if (i >= qe) {
              std::fill(psr, psr + ncols, u16{0});
              std::fill(dsr, dsr + ncols, u16{0});
              continue;
            }
            const __m512 l = _mm512_set1_ps(lp[(s0 + i) * s.Hq + g * s.rep + t]);
            const __m512 dl = _mm512_set1_ps(delta[t * n + i]);
            const __m512 vsc = _mm512_set1_ps(sc);
            for (int64_t j = 0; j < ncols; j += 16) {
              const __m512 p = _mm512_maskz_mov_ps(first(i + 1 - j),
                                                   exp_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), vsc, l)));
              _mm256_storeu_si256((__m256i*)(psr + j), to_bf16(p));
              _mm256_storeu_si256((__m256i*)(dsr + j), to_bf16(_mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(dr + j), dl))));
            }
          }
          // scatter the 4 queries' columns into Pᵀ / dSᵀ: 4 adjacent bf16 per key
          const int64_t m0 = t * qc2 + (i0 - qs), width = last - i0;
          int64_t j = 0;
          if (width == 4)
            for (; j + 16 <= last; j += 16) {
              transpose4x16(prow.data() + j, n16, pt + j * mc + m0, mc);
              transpose4x16(dsrow.data() + j, n16, dst + j * mc + m0, mc);
            }
          for (; j < last; ++j)
            for (int r = 0; r < width; ++r) {
              pt[j * mc + m0 + r] = prow[r * n16 + j];
              dst[j * mc + m0 + r] = dsrow[r * n16 + j];
            }
          const u32* da[4];
          for (int r = 0; r < 4; ++r) da[r] = reinterpret_cast<const u32*>(dsrow.data() + r * n16);
          gemm4(da, kk.data(), D, 0, (last + 1) / 2, dqt.data(), D, D, false);
          for (int64_t i = i0; i < last; ++i)   // dq = scale · dS K, rotated back
            rope_adjoint_row(dqt.data() + (i - i0) * D, sc, in.c(s0 + i), in.ss(s0 + i), D,
                             dp_base + (s0 + i) * s.W + (g * s.rep + t) * D);
        }
      }
      // dV += Pᵀ dO, dK += dSᵀ Q over keys [0, qe), 4 keys per tile; for each head only the queries i >= key
      for (int64_t j0 = 0; j0 < qe; j0 += 4) {
        const u32* pa[4];
        const u32* sa[4];
        for (int r = 0; r < 4; ++r) {
          pa[r] = reinterpret_cast<const u32*>(pt + std::min(j0 + r, qe4 - 1) * mc);
          sa[r] = reinterpret_cast<const u32*>(dst + std::min(j0 + r, qe4 - 1) * mc);
        }
        for (int64_t t = 0; t < s.rep; ++t) {
          const int64_t m_begin = t * qc2 + std::max<int64_t>(0, j0 - qs), m_end = (t + 1) * qc2;
          if (m_begin >= m_end) continue;
          gemm4(pa, gq.data(), D, m_begin / 2, m_end / 2, dv_acc + j0 * D, D, D, true);
          gemm4(sa, qq.data(), D, m_begin / 2, m_end / 2, dk_acc + j0 * D, D, D, true);
        }
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      rope_adjoint_row(dk_acc + j * D, sc, in.c(s0 + j), in.ss(s0 + j), D, dp_base + (s0 + j) * s.W + (s.Hq + g) * D);
      rope_adjoint_row(dv_acc + j * D, 1.0f, nullptr, nullptr, D, dp_base + (s0 + j) * s.W + (s.Hq + s.Hkv + g) * D);
    }
  });
  return dqkv;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attention_forward", &attention_forward, "packed q‖k‖v (+RoPE) causal varlen attention forward -> (out, lse)");
  m.def("attention_backward", &attention_backward, "its backward -> d(q‖k‖v) in the packed layout");
}
