#include "model.hpp"

#include "error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace iq3 {

namespace {

infiniDtype_t computeDtype(int32_t dtype) {
    if (dtype != IQ3_DTYPE_F32 && dtype != IQ3_DTYPE_F16 && dtype != IQ3_DTYPE_BF16) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "compute dtype must be f32, f16 or bf16, got " + std::to_string(dtype));
    }
    return infiniDtype_t(dtype);
}

// Backends whose RoPE implements the NeoX layout in InfiniCore 0.1.0; the others get GPT-J with permuted rows.
infiniopRoPEAlgo_t ropeAlgo(int32_t layout, infiniDevice_t device) {
    if (layout == IQ3_ROPE_GPT_J) {
        return INFINIOP_ROPE_ALGO_GPT_J;
    }
    if (layout == IQ3_ROPE_GPT_NEOX) {
        return INFINIOP_ROPE_ALGO_GPT_NEOX;
    }
    if (layout != IQ3_ROPE_AUTO) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "rope_layout must be -1 (auto), 0 (GPT-J) or 1 (NeoX)");
    }
    switch (device) {
    case INFINI_DEVICE_CPU:
    case INFINI_DEVICE_NVIDIA:
    case INFINI_DEVICE_METAX:
    case INFINI_DEVICE_MOORE: return INFINIOP_ROPE_ALGO_GPT_NEOX;
    default: return INFINIOP_ROPE_ALGO_GPT_J;
    }
}

const iq3Meta &validated(const iq3Meta &m) {
    auto require = [](bool ok, const char *what) {
        if (!ok) {
            fail(IQ3_ERR_INVALID_ARGUMENT, std::string("invalid model meta: ") + what);
        }
    };
    require(m.num_layers > 0, "num_layers must be > 0");
    require(m.hidden_size > 0 && m.intermediate_size > 0, "hidden_size and intermediate_size must be > 0");
    require(m.num_heads > 0 && m.num_kv_heads > 0, "num_heads and num_kv_heads must be > 0");
    require(m.num_heads % m.num_kv_heads == 0, "num_heads must be a multiple of num_kv_heads");
    require(m.head_dim > 0 && m.head_dim % 2 == 0, "head_dim must be even and > 0");
    require(m.vocab_size > 0, "vocab_size must be > 0");
    require(m.rms_norm_eps > 0 && m.rope_theta > 0, "rms_norm_eps and rope_theta must be > 0");
    require(m.kv_blocks > 0 && m.kv_block_size > 0, "kv_blocks and kv_block_size must be > 0");
    require(m.max_seq_tokens > 0, "max_seq_tokens must be > 0");
    require(m.max_step_tokens > 0, "max_step_tokens must be > 0");
    return m;
}

} // namespace

Model::Model(const iq3Meta &meta, infiniDevice_t device, int device_id)
    : meta_(validated(meta)),
      dt_(computeDtype(meta.dtype)),
      rope_algo_(ropeAlgo(meta.rope_layout, device)),
      ops_(device, device_id),
      weights_(meta_, dt_, rope_algo_, ops_),
      kv_(meta.num_layers, meta.kv_blocks, meta.kv_block_size, meta.num_kv_heads, meta.head_dim, dt_),
      graphs_enabled_(meta.cuda_graphs != 0 && device != INFINI_DEVICE_CPU) {
    buildRopeTables();
}

// Same arithmetic as transformers' default RoPE: f32 inverse frequencies, f32 angle = position * inv_freq,
// cos/sin in f32, then cast to the compute dtype.
void Model::buildRopeTables() {
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

void Model::loadWeight(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape,
                       const void *data) {
    if (loaded_) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "weights are already complete; cannot load '" + name + "'");
    }
    weights_.load(name, dtype, shape, data);
}

void Model::finishLoading() {
    auto missing = weights_.missing();
    if (!missing.empty()) {
        std::string list;
        for (size_t i = 0; i < missing.size() && i < 8; i++) {
            list += (i ? ", " : "") + missing[i];
        }
        if (missing.size() > 8) {
            list += ", ... (" + std::to_string(missing.size()) + " in all)";
        }
        fail(IQ3_ERR_WEIGHT, "missing tensors: " + list);
    }
    loaded_ = true;
}

