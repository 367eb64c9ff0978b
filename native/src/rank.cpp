#include "rank.hpp"

#include "error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace iq3 {

size_t Rank::gemmScoresLimit() {
    constexpr size_t kDefault = size_t(256) << 20;
    const char *value = std::getenv("INFINI_QWEN3_ATTENTION_GEMM_BYTES");
    if (value == nullptr || *value == '\0') {
        return kDefault;
    }
    char *end = nullptr;
    const unsigned long long bytes = std::strtoull(value, &end, 10);
    return *end == '\0' ? size_t(bytes) : kDefault;
}

Rank::Rank(const iq3Meta &meta, Shard shard, infiniDtype_t dt, infiniopRoPEAlgo_t rope_algo, infiniDevice_t device,
           int device_id, infinicclComm_t comm)
    : meta_(meta),
      shard_(shard),
      heads_(shard.part(meta.num_heads)),
      kv_heads_(shard.part(meta.num_kv_heads)),
      intermediate_(shard.part(meta.intermediate_size)),
      dt_(dt),
      rope_algo_(rope_algo),
      comm_(comm),
      ops_(device, device_id),
      weights_(meta_, shard, dt_, rope_algo_, ops_),
      kv_(meta.num_layers, meta.kv_blocks, meta.kv_block_size, kv_heads_, meta.head_dim, dt_),
      // A captured step of several ranks would hold collectives; only single-rank steps are captured for now.
      // cuda_graphs 2 attempts captures on the CPU too, where they fail: the eager fallback under test.
      graphs_enabled_(shard.alone() && (meta.cuda_graphs == 2 || (meta.cuda_graphs == 1 && device != INFINI_DEVICE_CPU))) {
    graph_stats_.max_live_graphs = kMaxLiveGraphs;
    if (!shard.alone()) {
        trace_.prefix = "rank" + std::to_string(shard.index) + "/";
    }
    buildRopeTables();
}

namespace {

// INFINI_QWEN3_GRAPH_LOG=1: each capture logs the device's free memory before and after (the platform run sets it).
bool logGraphMemory() {
    static const bool enabled = [] {
        const char *value = std::getenv("INFINI_QWEN3_GRAPH_LOG");
        return value != nullptr && std::strcmp(value, "0") != 0 && *value != '\0';
    }();
    return enabled;
}

size_t freeDeviceMemory() {
    size_t free_bytes = 0, total_bytes = 0;
    return infinirtMemGetInfo(&free_bytes, &total_bytes) == INFINI_STATUS_SUCCESS ? free_bytes : 0;
}

} // namespace

Rank::~Rank() {
    try {
        ops_.activate();
    } catch (...) { // nothing to report to from a destructor; the frees below then fail and are ignored
    }
}

// Same arithmetic as transformers' default RoPE: f32 inverse frequencies, f32 angle = position * inv_freq,
// cos/sin in f32, then cast to the compute dtype.
void Rank::buildRopeTables() {
    const size_t half = meta_.head_dim / 2, rows = meta_.max_seq_tokens;
    std::vector<float> inv_freq(half);
    for (size_t i = 0; i < half; i++) {
        const float exponent = float(2 * i) / float(meta_.head_dim);
        inv_freq[i] = 1.0f / std::pow(meta_.rope_theta, exponent);
    }
    std::vector<float> sin_f(rows * half), cos_f(rows * half);
    for (size_t pos = 0; pos < rows; pos++) {
        for (size_t i = 0; i < half; i++) {
            const float angle = float(pos) * inv_freq[i];
            sin_f[pos * half + i] = std::sin(angle);
            cos_f[pos * half + i] = std::cos(angle);
        }
    }
    const size_t bytes = rows * half * dtypeSize(dt_);
    std::vector<char> converted(bytes);
    sin_table_.grow(bytes);
    cos_table_.grow(bytes);
    convertHost(converted.data(), dt_, sin_f.data(), INFINI_DTYPE_F32, rows * half);
    ops_.copyToDevice(sin_table_.data(), converted.data(), bytes);
    convertHost(converted.data(), dt_, cos_f.data(), INFINI_DTYPE_F32, rows * half);
    ops_.copyToDevice(cos_table_.data(), converted.data(), bytes);
}

