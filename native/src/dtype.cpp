#include "dtype.hpp"

#include "error.hpp"

#include <cmath>
#include <cstring>

namespace iq3 {

size_t dtypeSize(infiniDtype_t dtype) {
    switch (dtype) {
    case INFINI_DTYPE_I8:
    case INFINI_DTYPE_U8: return 1;
    case INFINI_DTYPE_F16:
    case INFINI_DTYPE_BF16:
    case INFINI_DTYPE_I16:
    case INFINI_DTYPE_U16: return 2;
    case INFINI_DTYPE_F32:
    case INFINI_DTYPE_I32:
    case INFINI_DTYPE_U32: return 4;
    case INFINI_DTYPE_I64:
    case INFINI_DTYPE_U64:
    case INFINI_DTYPE_F64: return 8;
    default: fail(IQ3_ERR_INVALID_ARGUMENT, "unsupported dtype " + std::to_string(int(dtype)));
    }
}

const char *dtypeName(infiniDtype_t dtype) {
    switch (dtype) {
    case INFINI_DTYPE_F16: return "f16";
    case INFINI_DTYPE_BF16: return "bf16";
    case INFINI_DTYPE_F32: return "f32";
    default: return "other";
    }
}

bool isFloatDtype(infiniDtype_t dtype) {
    return dtype == INFINI_DTYPE_F16 || dtype == INFINI_DTYPE_BF16 || dtype == INFINI_DTYPE_F32;
}

float halfToFloat(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { // subnormal: normalise
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400) == 0) {
                mantissa <<= 1;
                exponent--;
            }
            mantissa &= 0x3ff;
            bits = sign | (exponent << 23) | (mantissa << 13);
        }
    } else if (exponent == 0x1f) {
        bits = sign | 0x7f800000 | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t floatToHalf(float value) {
    uint32_t x;
    std::memcpy(&x, &value, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7fffffff;
    if (abs >= 0x7f800000) { // inf or nan
        return uint16_t(sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0));
    }
    if (abs >= 0x477ff000) { // rounds to >= 65520: overflow to inf
        return uint16_t(sign | 0x7c00);
    }
    if (abs < 0x38800000) { // below the smallest normal half: subnormal or zero
        float f;
        std::memcpy(&f, &abs, 4);
        // scale so that the subnormal unit is 1, then round to nearest even
        float scaled = f * 16777216.0f; // 2^24
        uint32_t m = uint32_t(std::nearbyint(scaled));
        return uint16_t(sign | m);
    }
    uint32_t exponent = ((abs >> 23) - 127 + 15);
    uint32_t mantissa = abs & 0x7fffff;
    uint32_t h = (exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) {
        h++;
    }
    return uint16_t(sign | h);
}

float bf16ToFloat(uint16_t bits) {
    uint32_t x = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

uint16_t floatToBf16(float value) {
    uint32_t x;
    std::memcpy(&x, &value, 4);
    if ((x & 0x7fffffff) > 0x7f800000) {
        return uint16_t((x >> 16) | 0x40); // quiet nan
    }
    uint32_t rounding = 0x7fff + ((x >> 16) & 1);
    return uint16_t((x + rounding) >> 16);
}

namespace {

float loadFloat(const void *src, infiniDtype_t dtype, size_t i) {
    switch (dtype) {
    case INFINI_DTYPE_F32: return static_cast<const float *>(src)[i];
    case INFINI_DTYPE_F16: return halfToFloat(static_cast<const uint16_t *>(src)[i]);
    case INFINI_DTYPE_BF16: return bf16ToFloat(static_cast<const uint16_t *>(src)[i]);
    default: fail(IQ3_ERR_INVALID_ARGUMENT, "cannot convert from dtype " + std::to_string(int(dtype)));
    }
}

void storeFloat(void *dst, infiniDtype_t dtype, size_t i, float value) {
    switch (dtype) {
    case INFINI_DTYPE_F32: static_cast<float *>(dst)[i] = value; return;
    case INFINI_DTYPE_F16: static_cast<uint16_t *>(dst)[i] = floatToHalf(value); return;
    case INFINI_DTYPE_BF16: static_cast<uint16_t *>(dst)[i] = floatToBf16(value); return;
    default: fail(IQ3_ERR_INVALID_ARGUMENT, "cannot convert to dtype " + std::to_string(int(dtype)));
    }
}

} // namespace

void convertHost(void *dst, infiniDtype_t to, const void *src, infiniDtype_t from, size_t n) {
    if (to == from) {
        std::memcpy(dst, src, n * dtypeSize(to));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        storeFloat(dst, to, i, loadFloat(src, from, i));
    }
}

} // namespace iq3
