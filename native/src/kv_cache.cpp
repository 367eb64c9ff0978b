#include "kv_cache.hpp"

#include "error.hpp"

namespace iq3 {

KvCache::KvCache(size_t layers, size_t slots, size_t tokens_per_slot, size_t kv_heads, size_t head_dim,
                 infiniDtype_t dtype)
    : slots_(slots), tokens_per_slot_(tokens_per_slot), kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype) {
    const size_t bytes = slots * tokens_per_slot * kv_heads * head_dim * dtypeSize(dtype);
    for (size_t i = 0; i < layers; i++) {
        k_.emplace_back(bytes);
        v_.emplace_back(bytes);
    }
}

Tensor KvCache::view(const DeviceBuffer &buffer, size_t slot, size_t start, size_t length) const {
    if (slot >= slots_ || start + length > tokens_per_slot_) {
        fail(IQ3_ERR_CAPACITY, "KV slot " + std::to_string(slot) + " positions [" + std::to_string(start) + ", " +
                                   std::to_string(start + length) + ") exceed its capacity of " +
                                   std::to_string(tokens_per_slot_) + " tokens");
    }
    auto all = Tensor::contiguous(buffer.data(), dtype_, {slots_, tokens_per_slot_, kv_heads_, head_dim_});
    auto one = all.slice(0, slot, 1).slice(1, start, length);
    return Tensor{one.data, dtype_, {length, kv_heads_, head_dim_}, {one.strides[1], one.strides[2], one.strides[3]}};
}

Tensor KvCache::keys(size_t layer, size_t slot, size_t start, size_t length) const {
    return view(k_.at(layer), slot, start, length);
}

Tensor KvCache::values(size_t layer, size_t slot, size_t start, size_t length) const {
    return view(v_.at(layer), slot, start, length);
}

} // namespace iq3
