// IEEE binary16 and bfloat16 <-> float conversion in portable C++ (no compiler extensions), so the
// CPU extension builds with any C++17 compiler on any architecture.
#pragma once
#include <cstdint>
#include <cstring>

namespace steerkit {

struct half_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float to_float(bf16_t v) { return bits_to_float(uint32_t(v.bits) << 16); }

inline bf16_t bf16_from_float(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{uint16_t((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return bf16_t{uint16_t(u >> 16)};
}

inline float to_float(half_t v) {
  uint32_t sign = uint32_t(v.bits & 0x8000u) << 16;
  uint32_t exp = (v.bits >> 10) & 0x1fu;
  uint32_t man = v.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    // subnormal: value = man * 2^-24
    float f = float(man) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

inline half_t half_from_float(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return half_t{uint16_t(sign | 0x7e00u)};  // NaN
  if (au >= 0x477ff000u) return half_t{uint16_t(sign | 0x7c00u)};  // overflow (>= 65520) -> inf
  if (au < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    // scale to units of 2^-24 and round half to even via the float adder
    float a = bits_to_float(au) * 16777216.0f;  // * 2^24
    float r = a + 8388608.0f - 8388608.0f;      // round to integer, ties to even
    return half_t{uint16_t(sign | uint16_t(r))};
  }
  uint32_t mant_odd = (au >> 13) & 1u;
  au += 0xfffu + mant_odd;  // round to nearest even at bit 13
  au -= 112u << 23;         // rebias exponent 127 -> 15
  return half_t{uint16_t(sign | uint16_t(au >> 13))};
}

template <typename T> struct Conv;
template <> struct Conv<float> {
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
template <> struct Conv<double> {
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};
template <> struct Conv<half_t> {
  static float load(half_t v) { return to_float(v); }
  static half_t store(float v) { return half_from_float(v); }
};
template <> struct Conv<bf16_t> {
  static float load(bf16_t v) { return to_float(v); }
  static bf16_t store(float v) { return bf16_from_float(v); }
};

}  // namespace steerkit
