#include "tensor.hpp"

#include "error.hpp"

#include <utility>

namespace iq3 {

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

void DeviceBuffer::grow(size_t bytes) {
    if (bytes <= bytes_) {
        return;
    }
    release();
    void *p = nullptr;
    if (infinirtMalloc(&p, bytes) != INFINI_STATUS_SUCCESS || p == nullptr) {
        fail(IQ3_ERR_OUT_OF_MEMORY, "device allocation of " + std::to_string(bytes) + " bytes failed");
    }
    data_ = p;
    bytes_ = bytes;
}

void DeviceBuffer::release() {
    if (data_ != nullptr) {
        infinirtFree(data_); // nothing useful can be done with a failure while freeing
        data_ = nullptr;
        bytes_ = 0;
    }
}

Tensor Tensor::contiguous(void *data, infiniDtype_t dtype, std::vector<size_t> shape) {
    Tensor t;
    t.data = data;
    t.dtype = dtype;
    t.strides.assign(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) {
        t.strides[i - 1] = t.strides[i] * ptrdiff_t(shape[i]);
    }
    t.shape = std::move(shape);
    return t;
}

size_t Tensor::numel() const {
    size_t n = 1;
    for (size_t d : shape) {
        n *= d;
    }
    return n;
}

bool Tensor::isContiguous() const {
    ptrdiff_t expected = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        if (shape[i] != 1 && strides[i] != expected) {
            return false;
        }
        expected *= ptrdiff_t(shape[i]);
    }
    return true;
}

Tensor Tensor::slice(size_t dim, size_t start, size_t length) const {
    if (dim >= ndim() || start + length > shape[dim]) {
        fail(IQ3_ERR_INTERNAL, "slice out of range on " + signature());
    }
    Tensor t = *this;
    t.data = static_cast<char *>(data) + ptrdiff_t(start) * strides[dim] * ptrdiff_t(dtypeSize(dtype));
    t.shape[dim] = length;
    return t;
}

Tensor Tensor::permute(const std::vector<size_t> &order) const {
    if (order.size() != ndim()) {
        fail(IQ3_ERR_INTERNAL, "permute rank mismatch on " + signature());
    }
    Tensor t = *this;
    for (size_t i = 0; i < order.size(); i++) {
        t.shape[i] = shape[order[i]];
        t.strides[i] = strides[order[i]];
    }
    return t;
}

Tensor Tensor::view(std::vector<size_t> new_shape) const {
    Tensor t = contiguous(data, dtype, std::move(new_shape));
    if (!isContiguous() || t.numel() != numel()) {
        fail(IQ3_ERR_INTERNAL, "view needs a contiguous tensor of the same size: " + signature());
    }
    return t;
}

Tensor Tensor::split(size_t dim, const std::vector<size_t> &sizes) const {
    size_t product = 1;
    for (size_t s : sizes) {
        product *= s;
    }
    if (dim >= ndim() || product != shape[dim]) {
        fail(IQ3_ERR_INTERNAL, "split does not match dimension on " + signature());
    }
    Tensor t;
    t.data = data;
    t.dtype = dtype;
    for (size_t i = 0; i < ndim(); i++) {
        if (i != dim) {
            t.shape.push_back(shape[i]);
            t.strides.push_back(strides[i]);
            continue;
        }
        ptrdiff_t stride = strides[i] * ptrdiff_t(product);
        for (size_t s : sizes) {
            stride /= ptrdiff_t(s);
            t.shape.push_back(s);
            t.strides.push_back(stride);
        }
    }
    return t;
}

// Plain string building, no iostreams: with InfiniCore's NVIDIA libraries loaded, `ostream << long` crashed
// (they carry their own copy of parts of libstdc++; see the README's issue log).
std::string Tensor::signature() const {
    std::string out = std::string(dtypeName(dtype)) + std::to_string(int(dtype)) + "[";
    for (size_t i = 0; i < ndim(); i++) {
        out += std::to_string(shape[i]) + ":" + std::to_string(strides[i]) + (i + 1 < ndim() ? "," : "");
    }
    return out + "]";
}

} // namespace iq3
