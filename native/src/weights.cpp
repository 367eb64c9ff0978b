#include "weights.hpp"

#include "error.hpp"

#include <cstring>

namespace iq3 {

namespace {

std::string shapeString(const std::vector<size_t> &shape) {
    std::string out = "[";
    for (size_t i = 0; i < shape.size(); i++) {
        out += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
    }
    return out + "]";
}

} // namespace

Weights::Weights(const iq3Meta &meta, Shard shard, infiniDtype_t dt, infiniopRoPEAlgo_t rope_algo, Ops &ops)
    : meta_(meta), shard_(shard), dt_(dt), rope_algo_(rope_algo), ops_(ops), layers_(meta.num_layers) {
    const size_t d = meta.hidden_size, di = meta.intermediate_size, dh = meta.head_dim;
    const size_t q_rows = size_t(meta.num_heads) * dh, kv_rows = size_t(meta.num_kv_heads) * dh;
    // This rank's rows of the fused projections.
    const size_t q_part = shard.part(q_rows), kv_part = shard.part(kv_rows), di_part = shard.part(di);
    const size_t qkv_part = q_part + 2 * kv_part;
    expect("model.embed_tokens.weight", {meta.vocab_size, d}, &embed_, meta.vocab_size);
    if (!meta.tie_word_embeddings) {
        expect("lm_head.weight", {meta.vocab_size, d}, &lm_head_, shard.part(meta.vocab_size), 0, false, Split::rows);
    }
    expect("model.norm.weight", {d}, &final_norm_, 1);
    for (size_t i = 0; i < meta.num_layers; i++) {
        auto &l = layers_[i];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        expect(p + "input_layernorm.weight", {d}, &l.attn_norm, 1);
        expectLinear(p + "self_attn.q_proj.weight", {q_rows, d}, &l.qkv, &l.qkv_scale, qkv_part, 0, true,
                     Split::rows);
        expectLinear(p + "self_attn.k_proj.weight", {kv_rows, d}, &l.qkv, &l.qkv_scale, qkv_part, q_part, true,
                     Split::rows);
        expectLinear(p + "self_attn.v_proj.weight", {kv_rows, d}, &l.qkv, &l.qkv_scale, qkv_part,
                     q_part + kv_part, false, Split::rows);
        expect(p + "self_attn.q_norm.weight", {dh}, &l.q_norm, 1, 0, true);
        expect(p + "self_attn.k_norm.weight", {dh}, &l.k_norm, 1, 0, true);
        expectLinear(p + "self_attn.o_proj.weight", {d, q_rows}, &l.o_proj, &l.o_proj_scale, d, 0, false,
                     Split::cols);
        expect(p + "post_attention_layernorm.weight", {d}, &l.ffn_norm, 1);
        expectLinear(p + "mlp.gate_proj.weight", {di, d}, &l.gate_up, &l.gate_up_scale, 2 * di_part, 0, false,
                     Split::rows);
        expectLinear(p + "mlp.up_proj.weight", {di, d}, &l.gate_up, &l.gate_up_scale, 2 * di_part, di_part, false,
                     Split::rows);
        expectLinear(p + "mlp.down_proj.weight", {d, di}, &l.down, &l.down_scale, d, 0, false, Split::cols);
    }
}

void Weights::expect(const std::string &name, std::vector<size_t> shape, DeviceBuffer *buffer, size_t total_rows,
                     size_t row_offset, bool rope_rows, Split split) {
    // 1-D tensors count as one row of their length.
    const size_t cols = shape.size() == 2 ? shape[1] : shape[0];
    buffer->grow(total_rows * (split == Split::cols ? shard_.part(cols) : cols) * dtypeSize(dt_));
    destinations_[name] = Destination{std::move(shape), buffer, row_offset, rope_rows, split, dt_};
}

infiniDtype_t Weights::storedWeightDtype() const {
    return meta_.weight_format == IQ3_WEIGHTS_INT8 ? INFINI_DTYPE_I8 : INFINI_DTYPE_U8;
}

void Weights::expectLinear(const std::string &name, std::vector<size_t> shape, DeviceBuffer *buffer,
                           DeviceBuffer *scales, size_t total_rows, size_t row_offset, bool rope_rows, Split split) {
    if (!quantized()) {
        expect(name, std::move(shape), buffer, total_rows, row_offset, rope_rows, split);
        return;
    }
    const size_t rows = shape[0], cols = shape[1], block = meta_.weight_block_k;
    const size_t groups = (cols + block - 1) / block;
    if (split == Split::cols && shard_.part(cols) % block != 0 && !shard_.alone()) {
        fail(IQ3_ERR_WEIGHT, "tensor '" + name + "': " + std::to_string(shard_.part(cols)) + " input columns per "
                             "rank are not a whole number of " + std::to_string(block) + "-column scale groups");
    }
    const size_t kept_cols = split == Split::cols ? shard_.part(cols) : cols;
    const size_t kept_groups = split == Split::cols ? shard_.part(groups) : groups;
    buffer->grow(total_rows * kept_cols * dtypeSize(storedWeightDtype()));
    scales->grow(total_rows * kept_groups * sizeof(float));
    destinations_[name] = Destination{shape, buffer, row_offset, rope_rows, split, storedWeightDtype(), true};
    destinations_[name + "_scale"] = Destination{{rows, groups}, scales, row_offset, rope_rows, split,
                                                 INFINI_DTYPE_F32, true};
}

const char *Weights::shardOf(const Destination &dest, const char *data, size_t element_bytes, size_t *rows,
                             size_t *cols, std::vector<char> *gathered) const {
    *rows = dest.shape.size() == 2 ? dest.shape[0] : 1;
    *cols = dest.shape.size() == 2 ? dest.shape[1] : dest.shape[0];
    if (dest.split == Split::rows) {
        const size_t begin = shard_.begin(*rows);
        *rows = shard_.part(*rows);
        return data + begin * *cols * element_bytes;
    }
    if (dest.split == Split::cols) {
        const size_t begin = shard_.begin(*cols), part = shard_.part(*cols);
        gathered->resize(*rows * part * element_bytes);
        for (size_t r = 0; r < *rows; r++) {
            std::memcpy(gathered->data() + r * part * element_bytes, data + (r * *cols + begin) * element_bytes,
                        part * element_bytes);
        }
        *cols = part;
        return gathered->data();
    }
    return data;
}

void Weights::load(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape, const void *data) {
    auto found = destinations_.find(name);
    if (found == destinations_.end()) {
        fail(IQ3_ERR_WEIGHT, "unexpected tensor '" + name + "' for this Qwen3 configuration");
    }
    Destination &dest = found->second;
    if (dest.loaded) {
        fail(IQ3_ERR_WEIGHT, "tensor '" + name + "' was loaded twice");
    }
    if (shape != dest.shape) {
        fail(IQ3_ERR_WEIGHT, "tensor '" + name + "' has shape " + shapeString(shape) + ", expected " +
                                 shapeString(dest.shape));
    }
    if (dest.exact ? dtype != dest.stored : !isFloatDtype(dtype)) {
        fail(IQ3_ERR_WEIGHT, "tensor '" + name + "' has dtype " + std::to_string(int(dtype)) + "; " +
                                 (dest.exact ? "expected " + std::to_string(int(dest.stored)) +
                                                   " (the 8-bit format of this model)"
                                             : std::string("only f32, f16 and bf16 are supported")));
    }
    if (data == nullptr) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "tensor '" + name + "' has no data");
    }
    size_t rows = 0, cols = 0;
    std::vector<char> gathered;
    const char *part = shardOf(dest, static_cast<const char *>(data), dtypeSize(dtype), &rows, &cols, &gathered);
    const size_t stored_size = dtypeSize(dest.stored);
    std::vector<char> converted(rows * cols * stored_size);
    if (dest.exact) {
        std::memcpy(converted.data(), part, converted.size());
    } else {
        convertHost(converted.data(), dest.stored, part, dtype, rows * cols);
    }
    if (dest.rope_rows && rope_algo_ == INFINIOP_ROPE_ALGO_GPT_J) {
        // A 1-D norm weight permutes its elements, a projection its rows (and their scales), in groups of head_dim.
        const size_t unit = shape.size() == 2 ? cols * stored_size : stored_size;
        permuteForGptJ(converted, meta_.head_dim, unit);
    }
    const size_t offset = dest.row_offset * cols * stored_size;
    ops_.activate(); // loading runs on the caller's thread, rank after rank
    ops_.copyToDevice(static_cast<char *>(dest.buffer->data()) + offset, converted.data(), converted.size());
    dest.loaded = true;
}

