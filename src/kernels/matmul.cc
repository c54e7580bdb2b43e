#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/prompt_gemm.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/qdot.h"

namespace smelt {
namespace {

constexpr int64_t kRowBlock = kPromptGemmRows;  // output rows dequantized together and reused across T inputs

// Weights whose type has a quantized dot product (kernels/qdot.h), with kGgml activations: each
// input row is encoded once in the activation type, then every output is one call of `dot` on a
// weight row's bytes and an input row's bytes. Output rows are taken in blocks of kRowBlock, each row
// dotted with all T inputs while it sits in cache.
// k: the type's row kernels (QDotRows runs them).
void MatMulQuantized(const Tensor& w, const QDotRowKernels& k, const float* x, int64_t T, float* y, int threads) {
  const int64_t C = w.ne[0], OC = w.nrows();
  const DType act = ActivationType(w.type);
  const size_t w_bytes = RowBytes(w.type, C);
  const auto* rows = static_cast<const uint8_t*>(w.data);
  // A blocked prompt kernel and a prompt-sized batch: each block of rows prepared once
  // (kernels/prompt_gemm.h), the tokens in the kernel's layout once per product.
  if (const PromptGemm blocked = FastPromptGemm(w.type); RunsBlocked(blocked, T)) {
    PromptProduct(blocked, act, x, T, C, OC, w_bytes, 0, [&](int64_t o0, int64_t, uint8_t*) { return rows + o0 * w_bytes; },
                  y, threads);
    return;
  }
  const size_t a_bytes = RowBytes(act, C);
  std::vector<uint8_t> encoded(a_bytes * (size_t)T);
  for (int64_t t = 0; t < T; ++t) QuantizeActivationRow(act, x + t * C, encoded.data() + t * a_bytes, C);
  const int64_t n_blocks = (OC + kRowBlock - 1) / kRowBlock;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, n_blocks));
  if (C * OC * T < kMinParallelWork) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t o0 = b * kRowBlock, o_end = std::min(OC, o0 + kRowBlock);
    QDotRows(k, rows + o0 * w_bytes, w_bytes, o_end - o0, encoded.data(), a_bytes, T, C, y + o0, OC);
  }
}

}  // namespace

void CheckReadable(const Tensor& t, const std::string& context) {
  const TypeTraits* tr = FindTraits((uint32_t)t.type);
  if (!tr || !tr->to_float) Fail("{}: tensor {}: type {} cannot be read as numbers", context, t.name, (uint32_t)t.type);
  const auto need = TensorBytes(t.type, t.ne);
  if (!need)
    Fail("{}: tensor {}: row length {} is not a multiple of the {} block size {}", context, t.name, t.ne[0], tr->name,
         tr->block_size);
  if (t.nelements() > 0 && (!t.data || t.nbytes < *need))
    Fail("{}: tensor {}: holds {} bytes, {} {} needs {}", context, t.name, t.nbytes, tr->name, ShapeString(t), *need);
}

void ReadRowF32(const Tensor& t, int64_t row, float* dst) {
  SMELT_ASSERT(row >= 0 && row < t.nrows());
  if (t.type == DType::kF32) {
    std::memcpy(dst, t.as<float>() + row * t.ne[0], sizeof(float) * t.ne[0]);
  } else {
    DequantizeRow(t, row, dst);
  }
}

void MatMul(const Tensor& w, const float* x, int64_t T, float* y, int threads, Activations act) {
  if (const QDotRowKernels k = act == Activations::kGgml ? FastQDotRowKernels(w.type) : QDotRowKernels{}; k.dot) {
    MatMulQuantized(w, k, x, T, y, threads);
    return;
  }
  const int64_t C = w.ne[0], OC = w.nrows();
  std::vector<float> rounded;
  if (act == Activations::kGgml && ActivationType(w.type) != DType::kF32) {
    rounded.resize(T * C);
    for (int64_t t = 0; t < T; ++t) RoundActivationRow(w.type, x + t * C, rounded.data() + t * C, C);
    x = rounded.data();
  }
  const bool direct = w.type == DType::kF32;
  const int64_t n_blocks = (OC + kRowBlock - 1) / kRowBlock;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, n_blocks));
  if (C * OC * T < kMinParallelWork) threads = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> rows(direct ? 0 : kRowBlock * C);                  // this thread's dequantized rows: (n, C)
    std::vector<float> cols(T < kMinBlockedBatch ? 0 : C * kRowBlock);  // the block transposed: (C, kRowBlock)
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t o0 = b * kRowBlock, n = std::min(kRowBlock, OC - o0);
      const float* block;
      if (direct) {
        block = w.as<float>() + o0 * C;
      } else {
        for (int64_t r = 0; r < n; ++r) DequantizeRow(w, o0 + r, rows.data() + r * C);
        block = rows.data();
      }
      if (T < kMinBlockedBatch) {  // rows dotted directly
        for (int64_t t = 0; t < T; ++t)
          for (int64_t r = 0; r < n; ++r) y[t * OC + o0 + r] = DotF32(block + r * C, x + t * C, C);
        continue;
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t r = 0; r < kRowBlock; ++r) cols[c * kRowBlock + r] = r < n ? block[r * C + c] : 0.0f;
      // The kRowBlock outputs of the block advance together over c, which the compiler turns
      // into vector operations across rows (no horizontal sums).
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x + t * C;
        float acc[kRowBlock] = {};
        for (int64_t c = 0; c < C; ++c) {
          const float xc = xt[c];
          const float* wc = cols.data() + c * kRowBlock;
#pragma omp simd
          for (int64_t r = 0; r < kRowBlock; ++r) acc[r] += wc[r] * xc;
        }
        for (int64_t r = 0; r < n; ++r) y[t * OC + o0 + r] = acc[r];
      }
    }
  }
}

}  // namespace smelt