void Model::ensureLoaded() const {
    if (!loaded_) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "the model's weights are not complete (call iq3FinishLoading first)");
    }
}

StepBatch Model::checkBatch(const iq3Batch &b) const {
    auto bad = [](const std::string &why) { fail(IQ3_ERR_INVALID_ARGUMENT, "invalid batch: " + why); };
    if (b.nreq == 0 || b.ntok == 0) {
        bad("a step needs at least one request and one token");
    }
    if (!b.tokens || !b.req_lens || !b.req_pos || !b.block_tables || b.block_table_width == 0) {
        bad("null array or empty block tables");
    }
    if (b.ntok > meta_.max_step_tokens) {
        bad(std::to_string(b.ntok) + " tokens exceed max_step_tokens " + std::to_string(meta_.max_step_tokens));
    }
    StepBatch step{b.tokens, b.ntok, {}, {}, {}, {}, 0, 0};
    std::vector<bool> block_used(meta_.kv_blocks, false);
    uint32_t start = 0;
    bool leading_decode = true;
    for (uint32_t r = 0; r < b.nreq; r++) {
        const uint32_t len = b.req_lens[r], pos = b.req_pos[r];
        const std::string who = "request " + std::to_string(r);
        if (len == 0) {
            bad(who + " has no tokens");
        }
        const uint64_t end = uint64_t(pos) + len;
        if (end > meta_.max_seq_tokens) {
            fail(IQ3_ERR_CAPACITY, who + " would reach position " + std::to_string(end) + " but the context holds " +
                                       std::to_string(meta_.max_seq_tokens) + " tokens");
        }
        const uint64_t needed = (end + meta_.kv_block_size - 1) / meta_.kv_block_size;
        if (needed > b.block_table_width) {
            fail(IQ3_ERR_CAPACITY, who + " needs " + std::to_string(needed) + " KV blocks; its block table has " +
                                       std::to_string(b.block_table_width));
        }
        std::vector<uint32_t> blocks(b.block_tables + size_t(r) * b.block_table_width,
                                     b.block_tables + size_t(r) * b.block_table_width + needed);
        for (uint32_t block : blocks) {
            if (block >= meta_.kv_blocks) {
                bad(who + " uses KV block " + std::to_string(block) + " of " + std::to_string(meta_.kv_blocks));
            }
            if (block_used[block]) {
                bad("KV block " + std::to_string(block) + " appears twice in one step");
            }
            block_used[block] = true;
        }
        if (uint64_t(start) + len > b.ntok) {
            bad("request lengths add up to more than ntok");
        }
        leading_decode = leading_decode && len == 1;
        step.decoding += leading_decode ? 1 : 0;
        step.lens.push_back(len);
        step.pos.push_back(pos);
        step.starts.push_back(start);
        step.blocks.push_back(std::move(blocks));
        start += len;
    }
    if (start != b.ntok) {
        bad("request lengths add up to " + std::to_string(start) + ", not ntok " + std::to_string(b.ntok));
    }
    step.rows = b.ntok;
    if (step.decodeOnly() && !trace_.enabled) { // traces keep the shapes of the requests themselves
        while (step.rows & (step.rows - 1)) {
            step.rows += step.rows & -step.rows; // up to the next power of two
        }
        step.rows = std::min(step.rows, meta_.max_step_tokens);
    }
    for (uint32_t t = 0; t < b.ntok; t++) {
        if (b.tokens[t] >= meta_.vocab_size) {
            bad("token id " + std::to_string(b.tokens[t]) + " is outside the vocabulary of " +
                std::to_string(meta_.vocab_size));
        }
    }
    return step;
}

