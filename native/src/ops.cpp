#include "ops.hpp"

#include "error.hpp"

namespace iq3 {

TensorDesc::TensorDesc(const Tensor &t) {
    IQ3_INFINI(infiniopCreateTensorDescriptor(&desc_, t.ndim(), t.shape.data(), t.strides.data(), t.dtype));
}

TensorDesc::~TensorDesc() {
    if (desc_ != nullptr) {
        infiniopDestroyTensorDescriptor(desc_);
    }
}

Ops::Ops(infiniDevice_t device, int device_id) : device_(device), device_id_(device_id) {
    activate();
    IQ3_INFINI(infiniopCreateHandle(&handle_));
    if (device_ != INFINI_DEVICE_CPU) {
        const infiniStatus_t created = infinirtStreamCreate(&stream_);
        if (created != INFINI_STATUS_SUCCESS) { // the destructor will not run: release the handle here
            infiniopDestroyHandle(handle_);
            checkInfini(created, "infinirtStreamCreate");
        }
    }
}

Ops::~Ops() {
    for (auto &[key, entry] : cache_) {
        entry.destroy(entry.desc);
    }
    workspace_ = DeviceBuffer();
    if (stream_ != nullptr) {
        infinirtStreamDestroy(stream_);
    }
    if (handle_ != nullptr) {
        infiniopDestroyHandle(handle_);
    }
}

void Ops::activate() const { IQ3_INFINI(infinirtSetDevice(device_, device_id_)); }

const Ops::Cached &Ops::cached(const std::string &key, const Creator &create, void (*destroy)(void *)) {
    auto found = cache_.find(key);
    if (found != cache_.end()) {
        recency_.splice(recency_.begin(), recency_, found->second.recency);
        return found->second;
    }
    if (cache_.size() >= kMaxDescriptors) {
        auto evicted = cache_.find(recency_.back());
        evicted->second.destroy(evicted->second.desc);
        cache_.erase(evicted);
        recency_.pop_back();
    }
    size_t workspace = 0;
    void *desc = create(&workspace); // a creator that throws has destroyed what it created
    try {
        recency_.push_front(key);
        return cache_.emplace(key, Cached{desc, workspace, destroy, recency_.begin()}).first->second;
    } catch (...) {
        if (!recency_.empty() && recency_.front() == key) {
            recency_.pop_front();
        }
        destroy(desc);
        throw;
    }
}

void *Ops::workspace(size_t bytes) {
    if (bytes == 0) {
        return nullptr;
    }
    workspace_.grow(bytes);
    return workspace_.data();
}

namespace {

// Queries a new descriptor's workspace; if that fails, the descriptor is destroyed before the error propagates.
template <class Desc>
void queryWorkspace(infiniStatus_t (*query)(Desc, size_t *), infiniStatus_t (*destroy)(Desc), Desc desc, size_t *ws,
                    const char *what) {
    const infiniStatus_t status = query(desc, ws);
    if (status != INFINI_STATUS_SUCCESS) {
        destroy(desc);
        checkInfini(status, what);
    }
}

#define IQ3_QUERY_WORKSPACE(Name)                                                                            \
    queryWorkspace(infiniopGet##Name##WorkspaceSize, infiniopDestroy##Name##Descriptor, desc, ws,                \
                   "infiniopGet" #Name "WorkspaceSize")

// Type-erased destroyer stored with each cached descriptor.
template <class Desc, infiniStatus_t (*Destroy)(Desc)>
void destroyAs(void *desc) {
    Destroy(static_cast<Desc>(desc));
}

} // namespace

// Each op: build the cache key, create the descriptor on a miss, then run.
void Ops::gemm(const Tensor &c, const Tensor &a, const Tensor &b, float alpha, float beta) {
    auto key = "gemm|" + c.signature() + a.signature() + b.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dc(c), da(a), db(b);
        infiniopGemmDescriptor_t desc;
        IQ3_INFINI(infiniopCreateGemmDescriptor(handle_, &desc, dc, da, db));
        IQ3_QUERY_WORKSPACE(Gemm);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopGemmDescriptor_t, infiniopDestroyGemmDescriptor>);
    IQ3_INFINI(infiniopGemm(static_cast<infiniopGemmDescriptor_t>(entry.desc), workspace(entry.workspace),
                            entry.workspace, c.data, a.data, b.data, alpha, beta, stream_));
}

void Ops::weightOnlyGemm(const Tensor &c, const Tensor &a, const Tensor &b, const Tensor &scales,
                         infiniopWeightFormat_t format, size_t block_k, float alpha, float beta) {
    auto key = "wogemm|" + c.signature() + a.signature() + b.signature() + scales.signature() +
               std::to_string(int(format)) + "|" + std::to_string(block_k);
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dc(c), da(a), db(b), ds(scales);
        infiniopWeightOnlyGemmDescriptor_t desc;
        IQ3_INFINI(infiniopCreateWeightOnlyGemmDescriptor(handle_, &desc, dc, da, db, ds, format, 1, block_k));
        IQ3_QUERY_WORKSPACE(WeightOnlyGemm);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopWeightOnlyGemmDescriptor_t, infiniopDestroyWeightOnlyGemmDescriptor>);
    IQ3_INFINI(infiniopWeightOnlyGemm(static_cast<infiniopWeightOnlyGemmDescriptor_t>(entry.desc),
                                      workspace(entry.workspace), entry.workspace, c.data, a.data, b.data,
                                      scales.data, alpha, beta, stream_));
}

