// Host-side dtype sizes and conversions (f32 <-> f16 / bf16 with round-to-nearest-even, as torch does).
#pragma once

#include <infinicore.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace iq3 {

size_t dtypeSize(infiniDtype_t dtype);
const char *dtypeName(infiniDtype_t dtype);
bool isFloatDtype(infiniDtype_t dtype);

float halfToFloat(uint16_t bits);
uint16_t floatToHalf(float value);
float bf16ToFloat(uint16_t bits);
uint16_t floatToBf16(float value);

// Converts n elements of src (dtype from) into dst (dtype to); both are host memory.
void convertHost(void *dst, infiniDtype_t to, const void *src, infiniDtype_t from, size_t n);

} // namespace iq3