// One upload of everything this step's operators read: token ids and positions, the slot of each new token,
// the block tables (rows as wide as the step's longest, rounded up to a power of two so that decode descriptors
// repeat), past + new and new lengths. Padding rows (batch.rows beyond ntok) are sequences of their own with
// token 0 at position 0, no slot (-1: nothing cached) and no keys (length 0: zero attention output).
void Model::uploadStepInputs(const StepBatch &batch) {
    const size_t rows = batch.rows, nseq = batch.decodeOnly() ? rows : batch.nreq(), bs = meta_.kv_block_size;
    size_t width = 1;
    for (const auto &blocks : batch.blocks) {
        while (width < blocks.size()) {
            width *= 2;
        }
    }
    std::vector<int64_t> host(3 * rows + nseq * width + 2 * nseq, 0);
    int64_t *ids = host.data(), *positions = ids + rows, *slots = positions + rows, *tables = slots + rows,
            *seq_lens = tables + nseq * width, *new_lens = seq_lens + nseq;
    std::fill(slots, slots + rows, -1);
    for (size_t r = 0; r < batch.nreq(); r++) {
        const auto &blocks = batch.blocks[r];
        for (size_t i = 0; i < batch.lens[r]; i++) {
            const size_t t = batch.starts[r] + i, position = batch.pos[r] + i;
            ids[t] = batch.tokens[t];
            positions[t] = int64_t(position);
            slots[t] = int64_t(blocks[position / bs]) * int64_t(bs) + int64_t(position % bs);
        }
        std::copy(blocks.begin(), blocks.end(), tables + r * width);
        seq_lens[r] = int64_t(batch.pos[r]) + batch.lens[r];
        new_lens[r] = batch.lens[r];
    }
    step_inputs_.grow(host.size() * sizeof(int64_t));
    ops_.copyToDevice(step_inputs_.data(), host.data(), host.size() * sizeof(int64_t));
    auto *base = static_cast<int64_t *>(step_inputs_.data());
    token_ids_ = Tensor::contiguous(base, INFINI_DTYPE_I64, {rows});
    positions_ = Tensor::contiguous(base + rows, INFINI_DTYPE_I64, {rows});
    slot_mapping_ = Tensor::contiguous(base + 2 * rows, INFINI_DTYPE_I64, {rows});
    block_tables_ = Tensor::contiguous(base + 3 * rows, INFINI_DTYPE_I64, {nseq, width});
    seq_lens_ = Tensor::contiguous(base + 3 * rows + nseq * width, INFINI_DTYPE_I64, {nseq});
    new_lens_ = Tensor::contiguous(base + 3 * rows + nseq * width + nseq, INFINI_DTYPE_I64, {nseq});
}

