"""C++ and CUDA sources of the XNOR-popcount kernels, kept as strings.

The sources live in a `.py` file because `trust_remote_code=True` copies only Python files into
a model folder; `xnor_kernel` compiles them on first use with
`torch.utils.cpp_extension.load_inline`. Before compiling, `xnor_kernel` replaces
`OPS_NAMESPACE_PLACEHOLDER` with an operator namespace that contains a hash of the source, so that
a changed source builds and loads as a new extension.

Both kernels compute, for every input row x and weight row w with K real bits,
`dot = K - 2 * popcount(bits(x) XOR bits(w))`, then `dot * scale + bias` in float32 (float64
for float64 outputs), rounded to the output dtype. Multiplication and addition are rounded one
at a time, never fused, as in the PyTorch reference path. The tests check that the CPU kernel
equals the reference bit for bit.
"""

NAMESPACE_PLACEHOLDER = "OPS_NAMESPACE_PLACEHOLDER"

CPU_SOURCE = r"""
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

// The packed rows are read as 64-bit words: element k must land in bit k % 64 of word k / 64.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the packed bit layout is read as little-endian 64-bit words"
#endif

// The x86 variants are compiled with function-level target attributes and picked at run time,
// so the library runs on any x86-64 CPU and needs no -march=native.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define SENSIMIX_X86 1
#include <immintrin.h>
#define SENSIMIX_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,popcnt")))
#define SENSIMIX_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,popcnt,avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq")))
#else
#define SENSIMIX_X86 0
#endif

namespace {

// Variant ids shared with the Python side.
constexpr int64_t kVariantAuto = 0;
constexpr int64_t kVariantGeneric = 1;
constexpr int64_t kVariantAvx2 = 2;
constexpr int64_t kVariantAvx512 = 3;

// A tile is kTileRows input rows times kTileGroups groups of kGroupRows weight rows. The prepared
// weight interleaves each group as [words][kGroupRows], so one word index of a whole group is one
// 512-bit vector.
constexpr int64_t kTileRows = 4;
constexpr int64_t kGroupRows = 8;
constexpr int64_t kTileGroups = 2;
constexpr int64_t kTileCols = kGroupRows * kTileGroups;
constexpr int64_t kWordBits = 64;
// Weight bytes per chunk of tiles, sized to stay in a typical 32-48 KiB L1 data cache.
constexpr int64_t kChunkBytes = 32 * 1024;
// Popcount operations below which a loop runs on one thread.
constexpr int64_t kMinParallelWork = 1 << 16;

template <typename T>
struct OpMath {
  using type = float;
};
template <>
struct OpMath<double> {
  using type = double;
};

inline int popcount64(uint64_t value) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(value);
#else
  value = value - ((value >> 1) & 0x5555555555555555ULL);
  value = (value & 0x3333333333333333ULL) + ((value >> 2) & 0x3333333333333333ULL);
  value = (value + (value >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((value * 0x0101010101010101ULL) >> 56);
#endif
}

// Writes popcount(x_r XOR w_c) into counts[r * kTileCols + c] for the kTileRows rows at `x`
// (row stride `words`) and the kTileCols weight rows of the kTileGroups groups at `w`.
using TileFn = void (*)(const uint64_t* x, int64_t words, const uint64_t* w, int32_t* counts);

void tile_generic(const uint64_t* x, int64_t words, const uint64_t* w, int32_t* counts) {
  int32_t acc[kTileRows][kTileCols] = {};
  for (int64_t k = 0; k < words; ++k) {
    for (int64_t g = 0; g < kTileGroups; ++g) {
      const uint64_t* wk = w + (g * words + k) * kGroupRows;
      for (int64_t r = 0; r < kTileRows; ++r) {
        const uint64_t xv = x[r * words + k];
        for (int64_t j = 0; j < kGroupRows; ++j) {
          acc[r][g * kGroupRows + j] += popcount64(xv ^ wk[j]);
        }
      }
    }
  }
  std::memcpy(counts, acc, sizeof(acc));
}

#if SENSIMIX_X86
SENSIMIX_TARGET_AVX512 void tile_avx512(const uint64_t* x, int64_t words, const uint64_t* w, int32_t* counts) {
  __m512i acc[kTileRows][kTileGroups];
  for (int64_t r = 0; r < kTileRows; ++r) {
    for (int64_t g = 0; g < kTileGroups; ++g) {
      acc[r][g] = _mm512_setzero_si512();
    }
  }
  for (int64_t k = 0; k < words; ++k) {
    __m512i wv[kTileGroups];
    for (int64_t g = 0; g < kTileGroups; ++g) {
      wv[g] = _mm512_loadu_si512(static_cast<const void*>(w + (g * words + k) * kGroupRows));
    }
    for (int64_t r = 0; r < kTileRows; ++r) {
      const __m512i xv = _mm512_set1_epi64(static_cast<long long>(x[r * words + k]));
      for (int64_t g = 0; g < kTileGroups; ++g) {
        acc[r][g] = _mm512_add_epi64(acc[r][g], _mm512_popcnt_epi64(_mm512_xor_si512(xv, wv[g])));
      }
    }
  }
  for (int64_t r = 0; r < kTileRows; ++r) {
    for (int64_t g = 0; g < kTileGroups; ++g) {
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(counts + r * kTileCols + g * kGroupRows), _mm512_cvtepi64_epi32(acc[r][g]));
    }
  }
}

// AVX2 has no vector popcount, so this uses the nibble lookup with _mm256_shuffle_epi8: per-byte
// counts add up in 8-bit lanes for at most 31 words (31 * 8 = 248 < 256) before
// _mm256_sad_epu8 widens them into 64-bit lanes.
SENSIMIX_TARGET_AVX2 void tile_avx2(const uint64_t* x, int64_t words, const uint64_t* w, int32_t* counts) {
  constexpr int64_t kMaxByteWords = 31;
  const __m256i lookup = _mm256_setr_epi8(
      0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t g = 0; g < kTileGroups; ++g) {
    const uint64_t* wg = w + g * words * kGroupRows;
    __m256i total[kTileRows][2];
    for (int64_t r = 0; r < kTileRows; ++r) {
      total[r][0] = zero;
      total[r][1] = zero;
    }
    for (int64_t k0 = 0; k0 < words; k0 += kMaxByteWords) {
      const int64_t k1 = std::min(words, k0 + kMaxByteWords);
      __m256i bytes[kTileRows][2];
      for (int64_t r = 0; r < kTileRows; ++r) {
        bytes[r][0] = zero;
        bytes[r][1] = zero;
      }
      for (int64_t k = k0; k < k1; ++k) {
        const __m256i w_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + k * kGroupRows));
        const __m256i w_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + k * kGroupRows + 4));
        for (int64_t r = 0; r < kTileRows; ++r) {
          const __m256i xv = _mm256_set1_epi64x(static_cast<long long>(x[r * words + k]));
          const __m256i d0 = _mm256_xor_si256(xv, w_low);
          const __m256i d1 = _mm256_xor_si256(xv, w_high);
          const __m256i c0 = _mm256_add_epi8(
              _mm256_shuffle_epi8(lookup, _mm256_and_si256(d0, low_nibble)),
              _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(d0, 4), low_nibble)));
          const __m256i c1 = _mm256_add_epi8(
              _mm256_shuffle_epi8(lookup, _mm256_and_si256(d1, low_nibble)),
              _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(d1, 4), low_nibble)));
          bytes[r][0] = _mm256_add_epi8(bytes[r][0], c0);
          bytes[r][1] = _mm256_add_epi8(bytes[r][1], c1);
        }
      }
      for (int64_t r = 0; r < kTileRows; ++r) {
        total[r][0] = _mm256_add_epi64(total[r][0], _mm256_sad_epu8(bytes[r][0], zero));
        total[r][1] = _mm256_add_epi64(total[r][1], _mm256_sad_epu8(bytes[r][1], zero));
      }
    }
    for (int64_t r = 0; r < kTileRows; ++r) {
      alignas(32) int64_t lanes[kGroupRows];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), total[r][1]);
      for (int64_t j = 0; j < kGroupRows; ++j) {
        counts[r * kTileCols + g * kGroupRows + j] = static_cast<int32_t>(lanes[j]);
      }
    }
  }
}
#endif  // SENSIMIX_X86

bool cpu_supports_avx2() {
#if SENSIMIX_X86
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("popcnt");
#else
  return false;
#endif
}

bool cpu_supports_avx512() {
#if SENSIMIX_X86
  return cpu_supports_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

std::vector<int64_t> supported_variants() {
  std::vector<int64_t> variants;
  if (cpu_supports_avx512()) {
    variants.push_back(kVariantAvx512);
  }
  if (cpu_supports_avx2()) {
    variants.push_back(kVariantAvx2);
  }
  variants.push_back(kVariantGeneric);
  return variants;
}

int64_t resolve_variant(int64_t variant) {
  if (variant == kVariantAuto) {
    return supported_variants().front();
  }
  const std::vector<int64_t> variants = supported_variants();
  TORCH_CHECK(
      std::find(variants.begin(), variants.end(), variant) != variants.end(),
      "XNOR kernel variant ", variant, " is not supported by this CPU; use 0 to pick the best supported one.");
  return variant;
}

// ---------------------------------------------------------------------------------------------
// Binarizing and packing the input rows into 64-bit words. Bit k of a row is set when x[k] >= 0,
// so -0.0 counts as +1 and NaN as -1. Bits past in_features stay 0.

template <typename scalar_t>
inline bool is_positive(scalar_t value) {
  using opmath_t = typename OpMath<scalar_t>::type;
  return static_cast<opmath_t>(value) >= opmath_t(0);
}

template <typename scalar_t>
void pack_row_generic(const scalar_t* src, int64_t in_features, uint64_t* dst, int64_t words) {
  for (int64_t word = 0; word < words; ++word) {
    const int64_t begin = word * kWordBits;
    const int64_t count = std::min(kWordBits, in_features - begin);
    uint64_t bits = 0;
    for (int64_t j = 0; j < count; ++j) {
      bits |= static_cast<uint64_t>(is_positive(src[begin + j])) << j;
    }
    dst[word] = bits;
  }
}

#if SENSIMIX_X86
SENSIMIX_TARGET_AVX2 inline __m256 load8_as_float(const float* src) {
  return _mm256_loadu_ps(src);
}

SENSIMIX_TARGET_AVX2 inline __m256 load8_as_float(const c10::Half* src) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
}

SENSIMIX_TARGET_AVX2 inline __m256 load8_as_float(const c10::BFloat16* src) {
  // A bfloat16 is the upper half of the float32 with the same value.
  const __m256i widened = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(widened, 16));
}

template <typename scalar_t>
SENSIMIX_TARGET_AVX2 void pack_row_avx2(const scalar_t* src, int64_t in_features, uint64_t* dst, int64_t words) {
  const __m256 zero = _mm256_setzero_ps();
  const int64_t full_words = in_features / kWordBits;
  for (int64_t word = 0; word < full_words; ++word) {
    const scalar_t* block = src + word * kWordBits;
    uint64_t bits = 0;
    for (int64_t part = 0; part < kWordBits / 8; ++part) {
      // _CMP_GE_OQ is false for NaN and true for -0.0, matching b(v).
      const __m256 positive = _mm256_cmp_ps(load8_as_float(block + part * 8), zero, _CMP_GE_OQ);
      bits |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_ps(positive))) << (part * 8);
    }
    dst[word] = bits;
  }
  if (full_words < words) {
    pack_row_generic(src + full_words * kWordBits, in_features - full_words * kWordBits, dst + full_words, 1);
  }
}
#endif  // SENSIMIX_X86

template <typename scalar_t>
void pack_row(const scalar_t* src, int64_t in_features, uint64_t* dst, int64_t words, int64_t variant) {
#if SENSIMIX_X86
  if constexpr (!std::is_same_v<scalar_t, double>) {
    if (variant != kVariantGeneric) {
      pack_row_avx2(src, in_features, dst, words);
      return;
    }
  }
#endif
  pack_row_generic(src, in_features, dst, words);
}

// Copies a row already packed as bytes (layout of pack_bits) and clears its padding bits.
void copy_packed_row(const uint8_t* src, int64_t in_features, uint64_t* dst, int64_t words) {
  const int64_t num_bytes = (in_features + 7) / 8;
  std::memset(dst, 0, static_cast<size_t>(words) * sizeof(uint64_t));
  std::memcpy(dst, src, static_cast<size_t>(num_bytes));
  const int64_t tail = in_features % kWordBits;
  if (tail != 0) {
    dst[words - 1] &= (uint64_t{1} << tail) - 1;
  }
}

// ---------------------------------------------------------------------------------------------

struct ProblemShape {
  int64_t rows;
  int64_t padded_rows;
  int64_t in_features;
  int64_t out_features;
  int64_t words;
  int64_t groups;
  int64_t padded_groups;
};

// Converts one tile of popcounts into outputs: rows [row0, row0 + kTileRows) and weight rows
// [col0, col0 + kTileCols), clipped to the real shape.
template <typename scalar_t, bool kBits>
void write_tile(
    const ProblemShape& shape,
    const int32_t* counts,
    int64_t row0,
    int64_t col0,
    const typename OpMath<scalar_t>::type* scale,
    const typename OpMath<scalar_t>::type* bias,
    scalar_t* out,
    uint8_t* out_bits) {
  using opmath_t = typename OpMath<scalar_t>::type;
  const int64_t rows = std::min(kTileRows, shape.rows - row0);
  const int64_t cols = std::min(kTileCols, shape.out_features - col0);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* row_counts = counts + r * kTileCols;
    opmath_t values[kTileCols];
    for (int64_t c = 0; c < kTileCols; ++c) {
      const opmath_t dot = static_cast<opmath_t>(shape.in_features - 2 * static_cast<int64_t>(row_counts[c]));
      values[c] = dot * scale[col0 + c] + bias[col0 + c];
    }
    if constexpr (kBits) {
      const int64_t group0 = col0 / kGroupRows;
      for (int64_t g = 0; g < kTileGroups && group0 + g < shape.groups; ++g) {
        uint32_t byte = 0;
        for (int64_t j = 0; j < kGroupRows && g * kGroupRows + j < cols; ++j) {
          // Rounding to the output dtype first keeps these bits equal to sign_bits() of the
          // float output, including values that round to -0.0.
          const scalar_t rounded = static_cast<scalar_t>(values[g * kGroupRows + j]);
          byte |= static_cast<uint32_t>(is_positive(rounded)) << j;
        }
        out_bits[(row0 + r) * shape.groups + group0 + g] = static_cast<uint8_t>(byte);
      }
    } else {
      scalar_t* out_row = out + (row0 + r) * shape.out_features + col0;
      for (int64_t c = 0; c < cols; ++c) {
        out_row[c] = static_cast<scalar_t>(values[c]);
      }
    }
  }
}

#if SENSIMIX_X86
// Vectorized tile writer for float32, float16 and bfloat16 outputs, with the same results as
// write_tile. Hardware float16 rounding (round to nearest even) matches c10::Half except for the
// payload bits of NaN.

SENSIMIX_TARGET_AVX2 inline __m256 tile_values_avx2(
    __m256i popcounts, __m256i in_features, const float* scale, const float* bias) {
  const __m256i dot = _mm256_sub_epi32(in_features, _mm256_slli_epi32(popcounts, 1));
  const __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(scale));
  return _mm256_add_ps(scaled, _mm256_loadu_ps(bias));
}

SENSIMIX_TARGET_AVX2 inline __m128i to_half_avx2(__m256 values) {
  return _mm256_cvtps_ph(values, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Same rounding as c10::BFloat16(float): round to nearest even, and every NaN becomes 0x7FC0.
SENSIMIX_TARGET_AVX2 inline __m256i to_bfloat16_lanes_avx2(__m256 values) {
  const __m256i bits = _mm256_castps_si256(values);
  const __m256i lowest_kept = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounding_bias = _mm256_add_epi32(lowest_kept, _mm256_set1_epi32(0x7FFF));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, rounding_bias), 16);
  const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(values, values, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), is_nan);
}

SENSIMIX_TARGET_AVX2 inline __m256 rounded_avx2(__m256 values, const float*) {
  return values;
}

SENSIMIX_TARGET_AVX2 inline __m256 rounded_avx2(__m256 values, const c10::Half*) {
  return _mm256_cvtph_ps(to_half_avx2(values));
}

SENSIMIX_TARGET_AVX2 inline __m256 rounded_avx2(__m256 values, const c10::BFloat16*) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(to_bfloat16_lanes_avx2(values), 16));
}

SENSIMIX_TARGET_AVX2 inline void store_avx2(float* dst, __m256 values) {
  _mm256_storeu_ps(dst, values);
}

SENSIMIX_TARGET_AVX2 inline void store_avx2(c10::Half* dst, __m256 values) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), to_half_avx2(values));
}

SENSIMIX_TARGET_AVX2 inline void store_avx2(c10::BFloat16* dst, __m256 values) {
  const __m256i lanes = to_bfloat16_lanes_avx2(values);
  // packus works per 128-bit half, so the permute gathers the eight 16-bit results into the low half.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lanes, lanes), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(packed));
}

// Writes the 8 values of weight group `group` in input row `row`: as outputs, or as one byte of
// sign bits of the outputs rounded to scalar_t. Float outputs must have 8 real columns here.
template <typename scalar_t, bool kBits>
SENSIMIX_TARGET_AVX2 inline void write_group_avx2(
    const ProblemShape& shape, __m256 values, int64_t row, int64_t group, scalar_t* out, uint8_t* out_bits) {
  if constexpr (kBits) {
    // _CMP_GE_OQ is false for NaN and true for -0.0, matching b(v) of the rounded output.
    const __m256 positive = _mm256_cmp_ps(rounded_avx2(values, out), _mm256_setzero_ps(), _CMP_GE_OQ);
    uint32_t byte = static_cast<uint32_t>(_mm256_movemask_ps(positive));
    const int64_t valid = shape.out_features - group * kGroupRows;
    if (valid < kGroupRows) {
      byte &= (uint32_t{1} << valid) - 1;
    }
    out_bits[row * shape.groups + group] = static_cast<uint8_t>(byte);
  } else {
    store_avx2(out + row * shape.out_features + group * kGroupRows, values);
  }
}

template <typename scalar_t, bool kBits>
SENSIMIX_TARGET_AVX2 void write_tile_avx2(
    const ProblemShape& shape,
    const int32_t* counts,
    int64_t row0,
    int64_t col0,
    const float* scale,
    const float* bias,
    scalar_t* out,
    uint8_t* out_bits) {
  const int64_t cols = std::min(kTileCols, shape.out_features - col0);
  if (!kBits && cols < kTileCols) {
    write_tile<scalar_t, kBits>(shape, counts, row0, col0, scale, bias, out, out_bits);
    return;
  }
  const int64_t rows = std::min(kTileRows, shape.rows - row0);
  const int64_t groups = std::min(kTileGroups, shape.groups - col0 / kGroupRows);
  const __m256i in_features = _mm256_set1_epi32(static_cast<int32_t>(shape.in_features));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t offset = g * kGroupRows;
      const __m256i popcounts = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(counts + r * kTileCols + offset));
      const __m256 values = tile_values_avx2(popcounts, in_features, scale + col0 + offset, bias + col0 + offset);
      write_group_avx2<scalar_t, kBits>(shape, values, row0 + r, col0 / kGroupRows + g, out, out_bits);
    }
  }
}

// tile_avx512 followed by write_tile_avx2 in one function, so that the popcounts stay in registers.
template <typename scalar_t, bool kBits>
SENSIMIX_TARGET_AVX512 void process_tile_avx512(
    const ProblemShape& shape,
    const uint64_t* x,
    const uint64_t* w,
    int64_t row0,
    int64_t col0,
    const float* scale,
    const float* bias,
    scalar_t* out,
    uint8_t* out_bits) {
  const int64_t words = shape.words;
  __m512i acc[kTileRows][kTileGroups];
  for (int64_t r = 0; r < kTileRows; ++r) {
    for (int64_t g = 0; g < kTileGroups; ++g) {
      acc[r][g] = _mm512_setzero_si512();
    }
  }
  for (int64_t k = 0; k < words; ++k) {
    __m512i wv[kTileGroups];
    for (int64_t g = 0; g < kTileGroups; ++g) {
      wv[g] = _mm512_loadu_si512(static_cast<const void*>(w + (g * words + k) * kGroupRows));
    }
    for (int64_t r = 0; r < kTileRows; ++r) {
      const __m512i xv = _mm512_set1_epi64(static_cast<long long>(x[r * words + k]));
      for (int64_t g = 0; g < kTileGroups; ++g) {
        acc[r][g] = _mm512_add_epi64(acc[r][g], _mm512_popcnt_epi64(_mm512_xor_si512(xv, wv[g])));
      }
    }
  }

  const int64_t cols = std::min(kTileCols, shape.out_features - col0);
  if (!kBits && cols < kTileCols) {
    alignas(64) int32_t counts[kTileRows * kTileCols];
    for (int64_t r = 0; r < kTileRows; ++r) {
      for (int64_t g = 0; g < kTileGroups; ++g) {
        _mm256_store_si256(
            reinterpret_cast<__m256i*>(counts + r * kTileCols + g * kGroupRows), _mm512_cvtepi64_epi32(acc[r][g]));
      }
    }
    write_tile<scalar_t, kBits>(shape, counts, row0, col0, scale, bias, out, out_bits);
    return;
  }
  const int64_t rows = std::min(kTileRows, shape.rows - row0);
  const int64_t groups = std::min(kTileGroups, shape.groups - col0 / kGroupRows);
  const __m256i in_features = _mm256_set1_epi32(static_cast<int32_t>(shape.in_features));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t offset = g * kGroupRows;
      const __m256i popcounts = _mm512_cvtepi64_epi32(acc[r][g]);
      const __m256 values = tile_values_avx2(popcounts, in_features, scale + col0 + offset, bias + col0 + offset);
      write_group_avx2<scalar_t, kBits>(shape, values, row0 + r, col0 / kGroupRows + g, out, out_bits);
    }
  }
}
#endif  // SENSIMIX_X86

// Computes and writes the tile of input rows [row0, row0 + kTileRows) and weight rows
// [col0, col0 + kTileCols). x and w point at the first row of each.
template <typename scalar_t, bool kBits>
using ProcessFn = void (*)(
    const ProblemShape&,
    const uint64_t*,
    const uint64_t*,
    int64_t,
    int64_t,
    const typename OpMath<scalar_t>::type*,
    const typename OpMath<scalar_t>::type*,
    scalar_t*,
    uint8_t*);

template <typename scalar_t, bool kBits>
using WriteFn = void (*)(
    const ProblemShape&,
    const int32_t*,
    int64_t,
    int64_t,
    const typename OpMath<scalar_t>::type*,
    const typename OpMath<scalar_t>::type*,
    scalar_t*,
    uint8_t*);

template <typename scalar_t, bool kBits, TileFn kTile, WriteFn<scalar_t, kBits> kWrite>
void process_tile_split(
    const ProblemShape& shape,
    const uint64_t* x,
    const uint64_t* w,
    int64_t row0,
    int64_t col0,
    const typename OpMath<scalar_t>::type* scale,
    const typename OpMath<scalar_t>::type* bias,
    scalar_t* out,
    uint8_t* out_bits) {
  alignas(64) int32_t counts[kTileRows * kTileCols];
  kTile(x, shape.words, w, counts);
  kWrite(shape, counts, row0, col0, scale, bias, out, out_bits);
}

template <typename scalar_t, bool kBits>
ProcessFn<scalar_t, kBits> process_function(int64_t variant) {
#if SENSIMIX_X86
  if constexpr (std::is_same_v<scalar_t, double>) {
    if (variant == kVariantAvx512) {
      return process_tile_split<scalar_t, kBits, tile_avx512, write_tile<scalar_t, kBits>>;
    }
    if (variant == kVariantAvx2) {
      return process_tile_split<scalar_t, kBits, tile_avx2, write_tile<scalar_t, kBits>>;
    }
  } else {
    if (variant == kVariantAvx512) {
      return process_tile_avx512<scalar_t, kBits>;
    }
    if (variant == kVariantAvx2) {
      return process_tile_split<scalar_t, kBits, tile_avx2, write_tile_avx2<scalar_t, kBits>>;
    }
  }
#endif
  return process_tile_split<scalar_t, kBits, tile_generic, write_tile<scalar_t, kBits>>;
}

template <typename scalar_t, bool kBits>
void run_product(
    const ProblemShape& shape,
    const uint64_t* x_words,
    const uint64_t* weight,
    const std::vector<typename OpMath<scalar_t>::type>& scale,
    const std::vector<typename OpMath<scalar_t>::type>& bias,
    int64_t variant,
    scalar_t* out,
    uint8_t* out_bits) {
  const ProcessFn<scalar_t, kBits> process = process_function<scalar_t, kBits>(variant);
  const int64_t row_blocks = shape.padded_rows / kTileRows;
  const int64_t tiles_per_row = shape.padded_groups / kTileGroups;
  const int64_t tile_weight_bytes = kTileCols * shape.words * static_cast<int64_t>(sizeof(uint64_t));
  int64_t tiles_per_chunk = std::clamp<int64_t>(kChunkBytes / tile_weight_bytes, 1, tiles_per_row);
  // Few input rows (for example one token) leave too few work items, so the weight is split finer.
  const int64_t wanted_items = 4 * static_cast<int64_t>(at::get_num_threads());
  const int64_t chunks_now = (tiles_per_row + tiles_per_chunk - 1) / tiles_per_chunk;
  if (row_blocks * chunks_now < wanted_items) {
    const int64_t chunks = std::min(tiles_per_row, (wanted_items + row_blocks - 1) / row_blocks);
    tiles_per_chunk = std::max<int64_t>(1, (tiles_per_row + chunks - 1) / chunks);
  }
  const int64_t chunks = (tiles_per_row + tiles_per_chunk - 1) / tiles_per_chunk;
  const int64_t items = chunks * row_blocks;

  // Items run chunk by chunk so that consecutive items on one thread reuse the same weight chunk.
  auto run_items = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item / row_blocks;
      const int64_t row0 = (item % row_blocks) * kTileRows;
      const int64_t tile_end = std::min(tiles_per_row, (chunk + 1) * tiles_per_chunk);
      for (int64_t t = chunk * tiles_per_chunk; t < tile_end; ++t) {
        const int64_t col0 = t * kTileCols;
        process(
            shape, x_words + row0 * shape.words, weight + col0 * shape.words, row0, col0, scale.data(), bias.data(),
            out, out_bits);
      }
    }
  };
  const int64_t threads = static_cast<int64_t>(at::get_num_threads());
  const int64_t work = items * tiles_per_chunk * kTileRows * kTileCols * shape.words;
  if (threads == 1 || work < 2 * kMinParallelWork) {
    run_items(0, items);
    return;
  }
  // Each thread takes small batches of items from a shared counter instead of a fixed share, so a
  // thread that the operating system delays does not hold up the others.
  const int64_t batch = std::max<int64_t>(1, items / (16 * threads));
  std::atomic<int64_t> next_item{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t begin = next_item.fetch_add(batch); begin < items; begin = next_item.fetch_add(batch)) {
      run_items(begin, std::min(items, begin + batch));
    }
  });
}

template <typename opmath_t>
std::vector<opmath_t> padded_vector(const std::optional<at::Tensor>& values, int64_t size, opmath_t fill, const char* name) {
  std::vector<opmath_t> padded(static_cast<size_t>(size), fill);
  if (values.has_value()) {
    const at::Tensor& tensor = *values;
    TORCH_CHECK(tensor.dim() == 1 && tensor.is_contiguous(), name, " must be a contiguous 1-d tensor");
    TORCH_CHECK(
        tensor.scalar_type() == c10::CppTypeToScalarType<opmath_t>::value, name, " must have dtype ",
        c10::CppTypeToScalarType<opmath_t>::value, ", got ", tensor.scalar_type());
    TORCH_CHECK(tensor.numel() <= size, name, " has ", tensor.numel(), " elements, more than ", size);
    std::copy(tensor.data_ptr<opmath_t>(), tensor.data_ptr<opmath_t>() + tensor.numel(), padded.begin());
  }
  return padded;
}

// x: floating [rows, in_features], or uint8 [rows, ceil(in_features / 8)] already packed.
// weight: int64 [padded_groups, words, kGroupRows], the prepared layout built by xnor_kernel.py.
// Returns out_dtype [rows, out_features], or uint8 [rows, ceil(out_features / 8)] sign bits.
at::Tensor xnor_linear(
    const at::Tensor& x,
    const at::Tensor& weight,
    int64_t in_features,
    int64_t out_features,
    const std::optional<at::Tensor>& scale,
    const std::optional<at::Tensor>& bias,
    bool bits_output,
    at::ScalarType out_dtype,
    int64_t variant) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), "xnor_linear (CPU) needs CPU tensors");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x must be a contiguous 2-d tensor");
  TORCH_CHECK(in_features >= 1 && in_features < (int64_t{1} << 30), "in_features out of range: ", in_features);
  TORCH_CHECK(out_features >= 1, "out_features must be positive, got ", out_features);
  const bool packed_input = x.scalar_type() == at::kByte;
  if (packed_input) {
    TORCH_CHECK(x.size(1) == (in_features + 7) / 8, "packed x must have ceil(in_features / 8) columns");
  } else {
    TORCH_CHECK(x.size(1) == in_features, "x must have in_features columns");
    TORCH_CHECK(x.scalar_type() == out_dtype, "out_dtype must equal the dtype of a floating x");
  }
  ProblemShape shape;
  shape.rows = x.size(0);
  shape.padded_rows = (shape.rows + kTileRows - 1) / kTileRows * kTileRows;
  shape.in_features = in_features;
  shape.out_features = out_features;
  shape.words = (in_features + kWordBits - 1) / kWordBits;
  shape.groups = (out_features + kGroupRows - 1) / kGroupRows;
  shape.padded_groups = weight.size(0);
  TORCH_CHECK(
      weight.scalar_type() == at::kLong && weight.dim() == 3 && weight.is_contiguous() &&
          weight.size(1) == shape.words && weight.size(2) == kGroupRows && shape.padded_groups % kTileGroups == 0 &&
          shape.padded_groups >= shape.groups,
      "weight is not in the prepared layout for in_features=", in_features, " and out_features=", out_features);
  const int64_t selected = resolve_variant(variant);

  at::Tensor out = bits_output ? at::empty({shape.rows, shape.groups}, x.options().dtype(at::kByte))
                               : at::empty({shape.rows, out_features}, x.options().dtype(out_dtype));
  if (shape.rows == 0) {
    return out;
  }

  at::Tensor x_words = at::empty({shape.padded_rows, shape.words}, x.options().dtype(at::kLong));
  uint64_t* words_ptr = reinterpret_cast<uint64_t*>(x_words.data_ptr<int64_t>());
  const int64_t pack_grain = std::max<int64_t>(1, kMinParallelWork / in_features);
  if (packed_input) {
    const uint8_t* src = x.data_ptr<uint8_t>();
    const int64_t stride = x.size(1);
    at::parallel_for(0, shape.rows, pack_grain, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        copy_packed_row(src + row * stride, in_features, words_ptr + row * shape.words, shape.words);
      }
    });
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "xnor_linear_pack", [&] {
      const scalar_t* src = x.data_ptr<scalar_t>();
      at::parallel_for(0, shape.rows, pack_grain, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          pack_row(src + row * in_features, in_features, words_ptr + row * shape.words, shape.words, selected);
        }
      });
    });
  }
  std::memset(
      words_ptr + shape.rows * shape.words, 0,
      static_cast<size_t>((shape.padded_rows - shape.rows) * shape.words) * sizeof(uint64_t));

  const uint64_t* weight_ptr = reinterpret_cast<const uint64_t*>(weight.data_ptr<int64_t>());
  const int64_t padded_cols = shape.padded_groups * kGroupRows;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out_dtype, "xnor_linear", [&] {
    using opmath_t = typename OpMath<scalar_t>::type;
    const std::vector<opmath_t> scale_padded = padded_vector<opmath_t>(scale, padded_cols, opmath_t(1), "scale");
    const std::vector<opmath_t> bias_padded = padded_vector<opmath_t>(bias, padded_cols, opmath_t(0), "bias");
    if (bits_output) {
      run_product<scalar_t, true>(
          shape, words_ptr, weight_ptr, scale_padded, bias_padded, selected, nullptr, out.data_ptr<uint8_t>());
    } else {
      run_product<scalar_t, false>(
          shape, words_ptr, weight_ptr, scale_padded, bias_padded, selected, out.data_ptr<scalar_t>(), nullptr);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(OPS_NAMESPACE_PLACEHOLDER, m) {
  m.def(
      "xnor_linear(Tensor x, Tensor weight, int in_features, int out_features, Tensor? scale, Tensor? bias, "
      "bool bits_output, ScalarType out_dtype, int variant) -> Tensor",
      &xnor_linear);
  m.def("supported_variants() -> int[]", &supported_variants);
}
"""

