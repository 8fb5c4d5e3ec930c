// SwiGLU and RMSNorm, forward and backward, and the cross-entropy of a chunk of lm-head logits, for CPU
// training in one memory pass each where eager PyTorch makes several (bf16, AVX-512, fp32 arithmetic).
//
// Eager PyTorch spends five passes over [T, I] per layer on this (silu and a multiply forward; silu again, two
// multiplies and silu_backward in backward), each reading and writing bf16 tensors the size of the MLP's hidden
// layer. Here the forward reads gate‖up once and writes h; the backward reads gate‖up and the incoming gradient
// once and writes h (the LoRA weight gradient needs the input again) and d[gate‖up]. Rounding follows the eager
// ops it replaces, step by step: silu(gate) and each product are rounded to bf16 where eager rounds them.
//
//   gate_up [T, 2I] bf16 contiguous (gate first), grad / h [T, I] bf16 contiguous.
//
// RMSNorm as transformers' LlamaRMSNorm (and norm.py's eager ops): fp32 statistics, rstd = 1/sqrt(mean(x²)+eps)
// kept per token, y = w · bf16(x · rstd); backward dx = rstd · (gw − x̂ · mean(gw · x̂)), gw = g · w, x̂ = x · rstd,
// all fp32 inside one pass per row instead of eager's half-dozen fp32 [T, H] temporaries.
//
// Cross-entropy over a [C, V] chunk of bf16 logits: per row max, Σ exp and the target's log-probability in fp32,
// then (for training) the logits overwritten in place by dL/dlogits = softmax − one-hot in bf16: two reads and
// one write of the bf16 row, where eager copies to fp32, log-softmaxes, exponentiates, and copies back.
#include <torch/extension.h>

#include <immintrin.h>
#include <omp.h>

#include "bf16_avx512.h"

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>

#if !defined(__AVX512BF16__)
#error "domainlm's CPU elementwise kernel needs AVX512-BF16 (eager torch ops serve other CPUs)"
#endif

using u16 = uint16_t;

namespace {

inline __m512 load_bf16(const u16* src) { return bf16x::load(src); }
inline __m512 load_bf16_mask(const u16* src, __mmask16 m) { return bf16x::load_mask(src, m); }
inline __m256i to_bf16(__m512 v) { return bf16x::pack(v); }
inline __m512 exp512(__m512 x) { return bf16x::exp(x); }

inline __m512 round_bf16(__m512 v) {  // the value eager would hold after writing v to a bf16 tensor
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(to_bf16(v)), 16));
}

inline void store_bf16(u16* dst, __m512 v, __mmask16 m) { _mm256_mask_storeu_epi16(dst, m, to_bf16(v)); }

inline __m512 sigmoid(__m512 g) {
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

inline __mmask16 lanes(int64_t count) { return bf16x::lanes(count); }

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kBFloat16 && t.is_contiguous() && t.device().is_cpu(), name,
              ": contiguous CPU bf16 expected");
}

}  // namespace

torch::Tensor swiglu_forward(torch::Tensor gate_up) {
  check(gate_up, "gate_up");
  const int64_t I = gate_up.size(-1) / 2, T = gate_up.numel() / (2 * I);
  TORCH_CHECK(gate_up.size(-1) == 2 * I, "gate_up: last dimension must be even");
  auto sizes = gate_up.sizes().vec();
  sizes.back() = I;
  auto h = torch::empty(sizes, gate_up.options());
  const u16* src = reinterpret_cast<const u16*>(gate_up.data_ptr());
  u16* dst = reinterpret_cast<u16*>(h.data_ptr());
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t t = 0; t < T; ++t) {
    const u16* gate = src + t * 2 * I;
    const u16* up = gate + I;
    for (int64_t c = 0; c < I; c += 16) {
      const __mmask16 m = lanes(I - c);
      const __m512 g = load_bf16_mask(gate + c, m);
      const __m512 silu = round_bf16(_mm512_mul_ps(g, sigmoid(g)));
      store_bf16(dst + t * I + c, _mm512_mul_ps(silu, load_bf16_mask(up + c, m)), m);
    }
  }
  return h;
}