void Model::runLayers(const StepBatch &batch) {
    const size_t ntok = batch.rows, d = meta_.hidden_size, dh = meta_.head_dim, di = meta_.intermediate_size;
    const size_t nh = meta_.num_heads, nkvh = meta_.num_kv_heads, es = dtypeSize(dt_);
    const float eps = meta_.rms_norm_eps;

    hidden_.grow(ntok * d * es);
    normed_.grow(ntok * d * es);
    qkv_.grow(ntok * (nh + 2 * nkvh) * dh * es);
    attn_out_.grow(ntok * nh * dh * es);
    gate_up_.grow(ntok * 2 * di * es);
    act_.grow(ntok * di * es);

    const auto x = Tensor::contiguous(hidden_.data(), dt_, {ntok, d});
    const auto xn = Tensor::contiguous(normed_.data(), dt_, {ntok, d});
    const auto qkv = Tensor::contiguous(qkv_.data(), dt_, {ntok, (nh + 2 * nkvh) * dh});
    const auto q = qkv.slice(1, 0, nh * dh).split(1, {nh, dh});
    const auto k = qkv.slice(1, nh * dh, nkvh * dh).split(1, {nkvh, dh});
    const auto v = qkv.slice(1, (nh + nkvh) * dh, nkvh * dh).split(1, {nkvh, dh});
    const auto attn_out = Tensor::contiguous(attn_out_.data(), dt_, {ntok, nh * dh});
    const auto gate_up = Tensor::contiguous(gate_up_.data(), dt_, {ntok, 2 * di});
    const auto gate = gate_up.slice(1, 0, di), up = gate_up.slice(1, di, di);
    const auto act = Tensor::contiguous(act_.data(), dt_, {ntok, di});
    const auto &pos = positions_;
    const auto sin = Tensor::contiguous(sin_table_.data(), dt_, {meta_.max_seq_tokens, dh / 2});
    const auto cos = Tensor::contiguous(cos_table_.data(), dt_, {meta_.max_seq_tokens, dh / 2});
    // o_proj and down add the residual inside the GEMM (beta = 1); the trace records the residual stream after
    // it, which is what this step computes.
    auto residual_linear = [&](const std::string &name, const Tensor &input, const Tensor &weight) {
        ops_.gemm(x, input, weight.permute({1, 0}), 1.0f, 1.0f);
        trace_.record(ops_, name, x);
    };

    ops_.embedding(x, token_ids_, weights_.embed());
    trace_.record(ops_, "embed", x);
    for (size_t l = 0; l < meta_.num_layers; l++) {
        const std::string p = "layers." + std::to_string(l) + ".";
        ops_.rmsnorm(xn, x, weights_.attnNorm(l), eps);
        trace_.record(ops_, p + "attn_norm", xn);
        ops_.gemm(qkv, xn, weights_.qkv(l).permute({1, 0}));
        trace_.record(ops_, p + "q", q);
        trace_.record(ops_, p + "k", k);
        trace_.record(ops_, p + "v", v);
        ops_.rmsnorm(q, q, weights_.qNorm(l), eps); // Qwen3 QK-norm: over head_dim, before RoPE
        ops_.rmsnorm(k, k, weights_.kNorm(l), eps);
        trace_.record(ops_, p + "q_norm", q);
        trace_.record(ops_, p + "k_norm", k);
        ops_.rope(q, q, pos, sin, cos, rope_algo_);
        ops_.rope(k, k, pos, sin, cos, rope_algo_);
        trace_.record(ops_, p + "q_rope", q);
        trace_.record(ops_, p + "k_rope", k);
        attention(batch, l, q, k, v, attn_out);
        trace_.record(ops_, p + "attn", attn_out);
        residual_linear(p + "attn_residual", attn_out, weights_.oProj(l));
        ops_.rmsnorm(xn, x, weights_.ffnNorm(l), eps);
        trace_.record(ops_, p + "ffn_norm", xn);
        ops_.gemm(gate_up, xn, weights_.gateUp(l).permute({1, 0}));
        trace_.record(ops_, p + "gate", gate);
        trace_.record(ops_, p + "up", up);
        ops_.siluAndMul(act, gate_up); // silu(gate) * up
        trace_.record(ops_, p + "act", act);
        residual_linear(p + "mlp_residual", act, weights_.down(l));
    }
}

// The new K/V of all requests go into their blocks in one launch. Decoding requests (the leading ones with a
// single new token) then attend over their blocks in one paged-attention launch; a prompt chunk without a past
// uses GEMMs over its own K/V; a chunk with a past attends over its blocks with the paged prefill operator.
void Model::attention(const StepBatch &batch, size_t layer, const Tensor &q, const Tensor &k, const Tensor &v,
                      const Tensor &out) {
    const float scale = 1.0f / std::sqrt(float(meta_.head_dim));
    const auto k_cache = kv_.keys(layer), v_cache = kv_.values(layer);
    const auto out_heads = out.split(1, {meta_.num_heads, meta_.head_dim});
    ops_.pagedCaching(k_cache, v_cache, k, v, slot_mapping_);
    const uint32_t nd = batch.decodeOnly() ? batch.rows : batch.decoding; // padding rows attend to nothing
    if (nd > 0) {
        ops_.pagedAttention(out_heads.slice(0, 0, nd), q.slice(0, 0, nd), k_cache, v_cache,
                            block_tables_.slice(0, 0, nd), seq_lens_.slice(0, 0, nd), scale);
    }
    for (uint32_t r = nd; r < batch.nreq(); r++) {
        if (batch.pos[r] == 0) {
            contiguousAttention(batch, r, q, k, v, out);
            continue;
        }
        const size_t start = batch.starts[r], seq = batch.lens[r];
        ops_.pagedAttentionPrefill(out_heads.slice(0, start, seq), q.slice(0, start, seq), k_cache, v_cache,
                                   block_tables_.slice(0, r, 1), seq_lens_.slice(0, r, 1), new_lens_.slice(0, r, 1),
                                   scale);
    }
}

