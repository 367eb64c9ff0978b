// One rank's Qwen3 weights on its device, entered by their Hugging Face names. Q/K/V are stored fused as one
// [q; k; v] matrix and gate/up as [gate; up], so each projection group is one GEMM. Under tensor parallelism a
// rank keeps its shard, cut at load time: q/k/v by heads and gate/up by rows (column parallel), o_proj and
// down by input columns (row parallel), lm_head by vocabulary rows (a tied lm_head is a row range of the
// embedding); norms and the embedding whole. The decoder layers' projections may be stored as 8-bit values with
// F32 scales per row and input group (iq3Meta.weight_format): they are kept as stored, with their scales, and
// handed to the projection as a LinearWeight.
#pragma once

#include "infini_qwen3.h"
#include "ops.hpp"
#include "shard.hpp"

#include <map>
#include <string>
#include <vector>

namespace iq3 {

struct LayerWeights {
    DeviceBuffer attn_norm, qkv, q_norm, k_norm, o_proj, ffn_norm, gate_up, down;
    DeviceBuffer qkv_scale, o_proj_scale, gate_up_scale, down_scale; // 8-bit projections only
};

// A projection's weight as stored: [out, in] in the compute dtype, or 8-bit values with their scales
// [out, ceil(in / block_k)] (F32).
struct LinearWeight {
    Tensor weight;
    Tensor scales;      // 8-bit formats only
    int32_t format;     // IQ3_WEIGHTS_*
    size_t block_k = 0; // inputs per scale

    bool dense() const { return format == IQ3_WEIGHTS_DENSE; }
};

class Weights {
public:
    Weights(const iq3Meta &meta, Shard shard, infiniDtype_t dt, infiniopRoPEAlgo_t rope_algo, Ops &ops);

    // Cuts this rank's shard, converts it to the compute dtype (permuting q/k rows for GPT-J RoPE) and uploads
    // it; throws naming the tensor.
    void load(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape, const void *data);
    std::vector<std::string> missing() const;

    // Views of this rank's shard, all [rows, cols] row-major as in the checkpoint.
    Tensor embed() const;
    Tensor lmHead() const;
    Tensor finalNorm() const;
    Tensor attnNorm(size_t layer) const;
    LinearWeight qkv(size_t layer) const;
    Tensor qNorm(size_t layer) const;
    Tensor kNorm(size_t layer) const;
    LinearWeight oProj(size_t layer) const;
    Tensor ffnNorm(size_t layer) const;
    LinearWeight gateUp(size_t layer) const;
    LinearWeight down(size_t layer) const;

private:
    enum class Split { whole, rows, cols }; // what of a tensor this rank keeps
    // Where one named checkpoint tensor goes.
    struct Destination {
        std::vector<size_t> shape; // as in the checkpoint
        DeviceBuffer *buffer;
        size_t row_offset;    // rows of the fused matrix (of this rank's shard) that precede this tensor
        bool rope_rows;       // rows (or elements) are head_dim groups to permute for GPT-J RoPE
        Split split;
        infiniDtype_t stored; // the dtype it is kept in on the device: the compute dtype, or as given (exact)
        bool exact = false;   // 8-bit weights and their scales: given in `stored`, copied as they are
        bool loaded = false;
    };
    void expect(const std::string &name, std::vector<size_t> shape, DeviceBuffer *buffer, size_t total_rows,
                size_t row_offset = 0, bool rope_rows = false, Split split = Split::whole);
    // A decoder-layer projection: its weight, and with an 8-bit format its scales ("<name>_scale").
    void expectLinear(const std::string &name, std::vector<size_t> shape, DeviceBuffer *buffer,
                      DeviceBuffer *scales, size_t total_rows, size_t row_offset, bool rope_rows, Split split);
    LinearWeight linear(const DeviceBuffer &buffer, const DeviceBuffer &scales, size_t rows, size_t cols) const;
    bool quantized() const { return meta_.weight_format != IQ3_WEIGHTS_DENSE; }
    infiniDtype_t storedWeightDtype() const;
    // This rank's part of a checkpoint tensor as contiguous host memory in the source dtype: the data itself, or
    // a copy of its columns in *gathered.
    const char *shardOf(const Destination &dest, const char *data, size_t element_bytes, size_t *rows, size_t *cols,
                        std::vector<char> *gathered) const;
    Tensor matrix(const DeviceBuffer &buffer, size_t rows, size_t cols) const;
    Tensor vector(const DeviceBuffer &buffer, size_t n) const;
    void permuteForGptJ(std::vector<char> &data, size_t head_dim, size_t unit_bytes) const;

    iq3Meta meta_;
    Shard shard_;
    infiniDtype_t dt_;
    infiniopRoPEAlgo_t rope_algo_;
    Ops &ops_;
    DeviceBuffer embed_, lm_head_, final_norm_;
    std::vector<LayerWeights> layers_;
    std::map<std::string, Destination> destinations_;
};

} // namespace iq3