void Rank::prepare(const StepBatch &batch, const StepInputs &inputs, bool all_positions) {
    ops_.activate();
    trace_.clear();
    const size_t rows = batch.rows, d = meta_.hidden_size, dh = meta_.head_dim, es = dtypeSize(dt_);
    hidden_.grow(rows * d * es);
    normed_.grow(rows * d * es);
    qkv_.grow(rows * (heads_ + 2 * kv_heads_) * dh * es);
    attn_out_.grow(rows * heads_ * dh * es);
    gate_up_.grow(rows * 2 * intermediate_ * es);
    act_.grow(rows * intermediate_ * es);
    size_t longest_chunk = 0, most_scores = 0, longest_context = 0; // of the chunks that attend with GEMMs
    for (uint32_t r = batch.decoding; r < batch.nreq(); r++) {
        const size_t len = batch.lens[r], total = batch.pos[r] + len;
        if (gemmAttends(batch, r)) {
            longest_chunk = std::max(longest_chunk, len);
            most_scores = std::max(most_scores, len * total);
            longest_context = std::max(longest_context, batch.pos[r] == 0 ? 0 : total);
        }
    }
    q_heads_.grow(heads_ * longest_chunk * dh * es);
    scores_.grow(heads_ * most_scores * es);
    head_out_.grow(heads_ * longest_chunk * dh * es);
    context_keys_.grow(longest_context * kv_heads_ * dh * es);
    context_values_.grow(longest_context * kv_heads_ * dh * es);
    const size_t logit_rows = batch.logitRows(all_positions), logit_bytes = logit_rows * meta_.vocab_size * es;
    last_hidden_.grow(logit_rows * d * es);
    logits_.grow(logit_bytes);
    if (!shard_.alone() && logit_bytes > zero_bytes_) { // the other ranks' vocabulary columns start as zeros
        zeros_.grow(logit_bytes);
        ops_.copyToDevice(zeros_.data(), std::vector<char>(logit_bytes, 0).data(), logit_bytes);
        zero_bytes_ = logit_bytes;
    }

    step_inputs_.grow(inputs.words.size() * sizeof(int64_t));
    ops_.copyToDevice(step_inputs_.data(), inputs.words.data(), inputs.words.size() * sizeof(int64_t));
    auto *base = static_cast<int64_t *>(step_inputs_.data());
    const size_t nseq = inputs.nseq, width = inputs.width;
    token_ids_ = Tensor::contiguous(base, INFINI_DTYPE_I64, {rows});
    positions_ = Tensor::contiguous(base + rows, INFINI_DTYPE_I64, {rows});
    slot_mapping_ = Tensor::contiguous(base + 2 * rows, INFINI_DTYPE_I64, {rows});
    block_tables_ = Tensor::contiguous(base + 3 * rows, INFINI_DTYPE_I64, {nseq, width});
    seq_lens_ = Tensor::contiguous(base + 3 * rows + nseq * width, INFINI_DTYPE_I64, {nseq});
    new_lens_ = Tensor::contiguous(base + 3 * rows + nseq * width + nseq, INFINI_DTYPE_I64, {nseq});
}

// [random rows][top_p rows][temperature rows][top_k rows] as 4-byte words in one upload; rows beyond the requests
// (padding) draw greedily.
void Rank::prepareSampling(const std::vector<SamplingParams> &sampling, size_t rows) {
    std::vector<float> params(4 * rows, 0.0f);
    auto *topk = reinterpret_cast<int *>(params.data() + 3 * rows);
    std::fill(topk, topk + rows, 1);
    for (size_t r = 0; r < sampling.size(); r++) {
        params[r] = sampling[r].random;
        params[rows + r] = sampling[r].topp;
        params[2 * rows + r] = sampling[r].temperature;
        topk[r] = sampling[r].topk;
    }
    static_assert(sizeof(int) == sizeof(float), "sampling parameters are packed as 4-byte words");
    sampling_inputs_.grow(params.size() * sizeof(float));
    ops_.copyToDevice(sampling_inputs_.data(), params.data(), params.size() * sizeof(float));
    sampled_.grow(rows * sizeof(int64_t));
}

