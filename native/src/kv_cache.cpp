#include "kv_cache.hpp"

namespace iq3 {

KvCache::KvCache(size_t layers, size_t blocks, size_t block_size, size_t kv_heads, size_t head_dim,
                 infiniDtype_t dtype)
    : blocks_(blocks), block_size_(block_size), kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype) {
    const size_t bytes = blocks * kv_heads * block_size * head_dim * dtypeSize(dtype);
    for (size_t i = 0; i < layers; i++) {
        k_.emplace_back(bytes);
        v_.emplace_back(bytes);
    }
}

Tensor KvCache::pool(const DeviceBuffer &buffer) const {
    return Tensor::contiguous(buffer.data(), dtype_, {blocks_, kv_heads_, block_size_, head_dim_});
}

Tensor KvCache::keys(size_t layer) const { return pool(k_.at(layer)); }

Tensor KvCache::values(size_t layer) const { return pool(v_.at(layer)); }

} // namespace iq3
