// The paged KV cache: per layer, K and V pools of fixed-size blocks, [blocks, kv_heads, block_size, head_dim]
// (the layout of InfiniCore's paged_caching / paged_attention). Which block belongs to which request is the
// caller's business (block tables in each step); the cache only owns the memory.
#pragma once

#include "tensor.hpp"

#include <vector>

namespace iq3 {

class KvCache {
public:
    KvCache(size_t layers, size_t blocks, size_t block_size, size_t kv_heads, size_t head_dim, infiniDtype_t dtype);

    Tensor keys(size_t layer) const;
    Tensor values(size_t layer) const;

private:
    Tensor pool(const DeviceBuffer &buffer) const;

    size_t blocks_, block_size_, kv_heads_, head_dim_;
    infiniDtype_t dtype_;
    std::vector<DeviceBuffer> k_, v_;
};

} // namespace iq3