Rank::StepViews Rank::views(size_t rows) const {
    const size_t d = meta_.hidden_size, dh = meta_.head_dim, nh = heads_, nkvh = kv_heads_, di = intermediate_;
    StepViews s;
    s.x = Tensor::contiguous(hidden_.data(), dt_, {rows, d});
    s.xn = Tensor::contiguous(normed_.data(), dt_, {rows, d});
    s.qkv = Tensor::contiguous(qkv_.data(), dt_, {rows, (nh + 2 * nkvh) * dh});
    s.q = s.qkv.slice(1, 0, nh * dh).split(1, {nh, dh});
    s.k = s.qkv.slice(1, nh * dh, nkvh * dh).split(1, {nkvh, dh});
    s.v = s.qkv.slice(1, (nh + nkvh) * dh, nkvh * dh).split(1, {nkvh, dh});
    s.attn_out = Tensor::contiguous(attn_out_.data(), dt_, {rows, nh * dh});
    s.gate_up = Tensor::contiguous(gate_up_.data(), dt_, {rows, 2 * di});
    s.act = Tensor::contiguous(act_.data(), dt_, {rows, di});
    return s;
}

void Rank::runLayers(const StepBatch &batch) {
    const auto s = views(batch.rows);
    ops_.embedding(s.x, token_ids_, weights_.embed());
    trace_.record(ops_, "embed", s.x);
    for (size_t l = 0; l < meta_.num_layers; l++) {
        attentionBlock(batch, l, s);
        mlpBlock(l, s);
    }
}

void Rank::attentionBlock(const StepBatch &batch, size_t l, const StepViews &s) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const float eps = meta_.rms_norm_eps;
    const size_t dh = meta_.head_dim;
    const auto sin = Tensor::contiguous(sin_table_.data(), dt_, {meta_.max_seq_tokens, dh / 2});
    const auto cos = Tensor::contiguous(cos_table_.data(), dt_, {meta_.max_seq_tokens, dh / 2});
    ops_.rmsnorm(s.xn, s.x, weights_.attnNorm(l), eps);
    trace_.record(ops_, p + "attn_norm", s.xn);
    linear(s.qkv, s.xn, weights_.qkv(l));
    trace_.record(ops_, p + "q", s.q);
    trace_.record(ops_, p + "k", s.k);
    trace_.record(ops_, p + "v", s.v);
    ops_.rmsnorm(s.q, s.q, weights_.qNorm(l), eps); // Qwen3 QK-norm: over head_dim, before RoPE
    ops_.rmsnorm(s.k, s.k, weights_.kNorm(l), eps);
    trace_.record(ops_, p + "q_norm", s.q);
    trace_.record(ops_, p + "k_norm", s.k);
    ops_.rope(s.q, s.q, positions_, sin, cos, rope_algo_);
    ops_.rope(s.k, s.k, positions_, sin, cos, rope_algo_);
    trace_.record(ops_, p + "q_rope", s.q);
    trace_.record(ops_, p + "k_rope", s.k);
    attention(batch, l, s.q, s.k, s.v, s.attn_out);
    trace_.record(ops_, p + "attn", s.attn_out);
    residualLinear(p + "attn_residual", s.attn_out, weights_.oProj(l), s.x);
}

void Rank::mlpBlock(size_t l, const StepViews &s) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const size_t di = intermediate_;
    ops_.rmsnorm(s.xn, s.x, weights_.ffnNorm(l), meta_.rms_norm_eps);
    trace_.record(ops_, p + "ffn_norm", s.xn);
    linear(s.gate_up, s.xn, weights_.gateUp(l));
    trace_.record(ops_, p + "gate", s.gate_up.slice(1, 0, di));
    trace_.record(ops_, p + "up", s.gate_up.slice(1, di, di));
    ops_.siluAndMul(s.act, s.gate_up); // silu(gate) * up
    trace_.record(ops_, p + "act", s.act);
    residualLinear(p + "mlp_residual", s.act, weights_.down(l), s.x);
}

// o_proj and down add the residual inside the GEMM (beta = 1). With several ranks each computes its partial
// product from its heads / MLP columns; the head rank also adds the residual, the others overwrite their copy,
// and the all-reduce leaves the sum in every rank's x. The trace records the residual stream after it.
void Rank::residualLinear(const std::string &name, const Tensor &input, const LinearWeight &weight,
                          const Tensor &x) {
    linear(x, input, weight, shard_.holdsHead() ? 1.0f : 0.0f);
    sumOverRanks(x);
    trace_.record(ops_, name, x);
}