// softmax(Q K^T / sqrt(dh)) V with the causal mask, as strided GEMMs over [kv_head, group * seq, .] (GQA without
// copying K/V per head), reading K/V where the QKV projection left them.
void Model::contiguousAttention(const StepBatch &batch, uint32_t r, const Tensor &q, const Tensor &k,
                                const Tensor &v, const Tensor &out) {
    const size_t nh = meta_.num_heads, nkvh = meta_.num_kv_heads, dh = meta_.head_dim, es = dtypeSize(dt_);
    const size_t ngroup = nh / nkvh, start = batch.starts[r], seq = batch.lens[r];
    const float scale = 1.0f / std::sqrt(float(dh));
    const auto keys = k.slice(0, start, seq);   // [seq, nkvh, dh]
    const auto values = v.slice(0, start, seq); // [seq, nkvh, dh]

    q_heads_.grow(nh * seq * dh * es);
    const auto q_heads = Tensor::contiguous(q_heads_.data(), dt_, {nkvh, ngroup, seq, dh});
    ops_.rearrange(q_heads, q.slice(0, start, seq).split(1, {nkvh, ngroup}).permute({1, 2, 0, 3}));

    scores_.grow(nh * seq * seq * es);
    const auto scores = Tensor::contiguous(scores_.data(), dt_, {nkvh, ngroup * seq, seq});
    ops_.gemm(scores, q_heads.view({nkvh, ngroup * seq, dh}), keys.permute({1, 2, 0}), scale, 0.0f);
    const auto probs = scores.view({nh, seq, seq});
    ops_.causalSoftmax(probs, probs);

    head_out_.grow(nh * seq * dh * es);
    const auto head_out = Tensor::contiguous(head_out_.data(), dt_, {nkvh, ngroup * seq, dh});
    ops_.gemm(head_out, scores, values.permute({1, 0, 2}), 1.0f, 0.0f);
    ops_.rearrange(out.slice(0, start, seq).split(1, {nkvh, ngroup, dh}),
                   head_out.view({nkvh, ngroup, seq, dh}).permute({2, 0, 1, 3}));
}

// Every row when all positions are asked for or every request has one row (decode, padding included); else the
// last row of each request.
size_t Model::logitRows(const StepBatch &batch, bool all_positions) const {
    return all_positions || batch.decodeOnly() ? batch.rows : batch.nreq();
}

Tensor Model::logitsView(const StepBatch &batch) const {
    return Tensor::contiguous(logits_.data(), dt_, {logitRows(batch, false), meta_.vocab_size});
}

Tensor Model::logitsFor(const StepBatch &batch, bool all_positions) {
    const size_t d = meta_.hidden_size, es = dtypeSize(dt_), vocab = meta_.vocab_size;
    const size_t rows = logitRows(batch, all_positions);
    const bool every_row = all_positions || batch.decodeOnly();
    const auto x = Tensor::contiguous(hidden_.data(), dt_, {batch.rows, d});
    last_hidden_.grow(rows * d * es);
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
    logits_.grow(rows * vocab * es);
    const auto logits = Tensor::contiguous(logits_.data(), dt_, {rows, vocab});
    ops_.gemm(logits, h, weights_.lmHead().permute({1, 0}));
    trace_.record(ops_, "logits", logits);
    return logits;
}