// -> (h = silu(gate)·up, d[gate‖up]) from the gradient of h
std::tuple<torch::Tensor, torch::Tensor> swiglu_backward(torch::Tensor grad, torch::Tensor gate_up) {
  check(grad, "grad");
  check(gate_up, "gate_up");
  const int64_t I = gate_up.size(-1) / 2, T = gate_up.numel() / (2 * I);
  TORCH_CHECK(grad.numel() == T * I && grad.size(-1) == I, "grad must be [..., I] for gate_up [..., 2I]");
  auto h = torch::empty_like(grad);
  auto d = torch::empty_like(gate_up);
  const u16* src = reinterpret_cast<const u16*>(gate_up.data_ptr());
  const u16* gp = reinterpret_cast<const u16*>(grad.data_ptr());
  u16* hp = reinterpret_cast<u16*>(h.data_ptr());
  u16* dp = reinterpret_cast<u16*>(d.data_ptr());
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t t = 0; t < T; ++t) {
    const u16* gate = src + t * 2 * I;
    const u16* up = gate + I;
    for (int64_t c = 0; c < I; c += 16) {
      const __mmask16 m = lanes(I - c);
      const __m512 x = load_bf16_mask(gate + c, m), u = load_bf16_mask(up + c, m), g = load_bf16_mask(gp + t * I + c, m);
      const __m512 sg = sigmoid(x);
      const __m512 silu = round_bf16(_mm512_mul_ps(x, sg));
      store_bf16(hp + t * I + c, _mm512_mul_ps(silu, u), m);
      store_bf16(dp + t * 2 * I + I + c, _mm512_mul_ps(g, silu), m);                 // d up = g · silu(gate)
      const __m512 gu = round_bf16(_mm512_mul_ps(g, u));                             // eager: torch.mul(grad, up)
      // silu'(x) = σ(x) · (1 + x · (1 − σ(x)))
      const __m512 dsilu = _mm512_mul_ps(sg, _mm512_fmadd_ps(x, _mm512_sub_ps(_mm512_set1_ps(1.0f), sg), _mm512_set1_ps(1.0f)));
      store_bf16(dp + t * 2 * I + c, _mm512_mul_ps(gu, dsilu), m);
    }
  }
  return {h, d};
}

namespace {

inline float row_rstd(const u16* x, int64_t H, float eps) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < H; c += 16) {
    const __m512 v = load_bf16_mask(x + c, lanes(H - c));
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  return 1.0f / std::sqrt(_mm512_reduce_add_ps(acc) / static_cast<float>(H) + eps);
}

inline void row_apply(const u16* x, const u16* w, float rstd, int64_t H, u16* y) {
  const __m512 r = _mm512_set1_ps(rstd);
  for (int64_t c = 0; c < H; c += 16) {
    const __mmask16 m = lanes(H - c);
    const __m512 xhat = round_bf16(_mm512_mul_ps(load_bf16_mask(x + c, m), r));
    store_bf16(y + c, _mm512_mul_ps(load_bf16_mask(w + c, m), xhat), m);
  }
}

void check_norm(const torch::Tensor& x, const torch::Tensor& w) {
  check(x, "x");
  check(w, "weight");
  TORCH_CHECK(w.dim() == 1 && w.size(0) == x.size(-1), "weight must be [H] for x [..., H]");
}

}  // namespace

// -> (y, rstd [..., 1] fp32)
std::tuple<torch::Tensor, torch::Tensor> rms_norm_forward(torch::Tensor x, torch::Tensor w, double eps) {
  check_norm(x, w);
  const int64_t H = x.size(-1), T = x.numel() / H;
  auto y = torch::empty_like(x);
  auto rsizes = x.sizes().vec();
  rsizes.back() = 1;
  auto rstd = torch::empty(rsizes, x.options().dtype(at::kFloat));
  const u16* xp = reinterpret_cast<const u16*>(x.data_ptr());
  const u16* wp = reinterpret_cast<const u16*>(w.data_ptr());
  u16* yp = reinterpret_cast<u16*>(y.data_ptr());
  float* rp = rstd.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t t = 0; t < T; ++t) {
    rp[t] = row_rstd(xp + t * H, H, static_cast<float>(eps));
    row_apply(xp + t * H, wp, rp[t], H, yp + t * H);
  }
  return {y, rstd};
}

torch::Tensor rms_norm_apply(torch::Tensor x, torch::Tensor w, torch::Tensor rstd) {
  check_norm(x, w);
  const int64_t H = x.size(-1), T = x.numel() / H;
  TORCH_CHECK(rstd.scalar_type() == at::kFloat && rstd.is_contiguous() && rstd.numel() == T, "rstd: fp32 [..., 1]");
  auto y = torch::empty_like(x);
  const u16* xp = reinterpret_cast<const u16*>(x.data_ptr());
  const u16* wp = reinterpret_cast<const u16*>(w.data_ptr());
  u16* yp = reinterpret_cast<u16*>(y.data_ptr());
  const float* rp = rstd.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t t = 0; t < T; ++t) row_apply(xp + t * H, wp, rp[t], H, yp + t * H);
  return y;
}