// out = in @ weight^T (+ beta * out): every projection, whatever its weight's stored format.
void Rank::linear(const Tensor &out, const Tensor &in, const LinearWeight &weight, float beta) {
    if (weight.dense()) {
        ops_.gemm(out, in, weight.weight.permute({1, 0}), 1.0f, beta);
        return;
    }
    const auto format = weight.format == IQ3_WEIGHTS_INT8 ? INFINIOP_WEIGHT_INT8 : INFINIOP_WEIGHT_F8_E4M3;
    ops_.weightOnlyGemm(out, in, weight.weight, weight.scales, format, weight.block_k, 1.0f, beta);
}

void Rank::sumOverRanks(const Tensor &x) {
    if (comm_ != nullptr) {
        IQ3_INFINI(infinicclAllReduce(x.data, x.data, x.numel(), dt_, INFINICCL_SUM, comm_, ops_.stream()));
    }
}

// The new K/V of all requests go into their blocks in one launch. Decoding requests (the leading ones with a
// single new token) then attend over their blocks in one paged-attention launch; a prompt chunk attends with GEMMs,
// over its own K/V without a past, over its context gathered from its blocks with one (a chunk of a long prompt, a
// resumed request); only a context whose scores would outgrow gemm_scores_limit_ takes the paged prefill operator.
void Rank::attention(const StepBatch &batch, size_t layer, const Tensor &q, const Tensor &k, const Tensor &v,
                      const Tensor &out) {
    const float scale = 1.0f / std::sqrt(float(meta_.head_dim));
    const auto k_cache = kv_.keys(layer), v_cache = kv_.values(layer);
    const auto out_heads = out.split(1, {heads_, meta_.head_dim});
    ops_.pagedCaching(k_cache, v_cache, k, v, slot_mapping_);
    const uint32_t nd = batch.decodeOnly() ? batch.rows : batch.decoding; // padding rows attend to nothing
    if (nd > 0) {
        ops_.pagedAttention(out_heads.slice(0, 0, nd), q.slice(0, 0, nd), k_cache, v_cache,
                            block_tables_.slice(0, 0, nd), seq_lens_.slice(0, 0, nd), scale);
    }
    for (uint32_t r = nd; r < batch.nreq(); r++) {
        const size_t start = batch.starts[r], seq = batch.lens[r];
        if (batch.pos[r] == 0) {
            gemmAttention(batch, r, q, k.slice(0, start, seq), v.slice(0, start, seq), out);
        } else if (gemmAttends(batch, r)) {
            gemmAttention(batch, r, q, gatherContext(batch, r, k_cache, context_keys_),
                          gatherContext(batch, r, v_cache, context_values_), out);
        } else {
            ops_.pagedAttentionPrefill(out_heads.slice(0, start, seq), q.slice(0, start, seq), k_cache, v_cache,
                                       block_tables_.slice(0, r, 1), seq_lens_.slice(0, r, 1),
                                       new_lens_.slice(0, r, 1), scale);
        }
    }
}

bool Rank::gemmAttends(const StepBatch &batch, uint32_t r) const {
    const size_t len = batch.lens[r], total = batch.pos[r] + len;
    return batch.pos[r] == 0 || heads_ * len * total * dtypeSize(dt_) <= gemm_scores_limit_;
}

Tensor Rank::gatherContext(const StepBatch &batch, uint32_t r, const Tensor &cache, const DeviceBuffer &into) {
    const size_t total = batch.pos[r] + batch.lens[r], block_size = cache.shape[2];
    const auto context = Tensor::contiguous(into.data(), dt_, {total, kv_heads_, meta_.head_dim});
    for (size_t first = 0, b = 0; first < total; first += block_size, b++) {
        const size_t n = std::min(block_size, total - first);
        const auto block = cache.slice(0, batch.blocks[r][b], 1).view({kv_heads_, block_size, meta_.head_dim});
        ops_.rearrange(context.slice(0, first, n), block.slice(1, 0, n).permute({1, 0, 2}));
    }
    return context;
}