CUDA_BINDING_SOURCE = r"""
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <optional>

at::Tensor xnor_linear_cuda(
    const at::Tensor& x,
    const at::Tensor& weight,
    int64_t in_features,
    int64_t out_features,
    const std::optional<at::Tensor>& scale,
    const std::optional<at::Tensor>& bias,
    bool bits_output,
    at::ScalarType out_dtype);

TORCH_LIBRARY(OPS_NAMESPACE_PLACEHOLDER, m) {
  m.def(
      "xnor_linear(Tensor x, Tensor weight, int in_features, int out_features, Tensor? scale, Tensor? bias, "
      "bool bits_output, ScalarType out_dtype) -> Tensor",
      &xnor_linear_cuda);
}
"""

# NOTE: this CUDA source compiles with nvcc 13.0 for sm_80 but has not been run on a GPU yet. The CPU
# tests check only the backend selection for CUDA tensors and the int32 word layout it reads.
CUDA_SOURCE = r"""
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <optional>

namespace {

constexpr int kWarpSize = 32;
// One block computes kBlockRows input rows times kBlockCols weight rows (one warp per input row),
// staging kBlockWords 32-bit words of both operands in shared memory per step.
constexpr int kBlockRows = 8;
constexpr int kBlockCols = 32;
constexpr int kBlockWords = 32;
constexpr int kPackThreads = 256;

template <typename T>
struct OpMath {
  using type = float;
};
template <>
struct OpMath<double> {
  using type = double;
};

// Explicitly rounded operations, because nvcc would otherwise contract a * b + c into one fused
// multiply-add and differ from the CPU and reference results in the last bit.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// One warp packs one 32-bit word: lane j reads element 32 * word + j and __ballot_sync puts it in
// bit j, which is the little-endian layout of pack_bits.
template <typename scalar_t>
__global__ void pack_sign_bits_kernel(
    const scalar_t* __restrict__ x, int64_t rows, int64_t in_features, int64_t words, uint32_t* __restrict__ out) {
  using opmath_t = typename OpMath<scalar_t>::type;
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // The block size is a multiple of the warp size, so every lane of a warp gets the same word
  // and the whole warp returns together, as __ballot_sync with a full mask requires.
  const int64_t word = thread / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (word >= rows * words) {
    return;
  }
  const int64_t row = word / words;
  const int64_t k = (word % words) * kWarpSize + lane;
  bool positive = false;
  if (k < in_features) {
    positive = static_cast<opmath_t>(x[row * in_features + k]) >= opmath_t(0);
  }
  const uint32_t bits = __ballot_sync(0xffffffffu, positive);
  if (lane == 0) {
    out[word] = bits;
  }
}

template <typename scalar_t, bool kBits>
__global__ void xnor_product_kernel(
    const uint32_t* __restrict__ x,
    const uint32_t* __restrict__ weight,
    int64_t rows,
    int64_t in_features,
    int64_t out_features,
    int64_t words,
    const typename OpMath<scalar_t>::type* __restrict__ scale,
    const typename OpMath<scalar_t>::type* __restrict__ bias,
    scalar_t* __restrict__ out,
    uint8_t* __restrict__ out_bits) {
  using opmath_t = typename OpMath<scalar_t>::type;
  __shared__ uint32_t x_tile[kBlockRows][kBlockWords];
  // The extra column keeps the 32 lanes reading w_tile[lane][c] in 32 different banks.
  __shared__ uint32_t w_tile[kBlockCols][kBlockWords + 1];

  const int tx = static_cast<int>(threadIdx.x);
  const int ty = static_cast<int>(threadIdx.y);
  const int tid = ty * kBlockCols + tx;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBlockRows;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kBlockCols;
  const int64_t row = row0 + ty;
  const int64_t col = col0 + tx;

  int popcount = 0;
  for (int64_t word0 = 0; word0 < words; word0 += kBlockWords) {
    for (int i = tid; i < kBlockRows * kBlockWords; i += kBlockRows * kBlockCols) {
      const int r = i / kBlockWords;
      const int c = i % kBlockWords;
      const bool inside = row0 + r < rows && word0 + c < words;
      x_tile[r][c] = inside ? x[(row0 + r) * words + word0 + c] : 0u;
    }
    for (int i = tid; i < kBlockCols * kBlockWords; i += kBlockRows * kBlockCols) {
      const int r = i / kBlockWords;
      const int c = i % kBlockWords;
      const bool inside = col0 + r < out_features && word0 + c < words;
      w_tile[r][c] = inside ? weight[(col0 + r) * words + word0 + c] : 0u;
    }
    __syncthreads();
    const int64_t remaining = words - word0;
    const int count = remaining < kBlockWords ? static_cast<int>(remaining) : kBlockWords;
    for (int c = 0; c < count; ++c) {
      popcount += __popc(x_tile[ty][c] ^ w_tile[tx][c]);
    }
    __syncthreads();
  }

  const bool valid = row < rows && col < out_features;
  opmath_t value = opmath_t(0);
  if (valid) {
    value = static_cast<opmath_t>(in_features - 2 * static_cast<int64_t>(popcount));
    if (scale != nullptr) {
      value = mul_rn(value, scale[col]);
    }
    if (bias != nullptr) {
      value = add_rn(value, bias[col]);
    }
  }
  if constexpr (kBits) {
    // Lane tx holds weight row col0 + tx, so the ballot is 32 consecutive output bits, and bit j
    // of byte b is output column col0 + 8 * b + j as in pack_bits.
    const bool positive = valid && static_cast<opmath_t>(static_cast<scalar_t>(value)) >= opmath_t(0);
    const uint32_t bits = __ballot_sync(0xffffffffu, positive);
    if (tx == 0 && row < rows) {
      const int64_t out_bytes = (out_features + 7) / 8;
      const int64_t byte0 = col0 / 8;
      for (int b = 0; b < kBlockCols / 8 && byte0 + b < out_bytes; ++b) {
        out_bits[row * out_bytes + byte0 + b] = static_cast<uint8_t>((bits >> (8 * b)) & 0xffu);
      }
    }
  } else if (valid) {
    out[row * out_features + col] = static_cast<scalar_t>(value);
  }
}

template <typename T>
const T* optional_data(const std::optional<at::Tensor>& tensor) {
  return tensor.has_value() ? tensor->data_ptr<T>() : nullptr;
}

}  // namespace

// x: floating [rows, in_features], or int32 [rows, ceil(in_features / 32)] packed words.
// weight: int32 [out_features, ceil(in_features / 32)] with the padding bits cleared.
at::Tensor xnor_linear_cuda(
    const at::Tensor& x,
    const at::Tensor& weight,
    int64_t in_features,
    int64_t out_features,
    const std::optional<at::Tensor>& scale,
    const std::optional<at::Tensor>& bias,
    bool bits_output,
    at::ScalarType out_dtype) {
  TORCH_CHECK(x.is_cuda() && weight.is_cuda(), "xnor_linear (CUDA) needs CUDA tensors");
  TORCH_CHECK(x.device() == weight.device(), "x and weight must be on the same device");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "x must be a contiguous 2-d tensor");
  TORCH_CHECK(in_features >= 1 && out_features >= 1, "in_features and out_features must be positive");
  const int64_t words = (in_features + kWarpSize - 1) / kWarpSize;
  TORCH_CHECK(
      weight.scalar_type() == at::kInt && weight.dim() == 2 && weight.is_contiguous() &&
          weight.size(0) == out_features && weight.size(1) == words,
      "weight is not in the prepared CUDA layout for in_features=", in_features, " and out_features=", out_features);
  TORCH_CHECK(out_features <= int64_t{65535} * kBlockCols, "out_features is too large for the grid: ", out_features);
  const c10::cuda::CUDAGuard device_guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t rows = x.size(0);

  at::Tensor out = bits_output ? at::empty({rows, (out_features + 7) / 8}, x.options().dtype(at::kByte))
                               : at::empty({rows, out_features}, x.options().dtype(out_dtype));
  if (rows == 0) {
    return out;
  }

  at::Tensor x_words;
  if (x.scalar_type() == at::kInt) {
    TORCH_CHECK(x.size(1) == words, "packed x must have ceil(in_features / 32) columns");
    x_words = x;
  } else {
    TORCH_CHECK(x.size(1) == in_features, "x must have in_features columns");
    TORCH_CHECK(x.scalar_type() == out_dtype, "out_dtype must equal the dtype of a floating x");
    x_words = at::empty({rows, words}, x.options().dtype(at::kInt));
    const int64_t threads = rows * words * kWarpSize;
    const int64_t blocks = (threads + kPackThreads - 1) / kPackThreads;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "xnor_pack_cuda", [&] {
      pack_sign_bits_kernel<scalar_t><<<static_cast<unsigned int>(blocks), kPackThreads, 0, stream>>>(
          x.data_ptr<scalar_t>(), rows, in_features, words, reinterpret_cast<uint32_t*>(x_words.data_ptr<int32_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  const dim3 block(kBlockCols, kBlockRows);
  const dim3 grid(
      static_cast<unsigned int>((rows + kBlockRows - 1) / kBlockRows),
      static_cast<unsigned int>((out_features + kBlockCols - 1) / kBlockCols));
  const uint32_t* x_ptr = reinterpret_cast<const uint32_t*>(x_words.data_ptr<int32_t>());
  const uint32_t* w_ptr = reinterpret_cast<const uint32_t*>(weight.data_ptr<int32_t>());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out_dtype, "xnor_linear_cuda", [&] {
    using opmath_t = typename OpMath<scalar_t>::type;
    for (const std::optional<at::Tensor>* values : {&scale, &bias}) {
      if (values->has_value()) {
        const at::Tensor& tensor = **values;
        TORCH_CHECK(
            tensor.is_cuda() && tensor.device() == x.device() && tensor.dim() == 1 && tensor.is_contiguous() &&
                tensor.numel() == out_features && tensor.scalar_type() == c10::CppTypeToScalarType<opmath_t>::value,
            "scale and bias must be contiguous [out_features] tensors of the accumulation dtype on x's device");
      }
    }
    if (bits_output) {
      xnor_product_kernel<scalar_t, true><<<grid, block, 0, stream>>>(
          x_ptr, w_ptr, rows, in_features, out_features, words, optional_data<opmath_t>(scale),
          optional_data<opmath_t>(bias), nullptr, out.data_ptr<uint8_t>());
    } else {
      xnor_product_kernel<scalar_t, false><<<grid, block, 0, stream>>>(
          x_ptr, w_ptr, rows, in_features, out_features, words, optional_data<opmath_t>(scale),
          optional_data<opmath_t>(bias), out.data_ptr<scalar_t>(), nullptr);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}
"""

__all__ = ["CPU_SOURCE", "CUDA_BINDING_SOURCE", "CUDA_SOURCE", "NAMESPACE_PLACEHOLDER"]