torch::Tensor rms_norm_backward(torch::Tensor grad, torch::Tensor x, torch::Tensor w, torch::Tensor rstd) {
  check_norm(x, w);
  check(grad, "grad");
  const int64_t H = x.size(-1), T = x.numel() / H;
  TORCH_CHECK(grad.numel() == x.numel() && rstd.scalar_type() == at::kFloat && rstd.is_contiguous() &&
              rstd.numel() == T, "grad like x, rstd fp32 [..., 1]");
  auto dx = torch::empty_like(x);
  const u16* gp = reinterpret_cast<const u16*>(grad.data_ptr());
  const u16* xp = reinterpret_cast<const u16*>(x.data_ptr());
  const u16* wp = reinterpret_cast<const u16*>(w.data_ptr());
  u16* dp = reinterpret_cast<u16*>(dx.data_ptr());
  const float* rp = rstd.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
  for (int64_t t = 0; t < T; ++t) {
    const u16* g = gp + t * H;
    const u16* xr = xp + t * H;
    const __m512 r = _mm512_set1_ps(rp[t]);
    __m512 dot = _mm512_setzero_ps();
    for (int64_t c = 0; c < H; c += 16) {
      const __mmask16 m = lanes(H - c);
      const __m512 gw = _mm512_mul_ps(load_bf16_mask(g + c, m), load_bf16_mask(wp + c, m));
      dot = _mm512_fmadd_ps(gw, _mm512_mul_ps(load_bf16_mask(xr + c, m), r), dot);
    }
    const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(dot) / static_cast<float>(H));
    for (int64_t c = 0; c < H; c += 16) {
      const __mmask16 m = lanes(H - c);
      const __m512 gw = _mm512_mul_ps(load_bf16_mask(g + c, m), load_bf16_mask(wp + c, m));
      const __m512 xhat = _mm512_mul_ps(load_bf16_mask(xr + c, m), r);
      store_bf16(dp + t * H + c, _mm512_mul_ps(_mm512_fnmadd_ps(xhat, mean, gw), r), m);
    }
  }
  return dx;
}

// Σ over rows with target >= 0 of (logsumexp(row) − row[target]); with want_grad the rows become softmax − one-hot
// (rows whose target is ignored become zero).
torch::Tensor cross_entropy_rows(torch::Tensor logits, torch::Tensor targets, bool want_grad) {
  check(logits, "logits");
  TORCH_CHECK(logits.dim() == 2 && targets.scalar_type() == at::kLong && targets.is_contiguous() &&
              targets.numel() == logits.size(0), "logits [C, V] bf16, targets [C] int64");
  const int64_t C = logits.size(0), V = logits.size(1);
  u16* lp = reinterpret_cast<u16*>(logits.data_ptr());
  const int64_t* tp = targets.data_ptr<int64_t>();
  for (int64_t r = 0; r < C; ++r) TORCH_CHECK(tp[r] < V, "target ", tp[r], " outside the vocabulary of ", V);
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(at::get_num_threads())
  for (int64_t r = 0; r < C; ++r) {
    u16* row = lp + r * V;
    const int64_t target = tp[r];
    if (target < 0) {
      if (want_grad) std::fill(row, row + V, u16{0});
      continue;
    }
    __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t c = 0; c < V; c += 16) {
      const __mmask16 m = lanes(V - c);
      vmax = _mm512_mask_max_ps(vmax, m, vmax, load_bf16_mask(row + c, m));
    }
    const float peak = _mm512_reduce_max_ps(vmax);
    const __m512 vpeak = _mm512_set1_ps(peak);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t c = 0; c < V; c += 16) {
      const __mmask16 m = lanes(V - c);
      vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(load_bf16_mask(row + c, m), vpeak))));
    }
    const float lse = peak + std::log(_mm512_reduce_add_ps(vsum));
    uint32_t bits = static_cast<uint32_t>(row[target]) << 16;
    float picked;
    std::memcpy(&picked, &bits, 4);
    total += static_cast<double>(lse - picked);
    if (!want_grad) continue;
    const __m512 vlse = _mm512_set1_ps(lse);
    for (int64_t c = 0; c < V; c += 16) {
      const __mmask16 m = lanes(V - c);
      __m512 p = exp512(_mm512_sub_ps(load_bf16_mask(row + c, m), vlse));
      if (target >= c && target < c + 16)
        p = _mm512_mask_sub_ps(p, (__mmask16)(1u << (target - c)), p, _mm512_set1_ps(1.0f));
      store_bf16(row + c, p, m);
    }
  }
  return torch::tensor(static_cast<float>(total), torch::dtype(torch::kFloat32));
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("swiglu_forward", &swiglu_forward, "silu(gate) * up from gate‖up (bf16)");
  m.def("swiglu_backward", &swiglu_backward, "(h, d gate‖up) from grad of h and gate‖up (bf16)");
  m.def("rms_norm_forward", &rms_norm_forward, "RMSNorm -> (y, rstd) (bf16 x and weight)");
  m.def("rms_norm_apply", &rms_norm_apply, "RMSNorm output from x and a saved rstd");
  m.def("rms_norm_backward", &rms_norm_backward, "RMSNorm input gradient (frozen weight)");
  m.def("cross_entropy_rows", &cross_entropy_rows, "Σ CE of bf16 logit rows; optionally logits := softmax − one-hot");
}