// softmax(Q K^T / sqrt(dh)) V with the causal mask, as strided GEMMs over [kv_head, group * seq, .] (GQA without
// copying K/V per head). With a past, the scores are [seq, past + seq] and the mask lets row i see past + i + 1
// keys (causal_softmax aligns the last row with the last key).
void Rank::gemmAttention(const StepBatch &batch, uint32_t r, const Tensor &q, const Tensor &keys,
                         const Tensor &values, const Tensor &out) {
    const size_t nh = heads_, nkvh = kv_heads_, dh = meta_.head_dim;
    const size_t ngroup = nh / nkvh, start = batch.starts[r], seq = batch.lens[r], total = keys.shape[0];
    const float scale = 1.0f / std::sqrt(float(dh));

    const auto q_heads = Tensor::contiguous(q_heads_.data(), dt_, {nkvh, ngroup, seq, dh});
    ops_.rearrange(q_heads, q.slice(0, start, seq).split(1, {nkvh, ngroup}).permute({1, 2, 0, 3}));

    const auto scores = Tensor::contiguous(scores_.data(), dt_, {nkvh, ngroup * seq, total});
    ops_.gemm(scores, q_heads.view({nkvh, ngroup * seq, dh}), keys.permute({1, 2, 0}), scale, 0.0f);
    const auto probs = scores.view({nh, seq, total});
    ops_.causalSoftmax(probs, probs);

    const auto head_out = Tensor::contiguous(head_out_.data(), dt_, {nkvh, ngroup * seq, dh});
    ops_.gemm(head_out, scores, values.permute({1, 0, 2}), 1.0f, 0.0f);
    ops_.rearrange(out.slice(0, start, seq).split(1, {nkvh, ngroup, dh}),
                   head_out.view({nkvh, ngroup, seq, dh}).permute({2, 0, 1, 3}));
}

Tensor Rank::logitsView(const StepBatch &batch) const {
    return Tensor::contiguous(logits_.data(), dt_, {batch.logitRows(false), meta_.vocab_size});
}

Tensor Rank::logitsFor(const StepBatch &batch, bool all_positions) {
    const size_t d = meta_.hidden_size, es = dtypeSize(dt_), vocab = meta_.vocab_size;
    const size_t rows = batch.logitRows(all_positions);
    const bool every_row = all_positions || batch.decodeOnly();
    const auto x = Tensor::contiguous(hidden_.data(), dt_, {batch.rows, d});
    const auto h = Tensor::contiguous(last_hidden_.data(), dt_, {rows, d});
    if (every_row) {
        ops_.rmsnorm(h, x, weights_.finalNorm(), meta_.rms_norm_eps);
    } else {
        for (uint32_t r = 0; r < batch.nreq(); r++) {
            const size_t last = batch.starts[r] + batch.lens[r] - 1;
            ops_.copyOnDevice(static_cast<char *>(h.data) + r * d * es, static_cast<char *>(x.data) + last * d * es,
                              d * es);
        }
        ops_.rmsnorm(h, h, weights_.finalNorm(), meta_.rms_norm_eps);
    }
    trace_.record(ops_, "final_norm", h);
    // Each rank computes its vocabulary columns into zeros; the sum over the ranks (InfiniCCL 0.1.0 has no
    // all-gather; adding zeros is exact) leaves every rank with all the logits.
    const auto logits = Tensor::contiguous(logits_.data(), dt_, {rows, vocab});
    if (!shard_.alone()) {
        ops_.copyOnDevice(logits.data, zeros_.data(), rows * vocab * es);
    }
    ops_.gemm(logits.slice(1, shard_.begin(vocab), shard_.part(vocab)), h, weights_.lmHead().permute({1, 0}));
    sumOverRanks(logits);
    trace_.record(ops_, "logits", logits);
    return logits;
}

Tensor Rank::computeStep(const StepBatch &batch) {
    runLayers(batch);
    const auto logits = logitsFor(batch, false);
    if (!shard_.holdsHead()) {
        return logits;
    }
    const auto *params = static_cast<const float *>(sampling_inputs_.data());
    const size_t rows = logits.shape.at(0);
    const Tensor result = Tensor::contiguous(sampled_.data(), INFINI_DTYPE_I64, {rows});
    ops_.randomSampleBatch(result, logits, params, params + rows, reinterpret_cast<const int *>(params + 3 * rows),
                           params + 2 * rows);
    return logits;
}

