// Device memory (DeviceBuffer) and zero-copy strided views over it (Tensor), as jiuge expresses attention.
#pragma once

#include "dtype.hpp"

#include <infinirt.h>

#include <cstddef>
#include <string>
#include <vector>

namespace iq3 {

// Owns one device allocation; grows on demand (contents are not preserved by grow()).
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) { grow(bytes); }
    ~DeviceBuffer();
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    DeviceBuffer(DeviceBuffer &&other) noexcept;
    DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;

    void grow(size_t bytes); // ensures capacity >= bytes
    void *data() const { return data_; }

private:
    void release();
    void *data_ = nullptr;
    size_t bytes_ = 0;
};

// A strided view: shape and strides in elements, data points at element [0, ..., 0].
struct Tensor {
    void *data = nullptr;
    infiniDtype_t dtype = INFINI_DTYPE_INVALID;
    std::vector<size_t> shape;
    std::vector<ptrdiff_t> strides;

    static Tensor contiguous(void *data, infiniDtype_t dtype, std::vector<size_t> shape);

    size_t ndim() const { return shape.size(); }
    size_t numel() const;
    bool isContiguous() const;
    // Narrow dimension dim to [start, start + length).
    Tensor slice(size_t dim, size_t start, size_t length) const;
    // Reorder dimensions: result dim i is this tensor's dim order[i].
    Tensor permute(const std::vector<size_t> &order) const;
    // Reinterpret a contiguous tensor with a new shape of the same element count.
    Tensor view(std::vector<size_t> new_shape) const;
    // Split dimension dim into the given sizes (their product must equal the dimension).
    Tensor split(size_t dim, const std::vector<size_t> &sizes) const;
    // Key of everything that defines an InfiniCore descriptor for this tensor (not the data pointer).
    std::string signature() const;
};

} // namespace iq3