void Ops::rmsnorm(const Tensor &y, const Tensor &x, const Tensor &w, float epsilon) {
    auto key = "rmsnorm|" + y.signature() + x.signature() + w.signature() + std::to_string(epsilon);
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dy(y), dx(x), dw(w);
        infiniopRMSNormDescriptor_t desc;
        IQ3_INFINI(infiniopCreateRMSNormDescriptor(handle_, &desc, dy, dx, dw, epsilon));
        IQ3_QUERY_WORKSPACE(RMSNorm);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopRMSNormDescriptor_t, infiniopDestroyRMSNormDescriptor>);
    IQ3_INFINI(infiniopRMSNorm(static_cast<infiniopRMSNormDescriptor_t>(entry.desc), workspace(entry.workspace),
                               entry.workspace, y.data, x.data, w.data, stream_));
}

void Ops::rope(const Tensor &y, const Tensor &x, const Tensor &pos_ids, const Tensor &sin_table,
               const Tensor &cos_table, infiniopRoPEAlgo_t algo) {
    auto key = "rope|" + y.signature() + x.signature() + pos_ids.signature() + sin_table.signature() +
               cos_table.signature() + std::to_string(int(algo));
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dy(y), dx(x), dp(pos_ids), ds(sin_table), dc(cos_table);
        infiniopRoPEDescriptor_t desc;
        IQ3_INFINI(infiniopCreateRoPEDescriptor(handle_, &desc, dy, dx, dp, ds, dc, algo));
        IQ3_QUERY_WORKSPACE(RoPE);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopRoPEDescriptor_t, infiniopDestroyRoPEDescriptor>);
    IQ3_INFINI(infiniopRoPE(static_cast<infiniopRoPEDescriptor_t>(entry.desc), workspace(entry.workspace),
                            entry.workspace, y.data, x.data, pos_ids.data, sin_table.data, cos_table.data, stream_));
}

void Ops::causalSoftmax(const Tensor &y, const Tensor &x) {
    auto key = "softmax|" + y.signature() + x.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dy(y), dx(x);
        infiniopCausalSoftmaxDescriptor_t desc;
        IQ3_INFINI(infiniopCreateCausalSoftmaxDescriptor(handle_, &desc, dy, dx));
        IQ3_QUERY_WORKSPACE(CausalSoftmax);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopCausalSoftmaxDescriptor_t, infiniopDestroyCausalSoftmaxDescriptor>);
    IQ3_INFINI(infiniopCausalSoftmax(static_cast<infiniopCausalSoftmaxDescriptor_t>(entry.desc),
                                     workspace(entry.workspace), entry.workspace, y.data, x.data, stream_));
}