// Eager, or on a backend that captures graphs, a decode step replayed from the graph of its batch bucket. A
// bucket's first step runs eagerly (descriptors, workspaces and library state come into being outside a
// capture); its second is captured; later ones replay while the recorded buffers keep their addresses.
Tensor Rank::runStep(const StepBatch &batch) {
    if (!graphs_enabled_ || !batch.decodeOnly() || trace_.enabled) {
        return computeStep(batch);
    }
    auto &entry = graphEntry({batch.rows, block_tables_.shape.at(1)});
    if (entry.graph.valid() && entry.buffers == stepBuffers()) {
        entry.graph.launch(ops_.stream());
        graph_stats_.replays++;
        return logitsView(batch);
    }
    if (entry.unsupported || entry.eager_runs++ == 0) {
        return computeStep(batch);
    }
    Tensor logits;
    std::string why;
    bool captured = false;
    const size_t free_before = logGraphMemory() ? freeDeviceMemory() : 0;
    try {
        captured = entry.graph.capture(ops_.stream(), [&] { logits = computeStep(batch); }, &why);
    } catch (const Error &e) { // an operation the capture does not allow: the capture ended, the step is redone
        why = e.what();
    }
    if (!captured) {
        entry.unsupported = true; // this bucket stays eager; the step itself still runs
        graph_stats_.failed_captures++;
        std::fprintf(stderr, "infini-qwen3: decode steps of %u rows run eagerly: %s\n", batch.rows, why.c_str());
        return computeStep(batch);
    }
    graph_stats_.captures++;
    entry.buffers = stepBuffers();
    evictGraphs();
    if (logGraphMemory()) {
        const size_t free_after = freeDeviceMemory();
        std::fprintf(stderr, "infini-qwen3: captured decode graph rows=%u width=%zu live=%llu: device memory free "
                             "%.1f -> %.1f MiB\n", batch.rows, block_tables_.shape.at(1),
                     (unsigned long long)graph_stats_.live_graphs, free_before / 1048576.0, free_after / 1048576.0);
    }
    entry.graph.launch(ops_.stream());
    return logits;
}

Rank::CapturedStep &Rank::graphEntry(const GraphKey &key) {
    auto found = graphs_.find(key);
    if (found == graphs_.end()) {
        graph_recency_.push_front(key);
        found = graphs_.try_emplace(key).first;
        found->second.recency = graph_recency_.begin();
    } else {
        graph_recency_.splice(graph_recency_.begin(), graph_recency_, found->second.recency);
    }
    return found->second;
}

// Destroys the graphs of the least recently used buckets beyond the bound. Their buckets are forgotten too, so a
// bucket that comes back runs eagerly once and is captured again.
void Rank::evictGraphs() {
    size_t live = 0;
    for (const auto &key : graph_recency_) {
        live += graphs_.at(key).graph.valid() ? 1 : 0;
    }
    while (live > kMaxLiveGraphs) {
        const GraphKey oldest = graph_recency_.back();
        graph_recency_.pop_back();
        auto found = graphs_.find(oldest);
        if (found->second.graph.valid()) {
            live--;
            graph_stats_.evictions++;
        }
        graphs_.erase(found);
    }
    graph_stats_.live_graphs = live;
}

std::vector<const void *> Rank::stepBuffers() const {
    return {hidden_.data(), normed_.data(), qkv_.data(),         attn_out_.data(),        gate_up_.data(),
            act_.data(),    last_hidden_.data(), logits_.data(), sampled_.data(),         step_inputs_.data(),
            sampling_inputs_.data(), ops_.workspaceData()};
}

Tensor Rank::forward(const StepBatch &batch, bool all_positions) {
    runLayers(batch);
    return logitsFor(batch, all_positions);
}

void Rank::copyLogits(const Tensor &logits, float *out) {
    const size_t n = logits.numel();
    std::vector<char> raw(n * dtypeSize(dt_));
    ops_.copyToHost(raw.data(), logits.data, raw.size());
    convertHost(out, INFINI_DTYPE_F32, raw.data(), dt_, n);
}



void Rank::copySampled(uint32_t *out, size_t n) {
    std::vector<int64_t> ids(n);
    ops_.copyToHost(ids.data(), sampled_.data(), n * sizeof(int64_t));
    std::copy(ids.begin(), ids.end(), out);
}

} // namespace iq3