void Model::infer(const StepBatch &batch, const std::vector<SamplingParams> &sampling, uint32_t *out_tokens,
                  float *logits_out) {
    ensureLoaded();
    if (sampling.size() != batch.nreq()) {
        fail(IQ3_ERR_INTERNAL, "one sampling entry per request is needed");
    }
    ops_.activate();
    trace_.clear();
    uploadStepInputs(batch);
    const size_t rows = logitRows(batch, false);
    uploadSampling(sampling, rows);
    const auto logits = runStep(batch);
    if (logits_out != nullptr) {
        copyLogits(logits.slice(0, 0, batch.nreq()), logits_out);
    }
    std::vector<int64_t> ids(rows);
    ops_.copyToHost(ids.data(), sampled_.data(), rows * sizeof(int64_t));
    std::copy(ids.begin(), ids.begin() + batch.nreq(), out_tokens);
}

// Eager, or on a backend that captures graphs, a decode step replayed from the graph of its batch bucket. A
// bucket's first step runs eagerly (descriptors, workspaces and library state come into being outside a
// capture); its second is captured; later ones replay while the recorded buffers keep their addresses.
Tensor Model::runStep(const StepBatch &batch) {
    if (!graphs_enabled_ || !batch.decodeOnly() || trace_.enabled) {
        return computeStep(batch);
    }
    auto &entry = graphs_[{batch.rows, block_tables_.shape.at(1)}];
    if (entry.graph.valid() && entry.buffers == stepBuffers()) {
        entry.graph.launch(ops_.stream());
        return logitsView(batch);
    }
    if (entry.unsupported || entry.eager_runs++ == 0) {
        return computeStep(batch);
    }
    Tensor logits;
    std::string why;
    bool captured = false;
    try {
        captured = entry.graph.capture(ops_.stream(), [&] { logits = computeStep(batch); }, &why);
    } catch (const Error &e) { // an operation the capture does not allow: the capture ended, the step is redone
        why = e.what();
    }
    if (!captured) {
        entry.unsupported = true; // this bucket stays eager; the step itself still runs
        std::fprintf(stderr, "infini-qwen3: decode steps of %u rows run eagerly: %s\n", batch.rows, why.c_str());
        return computeStep(batch);
    }
    entry.buffers = stepBuffers();
    entry.graph.launch(ops_.stream());
    return logits;
}

// Everything a step launches after its inputs are on the device: layers, logits, one batched draw.
Tensor Model::computeStep(const StepBatch &batch) {
    runLayers(batch);
    const auto logits = logitsFor(batch, false);
    const auto *params = static_cast<const float *>(sampling_inputs_.data());
    const size_t rows = logits.shape.at(0);
    const Tensor result = Tensor::contiguous(sampled_.data(), INFINI_DTYPE_I64, {rows});
    ops_.randomSampleBatch(result, logits, params, params + rows, reinterpret_cast<const int *>(params + 3 * rows),
                           params + 2 * rows);
    return logits;
}

// [random rows][top_p rows][temperature rows][top_k rows] as 4-byte words in one upload; rows beyond the requests
// (padding) draw greedily.
void Model::uploadSampling(const std::vector<SamplingParams> &sampling, size_t rows) {
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

std::vector<const void *> Model::stepBuffers() const {
    return {hidden_.data(), normed_.data(), qkv_.data(),         attn_out_.data(),        gate_up_.data(),
            act_.data(),    last_hidden_.data(), logits_.data(), sampled_.data(),         step_inputs_.data(),
            sampling_inputs_.data(), ops_.workspaceData()};
}

void Model::forward(const StepBatch &batch, bool all_positions, float *out) {
    ensureLoaded();
    ops_.activate();
    trace_.clear();
    uploadStepInputs(batch);
    runLayers(batch);
    const auto logits = logitsFor(batch, all_positions);
    copyLogits(logits.slice(0, 0, all_positions ? batch.ntok : batch.nreq()), out);
}

void Model::copyLogits(const Tensor &logits, float *out) {
    const size_t n = logits.numel();
    std::vector<char> raw(n * dtypeSize(dt_));
    ops_.copyToHost(raw.data(), logits.data, raw.size());
    convertHost(out, INFINI_DTYPE_F32, raw.data(), dt_, n);
}

} // namespace iq3