void Ops::siluAndMul(const Tensor &out, const Tensor &in) {
    auto key = "silu_and_mul|" + out.signature() + in.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dout(out), din(in);
        infiniopSiluAndMulDescriptor_t desc;
        IQ3_INFINI(infiniopCreateSiluAndMulDescriptor(handle_, &desc, dout, din));
        IQ3_QUERY_WORKSPACE(SiluAndMul);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopSiluAndMulDescriptor_t, infiniopDestroySiluAndMulDescriptor>);
    IQ3_INFINI(infiniopSiluAndMul(static_cast<infiniopSiluAndMulDescriptor_t>(entry.desc), workspace(entry.workspace),
                                  entry.workspace, out.data, in.data, stream_));
}

void Ops::rearrange(const Tensor &dst, const Tensor &src) {
    auto key = "rearrange|" + dst.signature() + src.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dd(dst), ds(src);
        infiniopRearrangeDescriptor_t desc;
        IQ3_INFINI(infiniopCreateRearrangeDescriptor(handle_, &desc, dd, ds));
        *ws = 0;
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopRearrangeDescriptor_t, infiniopDestroyRearrangeDescriptor>);
    IQ3_INFINI(infiniopRearrange(static_cast<infiniopRearrangeDescriptor_t>(entry.desc), dst.data, src.data, stream_));
}

void Ops::embedding(const Tensor &out, const Tensor &ids, const Tensor &table) {
    auto key = "embedding|" + out.signature() + ids.signature() + table.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dout(out), dids(ids), dtable(table);
        infiniopEmbeddingDescriptor_t desc;
        IQ3_INFINI(infiniopCreateEmbeddingDescriptor(handle_, &desc, dout, dids, dtable));
        *ws = 0;
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopEmbeddingDescriptor_t, infiniopDestroyEmbeddingDescriptor>);
    IQ3_INFINI(infiniopEmbedding(static_cast<infiniopEmbeddingDescriptor_t>(entry.desc), out.data, ids.data,
                                 table.data, stream_));
}

void Ops::randomSampleBatch(const Tensor &result, const Tensor &logits, const float *random, const float *topp,
                            const int *topk, const float *temperature) {
    auto key = "sample_batch|" + result.signature() + logits.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dr(result), dl(logits);
        infiniopRandomSampleDescriptor_t desc;
        IQ3_INFINI(infiniopCreateRandomSampleBatchDescriptor(handle_, &desc, dr, dl));
        IQ3_QUERY_WORKSPACE(RandomSample);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopRandomSampleDescriptor_t, infiniopDestroyRandomSampleDescriptor>);
    IQ3_INFINI(infiniopRandomSampleBatch(static_cast<infiniopRandomSampleDescriptor_t>(entry.desc),
                                         workspace(entry.workspace), entry.workspace, result.data, logits.data,
                                         random, topp, topk, temperature, int(result.shape.at(0)), stream_));
}

void Ops::pagedCaching(const Tensor &k_cache, const Tensor &v_cache, const Tensor &k, const Tensor &v,
                       const Tensor &slot_mapping) {
    auto key = "paged_caching|" + k_cache.signature() + v_cache.signature() + k.signature() + v.signature() +
               slot_mapping.signature();
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dkc(k_cache), dvc(v_cache), dk(k), dv(v), ds(slot_mapping);
        infiniopPagedCachingDescriptor_t desc;
        IQ3_INFINI(infiniopCreatePagedCachingDescriptor(handle_, &desc, dkc, dvc, dk, dv, ds));
        IQ3_QUERY_WORKSPACE(PagedCaching);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopPagedCachingDescriptor_t, infiniopDestroyPagedCachingDescriptor>);
    IQ3_INFINI(infiniopPagedCaching(static_cast<infiniopPagedCachingDescriptor_t>(entry.desc),
                                    workspace(entry.workspace), entry.workspace, k_cache.data, v_cache.data, k.data,
                                    v.data, slot_mapping.data, stream_));
}

