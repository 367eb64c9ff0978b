// Thin wrappers over infiniop operators, one call per operator, with a descriptor cache keyed by everything
// that defines the descriptor (dtypes, shapes, strides, epsilon, algorithm) and one shared workspace.
#pragma once

#include "tensor.hpp"

#include <infiniop.h>

#include <functional>
#include <list>
#include <string>
#include <unordered_map>

namespace iq3 {

class Ops {
public:
    Ops(infiniDevice_t device, int device_id);
    ~Ops();
    Ops(const Ops &) = delete;
    Ops &operator=(const Ops &) = delete;

    // c = alpha * a @ b + beta * c  (batched when 3-D)
    void gemm(const Tensor &c, const Tensor &a, const Tensor &b, float alpha = 1.0f, float beta = 0.0f);
    // c = alpha * a @ dequant(b)^T + beta * c with b [n, k] 8-bit (I8 int8, U8 FP8 E4M3) and F32 scales
    // [n, ceil(k / block_k)] (patch 0024)
    void weightOnlyGemm(const Tensor &c, const Tensor &a, const Tensor &b, const Tensor &scales,
                        infiniopWeightFormat_t format, size_t block_k, float alpha = 1.0f, float beta = 0.0f);
    void rmsnorm(const Tensor &y, const Tensor &x, const Tensor &w, float epsilon);
    void rope(const Tensor &y, const Tensor &x, const Tensor &pos_ids, const Tensor &sin_table,
              const Tensor &cos_table, infiniopRoPEAlgo_t algo);
    // softmax over the last dim with the causal mask of a [.., seq, total] score tensor (total >= seq)
    void causalSoftmax(const Tensor &y, const Tensor &x);
    // out = silu(in[:, :d]) * in[:, d:] for a fused [gate; up] input [rows, 2d] (patch 0013; capturable)
    void siluAndMul(const Tensor &out, const Tensor &in);
    // strided copy dst <- src
    void rearrange(const Tensor &dst, const Tensor &src);
    // out[t] = table[ids[t]] with the ids in device memory (patch 0010)
    void embedding(const Tensor &out, const Tensor &ids, const Tensor &table);
    // One draw per row of logits [rows, vocab] into result [rows] (I64); the per-row parameters are device arrays
    // of at least `rows` entries (patch 0011: F32 softmax and scan on every backend).
    void randomSampleBatch(const Tensor &result, const Tensor &logits, const float *random, const float *topp,
                           const int *topk, const float *temperature);
    // Paged KV cache (InfiniCore patch 0009): caches [blocks, kv_heads, block_size, head_dim], I64 indices.
    void pagedCaching(const Tensor &k_cache, const Tensor &v_cache, const Tensor &k, const Tensor &v,
                      const Tensor &slot_mapping);
    // One query row per sequence (decode).
    void pagedAttention(const Tensor &out, const Tensor &q, const Tensor &k_cache, const Tensor &v_cache,
                        const Tensor &block_tables, const Tensor &seq_lens, float scale);
    // Several new rows per sequence, causal over past + new.
    void pagedAttentionPrefill(const Tensor &out, const Tensor &q, const Tensor &k_cache, const Tensor &v_cache,
                               const Tensor &block_tables, const Tensor &seq_lens, const Tensor &new_lens,
                               float scale);

    void copyToDevice(void *dst, const void *src, size_t bytes);
    void copyToHost(void *dst, const void *src, size_t bytes);
    void copyOnDevice(void *dst, const void *src, size_t bytes);
    void synchronize();

    infinirtStream_t stream() const { return stream_; }
    const void *workspaceData() const { return workspace_.data(); } // a captured step records this address
    void activate() const; // make this device current for the calling thread

private:
    struct Cached {
        void *desc;
        size_t workspace;
        void (*destroy)(void *);
        std::list<std::string>::iterator recency; // its place in recency_
    };
    using Creator = std::function<void *(size_t *workspace)>;
    const Cached &cached(const std::string &key, const Creator &create, void (*destroy)(void *));
    void *workspace(size_t bytes);

    infiniDevice_t device_;
    int device_id_;
    infiniopHandle_t handle_ = nullptr;
    infinirtStream_t stream_ = nullptr;
    DeviceBuffer workspace_;
    // Descriptors by key, at most kMaxDescriptors: prompt chunks of ever new lengths would otherwise grow the cache
    // for as long as a server runs. The least recently used one is destroyed first.
    static constexpr size_t kMaxDescriptors = 4096;
    std::unordered_map<std::string, Cached> cache_;
    std::list<std::string> recency_; // most recently used first
};

// An InfiniCore tensor descriptor that is destroyed with its scope.
class TensorDesc {
public:
    explicit TensorDesc(const Tensor &t);
    ~TensorDesc();
    TensorDesc(const TensorDesc &) = delete;
    TensorDesc &operator=(const TensorDesc &) = delete;
    operator infiniopTensorDescriptor_t() const { return desc_; }

private:
    infiniopTensorDescriptor_t desc_ = nullptr;
};

} // namespace iq3