// NeoX pairs element i with i + dh/2; GPT-J pairs 2i with 2i+1. Moving element i to 2i and i + dh/2 to 2i+1
// (within every head) turns one into the other; q.k is unchanged because q and k are permuted alike.
void Weights::permuteForGptJ(std::vector<char> &data, size_t dh, size_t unit) const {
    const size_t group_bytes = dh * unit;
    std::vector<char> group(group_bytes);
    for (size_t base = 0; base + group_bytes <= data.size(); base += group_bytes) {
        std::memcpy(group.data(), data.data() + base, group_bytes);
        for (size_t i = 0; i < dh / 2; i++) {
            std::memcpy(data.data() + base + (2 * i) * unit, group.data() + i * unit, unit);
            std::memcpy(data.data() + base + (2 * i + 1) * unit, group.data() + (i + dh / 2) * unit, unit);
        }
    }
}

std::vector<std::string> Weights::missing() const {
    std::vector<std::string> names;
    for (const auto &[name, dest] : destinations_) {
        if (!dest.loaded) {
            names.push_back(name);
        }
    }
    return names;
}

Tensor Weights::matrix(const DeviceBuffer &buffer, size_t rows, size_t cols) const {
    return Tensor::contiguous(buffer.data(), dt_, {rows, cols});
}