void Ops::pagedAttention(const Tensor &out, const Tensor &q, const Tensor &k_cache, const Tensor &v_cache,
                         const Tensor &block_tables, const Tensor &seq_lens, float scale) {
    auto key = "paged_attention|" + out.signature() + q.signature() + k_cache.signature() + v_cache.signature() +
               block_tables.signature() + seq_lens.signature() + std::to_string(scale);
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dout(out), dq(q), dkc(k_cache), dvc(v_cache), dbt(block_tables), dsl(seq_lens);
        infiniopPagedAttentionDescriptor_t desc;
        IQ3_INFINI(infiniopCreatePagedAttentionDescriptor(handle_, &desc, dout, dq, dkc, dvc, dbt, dsl, nullptr, scale));
        IQ3_QUERY_WORKSPACE(PagedAttention);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopPagedAttentionDescriptor_t, infiniopDestroyPagedAttentionDescriptor>);
    IQ3_INFINI(infiniopPagedAttention(static_cast<infiniopPagedAttentionDescriptor_t>(entry.desc),
                                      workspace(entry.workspace), entry.workspace, out.data, q.data, k_cache.data,
                                      v_cache.data, block_tables.data, seq_lens.data, nullptr, stream_));
}

void Ops::pagedAttentionPrefill(const Tensor &out, const Tensor &q, const Tensor &k_cache, const Tensor &v_cache,
                                const Tensor &block_tables, const Tensor &seq_lens, const Tensor &new_lens,
                                float scale) {
    auto key = "paged_prefill|" + out.signature() + q.signature() + k_cache.signature() + v_cache.signature() +
               block_tables.signature() + seq_lens.signature() + new_lens.signature() + std::to_string(scale);
    const auto &entry = cached(key, [&](size_t *ws) {
        TensorDesc dout(out), dq(q), dkc(k_cache), dvc(v_cache), dbt(block_tables), dsl(seq_lens), dnl(new_lens);
        infiniopPagedAttentionPrefillDescriptor_t desc;
        IQ3_INFINI(infiniopCreatePagedAttentionPrefillDescriptor(handle_, &desc, dout, dq, dkc, dvc, dbt, dsl, dnl,
                                                                 nullptr, scale));
        IQ3_QUERY_WORKSPACE(PagedAttentionPrefill);
        return static_cast<void *>(desc);
    }, &destroyAs<infiniopPagedAttentionPrefillDescriptor_t, infiniopDestroyPagedAttentionPrefillDescriptor>);
    IQ3_INFINI(infiniopPagedAttentionPrefill(static_cast<infiniopPagedAttentionPrefillDescriptor_t>(entry.desc),
                                             workspace(entry.workspace), entry.workspace, out.data, q.data,
                                             k_cache.data, v_cache.data, block_tables.data, seq_lens.data,
                                             new_lens.data, nullptr, stream_));
}

void Ops::copyToDevice(void *dst, const void *src, size_t bytes) {
    IQ3_INFINI(infinirtMemcpy(dst, src, bytes, INFINIRT_MEMCPY_H2D));
}

void Ops::copyToHost(void *dst, const void *src, size_t bytes) {
    synchronize();
    IQ3_INFINI(infinirtMemcpy(dst, src, bytes, INFINIRT_MEMCPY_D2H));
}

void Ops::copyOnDevice(void *dst, const void *src, size_t bytes) {
    IQ3_INFINI(infinirtMemcpyAsync(dst, src, bytes, INFINIRT_MEMCPY_D2D, stream_));
}

void Ops::synchronize() {
    if (stream_ != nullptr) {
        IQ3_INFINI(infinirtStreamSynchronize(stream_));
    } else {
        IQ3_INFINI(infinirtDeviceSynchronize());
    }
}

} // namespace iq3
