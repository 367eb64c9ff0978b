// A fixed pool of KV-cache slots: per layer, K and V of shape [slots, tokens_per_slot, kv_heads, head_dim].
// Requests borrow a slot (the caller decides which); a slot never grows past tokens_per_slot.
#pragma once

#include "tensor.hpp"

#include <vector>

namespace iq3 {

class KvCache {
public:
    KvCache(size_t layers, size_t slots, size_t tokens_per_slot, size_t kv_heads, size_t head_dim,
            infiniDtype_t dtype);

    // [length, kv_heads, head_dim] view of positions [start, start + length) of a slot.
    Tensor keys(size_t layer, size_t slot, size_t start, size_t length) const;
    Tensor values(size_t layer, size_t slot, size_t start, size_t length) const;

    size_t slots() const { return slots_; }
    size_t tokensPerSlot() const { return tokens_per_slot_; }

private:
    Tensor view(const DeviceBuffer &buffer, size_t slot, size_t start, size_t length) const;

    size_t slots_, tokens_per_slot_, kv_heads_, head_dim_;
    infiniDtype_t dtype_;
    std::vector<DeviceBuffer> k_, v_;
};

} // namespace iq3
