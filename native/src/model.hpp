// The Qwen3 dense decoder on one device: weights by name, a paged KV cache, the batched forward step.
#pragma once

#include "kv_cache.hpp"
#include "ops.hpp"
#include "step_graph.hpp"
#include "trace.hpp"
#include "weights.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace iq3 {

struct StepBatch {
    const uint32_t *tokens;
    uint32_t ntok;
    std::vector<uint32_t> lens, pos;
    std::vector<uint32_t> starts;              // first token index of each request in tokens
    std::vector<std::vector<uint32_t>> blocks; // each request's KV blocks, as many as its past + new tokens need
    uint32_t decoding = 0;                     // leading requests with one new token: one paged-attention launch
    // Rows the step computes. A step of decoding requests only is padded to a power of two (a batch bucket) with
    // rows that read and write no KV, so that its operators keep their descriptors from step to step.
    uint32_t rows = 0;
    uint32_t nreq() const { return uint32_t(lens.size()); }
    bool decodeOnly() const { return decoding == nreq(); }
};

struct SamplingParams {
    float temperature;
    int topk;
    float topp;
    float random;
};

class Model {
public:
    Model(const iq3Meta &meta, infiniDevice_t device, int device_id);

    void loadWeight(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape, const void *data);
    void finishLoading();

    // Validates a batch against the model's limits and the KV capacity; throws with a readable reason.
    StepBatch checkBatch(const iq3Batch &batch) const;

    // logits_out: nullptr, or [nreq, vocab] float32 host memory for the raw logits (copied before sampling).
    void infer(const StepBatch &batch, const std::vector<SamplingParams> &sampling, uint32_t *out_tokens,
               float *logits_out = nullptr);
    void forward(const StepBatch &batch, bool all_positions, float *logits);

    Trace &trace() { return trace_; }
    std::mutex &mutex() { return mutex_; }

private:
    // Runs the decoder layers over the batch, leaving the hidden states in hidden_.
    void runLayers(const StepBatch &batch);
    void attention(const StepBatch &batch, size_t layer, const Tensor &q, const Tensor &k, const Tensor &v,
                   const Tensor &out);
    // Final norm + lm_head over the chosen token rows; returns logits [rows, vocab] on the device.
    Tensor logitsFor(const StepBatch &batch, bool all_positions);
    void copyLogits(const Tensor &logits, float *out); // device logits -> host float32
    // Prompt chunk without a past: attention over its own K/V with GEMMs (compute-bound on accelerators).
    void contiguousAttention(const StepBatch &batch, uint32_t r, const Tensor &q, const Tensor &k, const Tensor &v,
                             const Tensor &out);
    void uploadStepInputs(const StepBatch &batch);
    void uploadSampling(const std::vector<SamplingParams> &sampling, size_t rows);
    // The step after its inputs are uploaded: eagerly, or replayed from a captured graph. Returns the logits; the
    // drawn ids are in sampled_.
    Tensor runStep(const StepBatch &batch);
    Tensor computeStep(const StepBatch &batch);
    size_t logitRows(const StepBatch &batch, bool all_positions) const;
    Tensor logitsView(const StepBatch &batch) const;
    std::vector<const void *> stepBuffers() const; // the addresses a captured step records
    void buildRopeTables();
    void ensureLoaded() const;

    iq3Meta meta_;
    infiniDtype_t dt_;
    infiniopRoPEAlgo_t rope_algo_;
    Ops ops_;
    Weights weights_;
    KvCache kv_;
    Trace trace_;
    std::mutex mutex_;
    bool loaded_ = false;

    DeviceBuffer sin_table_, cos_table_;
    // Scratch for one step, grown on demand and reused.
    DeviceBuffer hidden_, normed_, qkv_, attn_out_, gate_up_, act_;
    DeviceBuffer q_heads_, scores_, head_out_, last_hidden_, logits_, sampled_;
    // This step's inputs on the device, uploaded at once (I64): token ids, positions, the slot of each token,
    // block tables, past + new and new lengths; and the sampling parameters (4-byte words).
    DeviceBuffer step_inputs_, sampling_inputs_;
    Tensor token_ids_, positions_, slot_mapping_, block_tables_, seq_lens_, new_lens_;

    // Captured decode steps by (batch bucket, block-table width).
    struct CapturedStep {
        StepGraph graph;
        std::vector<const void *> buffers; // stepBuffers() at capture
        int eager_runs = 0;
        bool unsupported = false;
    };
    bool graphs_enabled_;
    std::map<std::pair<uint32_t, size_t>, CapturedStep> graphs_;
};

} // namespace iq3
