// One rank of the Qwen3 decoder: what one device holds and computes. Its shard of the weights, its share of the
// paged KV cache (its KV heads, every block), its scratch buffers, operators and trace. A step is the decoder
// layers, each an attention block and an MLP block that end in an all-reduce across the ranks when there are
// several; each rank computes its vocabulary columns of the logits, summed into every rank's logits, and rank 0
// samples.
#pragma once

#include "kv_cache.hpp"
#include "ops.hpp"
#include "shard.hpp"
#include "step_batch.hpp"
#include "step_graph.hpp"
#include "trace.hpp"
#include "weights.hpp"

#include <infiniccl.h>

#include <cstdint>
#include <list>
#include <map>
#include <utility>
#include <vector>

namespace iq3 {

class Rank {
public:
    // comm: this rank's InfiniCCL communicator, nullptr when it is the only rank.
    Rank(const iq3Meta &meta, Shard shard, infiniDtype_t dt, infiniopRoPEAlgo_t rope_algo, infiniDevice_t device,
         int device_id, infinicclComm_t comm);
    // Makes this rank's device current before its members free device memory: the model may be destroyed on any
    // thread (infinirt keeps the current device per thread, and the CPU's free is not the device's).
    ~Rank();
    Rank(const Rank &) = delete;
    Rank &operator=(const Rank &) = delete;

    Weights &weights() { return weights_; }
    Trace &trace() { return trace_; }
    Ops &ops() { return ops_; }
    const Shard &shard() const { return shard_; }

    // Everything of a step that can fail for want of memory, before any rank computes (a rank that failed
    // inside a step would leave the others waiting in an all-reduce): this thread's device, the step's inputs
    // uploaded, its scratch grown.
    void prepare(const StepBatch &batch, const StepInputs &inputs, bool all_positions);
    // The head's part of preparing: the sampling parameters of each logit row.
    void prepareSampling(const std::vector<SamplingParams> &sampling, size_t rows);

    // The step: eagerly, or replayed from a captured graph (decode on a backend that captures). Returns the logits;
    // the head rank also draws one id per row (copySampled).
    Tensor runStep(const StepBatch &batch);
    // Layers and logits for the chosen rows, no sampling.
    Tensor forward(const StepBatch &batch, bool all_positions);

    void copyLogits(const Tensor &logits, float *out); // device logits -> host float32
    void copySampled(uint32_t *out, size_t n);
    const iq3GraphStats &graphStats() const { return graph_stats_; }

private:
    // Views of this step's scratch, [rows, features] of this rank's heads and MLP columns.
    struct StepViews {
        Tensor x, xn, qkv, q, k, v, attn_out, gate_up, act;
    };
    StepViews views(size_t rows) const;

    void runLayers(const StepBatch &batch);
    // RMSNorm, QKV projection, QK-norm, RoPE, attention, o_proj into the residual stream.
    void attentionBlock(const StepBatch &batch, size_t layer, const StepViews &s);
    // RMSNorm, gate/up projection, SiLU x up, down projection into the residual stream.
    void mlpBlock(size_t layer, const StepViews &s);
    // x = input @ weight^T + x on one rank; on several, the partial products of the ranks summed into every
    // rank's x (the residual added once, by the head rank).
    void residualLinear(const std::string &name, const Tensor &input, const LinearWeight &weight, const Tensor &x);
    void linear(const Tensor &out, const Tensor &in, const LinearWeight &weight, float beta = 0.0f);
    void sumOverRanks(const Tensor &x); // in place, all-reduce over the ranks; nothing when alone
    void attention(const StepBatch &batch, size_t layer, const Tensor &q, const Tensor &k, const Tensor &v,
                   const Tensor &out);
    // A prompt chunk's attention with GEMMs (compute-bound): over `keys`/`values` [past + new, kv_heads, head_dim],
    // the chunk's own K/V where the QKV projection left them when it has no past, else its whole context gathered
    // from its blocks (gatherContext).
    void gemmAttention(const StepBatch &batch, uint32_t r, const Tensor &q, const Tensor &keys, const Tensor &values,
                       const Tensor &out);
    // Request r's cached K or V of every position so far (this step's included) copied block by block into `into`:
    // [past + new, kv_heads, head_dim].
    Tensor gatherContext(const StepBatch &batch, uint32_t r, const Tensor &cache, const DeviceBuffer &into);
    // Whether request r's prompt chunk attends with GEMMs: it has no past, or its scores fit gemm_scores_limit_.
    // prepare() sizes the scratch and attention() picks the path by it.
    bool gemmAttends(const StepBatch &batch, uint32_t r) const;
    static size_t gemmScoresLimit();
    // Final norm + lm_head over the chosen token rows; returns logits [rows, vocab] on the device.
    Tensor logitsFor(const StepBatch &batch, bool all_positions);
    Tensor computeStep(const StepBatch &batch);
    Tensor logitsView(const StepBatch &batch) const;
    std::vector<const void *> stepBuffers() const; // the addresses a captured step records
    void buildRopeTables();

    iq3Meta meta_;
    Shard shard_;
    size_t heads_, kv_heads_, intermediate_; // this rank's share
    infiniDtype_t dt_;
    infiniopRoPEAlgo_t rope_algo_;
    infinicclComm_t comm_;
    Ops ops_;
    Weights weights_;
    KvCache kv_;
    Trace trace_;

    DeviceBuffer sin_table_, cos_table_;
    // Scratch for one step, grown on demand and reused.
    DeviceBuffer hidden_, normed_, qkv_, attn_out_, gate_up_, act_;
    DeviceBuffer q_heads_, scores_, head_out_, last_hidden_, logits_, sampled_;
    DeviceBuffer context_keys_, context_values_; // a chunk's gathered past + new K/V (gatherContext)
    DeviceBuffer zeros_; // zero_bytes_ of zeros: where a rank's logits start when the ranks split the vocabulary
    size_t zero_bytes_ = 0;
    // This step's inputs on the device (I64, one upload) and, on the head, the sampling parameters (4-byte words).
    DeviceBuffer step_inputs_, sampling_inputs_;
    Tensor token_ids_, positions_, slot_mapping_, block_tables_, seq_lens_, new_lens_;

    // Captured decode steps by (batch bucket, block-table width), at most kMaxLiveGraphs of them: the block-table
    // width grows with the longest context, so buckets keep appearing over a server's life, and each graph holds
    // device memory.
    static constexpr size_t kMaxLiveGraphs = 32;
    // The largest attention scores a prompt chunk with a past computes with GEMMs (a 512-token chunk of 16 heads in
    // bf16 reaches the default 256 MiB at a 16K context); beyond it, the paged prefill operator, which needs no
    // scratch. INFINI_QWEN3_ATTENTION_GEMM_BYTES, read when the model is made, sets another bound (0: never).
    size_t gemm_scores_limit_ = gemmScoresLimit();
    using GraphKey = std::pair<uint32_t, size_t>;
    struct CapturedStep {
        StepGraph graph;
        std::vector<const void *> buffers; // stepBuffers() at capture
        int eager_runs = 0;
        bool unsupported = false;
        std::list<GraphKey>::iterator recency;
    };
    CapturedStep &graphEntry(const GraphKey &key); // also marks it most recently used
    void evictGraphs();                           // down to kMaxLiveGraphs live graphs
    bool graphs_enabled_;
    std::map<GraphKey, CapturedStep> graphs_;
    std::list<GraphKey> graph_recency_; // most recently used first
    iq3GraphStats graph_stats_{};
};

} // namespace iq3
