#include "trace.hpp"

namespace iq3 {

void Trace::record(Ops &ops, const std::string &name, const Tensor &tensor) {
    if (!enabled) {
        return;
    }
    const size_t n = tensor.numel();
    const size_t bytes = n * dtypeSize(tensor.dtype);
    staging_.grow(bytes);
    auto packed = Tensor::contiguous(staging_.data(), tensor.dtype, tensor.shape);
    ops.rearrange(packed, tensor);
    std::vector<char> raw(bytes);
    ops.copyToHost(raw.data(), staging_.data(), bytes);
    TraceEntry entry{prefix + name, {tensor.shape.begin(), tensor.shape.end()}, std::vector<float>(n)};
    convertHost(entry.data.data(), INFINI_DTYPE_F32, raw.data(), tensor.dtype, n);
    entries_.push_back(std::move(entry));
}

} // namespace iq3