Tensor Weights::vector(const DeviceBuffer &buffer, size_t n) const {
    return Tensor::contiguous(buffer.data(), dt_, {n});
}

Tensor Weights::embed() const { return matrix(embed_, meta_.vocab_size, meta_.hidden_size); }
Tensor Weights::lmHead() const {
    const size_t vocab = meta_.vocab_size, part = shard_.part(vocab);
    return meta_.tie_word_embeddings ? embed().slice(0, shard_.begin(vocab), part)
                                     : matrix(lm_head_, part, meta_.hidden_size);
}
Tensor Weights::finalNorm() const { return vector(final_norm_, meta_.hidden_size); }
Tensor Weights::attnNorm(size_t i) const { return vector(layers_[i].attn_norm, meta_.hidden_size); }
LinearWeight Weights::linear(const DeviceBuffer &buffer, const DeviceBuffer &scales, size_t rows,
                             size_t cols) const {
    if (!quantized()) {
        return {matrix(buffer, rows, cols), Tensor{}, IQ3_WEIGHTS_DENSE};
    }
    const size_t groups = (cols + meta_.weight_block_k - 1) / meta_.weight_block_k;
    return {Tensor::contiguous(buffer.data(), storedWeightDtype(), {rows, cols}),
            Tensor::contiguous(scales.data(), INFINI_DTYPE_F32, {rows, groups}), meta_.weight_format,
            meta_.weight_block_k};
}

LinearWeight Weights::qkv(size_t i) const {
    const size_t heads = shard_.part(meta_.num_heads) + 2 * shard_.part(meta_.num_kv_heads);
    return linear(layers_[i].qkv, layers_[i].qkv_scale, heads * meta_.head_dim, meta_.hidden_size);
}
Tensor Weights::qNorm(size_t i) const { return vector(layers_[i].q_norm, meta_.head_dim); }
Tensor Weights::kNorm(size_t i) const { return vector(layers_[i].k_norm, meta_.head_dim); }
LinearWeight Weights::oProj(size_t i) const {
    return linear(layers_[i].o_proj, layers_[i].o_proj_scale, meta_.hidden_size,
                  shard_.part(meta_.num_heads) * meta_.head_dim);
}
Tensor Weights::ffnNorm(size_t i) const { return vector(layers_[i].ffn_norm, meta_.hidden_size); }
LinearWeight Weights::gateUp(size_t i) const {
    return linear(layers_[i].gate_up, layers_[i].gate_up_scale, 2 * shard_.part(meta_.intermediate_size),
                  meta_.hidden_size);
}
LinearWeight Weights::down(size_t i) const {
    return linear(layers_[i].down, layers_[i].down_scale, meta_.hidden_size, shard_.part(meta_.intermediate_size));
}

} // namespace iq3
