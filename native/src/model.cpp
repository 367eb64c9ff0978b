#include "model.hpp"

#include "error.hpp"

#include <omp.h>

#include <algorithm>
#include <set>

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
    require(m.weight_format == IQ3_WEIGHTS_DENSE || m.weight_format == IQ3_WEIGHTS_INT8 ||
                m.weight_format == IQ3_WEIGHTS_FP8_E4M3, "weight_format must be IQ3_WEIGHTS_*");
    require(m.weight_format == IQ3_WEIGHTS_DENSE || m.weight_block_k > 0,
            "weight_block_k must be > 0 for 8-bit weights");
    return m;
}

std::string deviceName(infiniDevice_t device) {
    return device == INFINI_DEVICE_CPU ? "cpu" : "device type " + std::to_string(int(device));
}

// The ranks split the KV heads (and with them the query heads) and the MLP columns evenly; on an accelerator each
// rank needs a device of its own; on the CPU the ranks are threads of this process on the host (device 0).
const iq3Meta &validatedFor(const iq3Meta &meta, infiniDevice_t device, const std::vector<int> &ids) {
    validated(meta);
    const size_t ndev = ids.size();
    auto bad = [](const std::string &why) { fail(IQ3_ERR_INVALID_ARGUMENT, why); };
    if (ndev == 0) {
        bad("ndev must be >= 1");
    }
    if (meta.num_kv_heads % ndev != 0 || meta.intermediate_size % ndev != 0 || meta.vocab_size % ndev != 0) {
        bad("ndev " + std::to_string(ndev) + " must divide the " + std::to_string(meta.num_kv_heads) +
            " KV heads, the intermediate size " + std::to_string(meta.intermediate_size) + " and the vocabulary " +
            std::to_string(meta.vocab_size) + " (each rank holds an equal share of each)");
    }
    int count = 0;
    IQ3_INFINI(infinirtGetDeviceCount(device, &count));
    std::set<int> seen;
    for (int id : ids) {
        if (id < 0 || id >= count) {
            bad("device id " + std::to_string(id) + " is not one of the " + std::to_string(count) + " " +
                deviceName(device) + " devices visible");
        }
        if (device != INFINI_DEVICE_CPU && !seen.insert(id).second) {
            bad("device id " + std::to_string(id) + " appears twice; each rank needs a device of its own");
        }
    }
    return meta;
}

std::vector<std::unique_ptr<Rank>> makeRanks(const iq3Meta &meta, infiniDevice_t device, const std::vector<int> &ids,
                                             const Communicators &comms) {
    const infiniDtype_t dt = computeDtype(meta.dtype);
    const infiniopRoPEAlgo_t rope_algo = ropeAlgo(meta.rope_layout, device);
    std::vector<std::unique_ptr<Rank>> ranks;
    for (size_t r = 0; r < ids.size(); r++) {
        const Shard shard{r, ids.size()};
        ranks.push_back(std::make_unique<Rank>(meta, shard, dt, rope_algo, device, ids[r], comms.of(r)));
    }
    return ranks;
}

} // namespace

Communicators::Communicators(infiniDevice_t device, const std::vector<int> &device_ids) {
    if (device_ids.size() == 1) {
        return;
    }
    comms_.resize(device_ids.size());
    const int ranks = int(device_ids.size());
    const infiniStatus_t status = infinicclCommInitAll(device, comms_.data(), ranks, device_ids.data());
    if (status == INFINI_STATUS_DEVICE_TYPE_NOT_SUPPORTED) {
        fail(IQ3_ERR_NOT_IMPLEMENTED, "InfiniCCL has no backend for " + deviceName(device) +
                                          " in this build (an NVIDIA build needs NCCL; see the README), so ndev "
                                          "must be 1");
    }
    checkInfini(status, "infinicclCommInitAll");
}

Communicators::~Communicators() {
    for (auto comm : comms_) {
        infinicclCommDestroy(comm);
    }
}

Model::Model(const iq3Meta &meta, infiniDevice_t device, const std::vector<int> &device_ids)
    : meta_(validatedFor(meta, device, device_ids)),
      comms_(device, device_ids),
      ranks_(makeRanks(meta_, device, device_ids, comms_)),
      threads_(device_ids.size(), [this, device](size_t r) {
          ranks_[r]->ops().activate();
          if (device == INFINI_DEVICE_CPU) { // the ranks share the cores instead of each using all of them
              omp_set_num_threads(std::max(1, omp_get_max_threads() / int(ranks_.size())));
          }
      }) {}

void Model::loadWeight(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape,
                       const void *data) {
    if (loaded_) {
        fail(IQ3_ERR_INVALID_ARGUMENT, "weights are already complete; cannot load '" + name + "'");
    }
    for (auto &rank : ranks_) {
        rank->weights().load(name, dtype, shape, data);
    }
}

void Model::finishLoading() {
    auto missing = head().weights().missing();
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
    enum : int8_t { UNUSED, READ, WRITTEN };
    std::vector<int8_t> block_user(meta_.kv_blocks, UNUSED);
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
        // Requests may share blocks they only read (a cached prefix); a block this step writes into (one holding a
        // position in [pos, end)) belongs to its request alone, or two requests would race on its K/V.
        for (uint64_t i = 0; i < blocks.size(); i++) {
            const uint32_t block = blocks[i];
            if (block >= meta_.kv_blocks) {
                bad(who + " uses KV block " + std::to_string(block) + " of " + std::to_string(meta_.kv_blocks));
            }
            const bool written = (i + 1) * meta_.kv_block_size > pos;
            const int64_t user = block_user[block];
            if (user == WRITTEN || (written && user != UNUSED)) {
                bad("KV block " + std::to_string(block) + " is written by one request of the step and used again by " +
                    who);
            }
            block_user[block] = written ? WRITTEN : READ;
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
    if (step.decodeOnly() && !tracing_) { // traces keep the shapes of the requests themselves
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

void Model::prepare(const StepBatch &batch, bool all_positions, const std::vector<SamplingParams> *sampling) {
    trace_entries_.clear(); // they point into the ranks' traces, which the ranks clear now
    const StepInputs inputs = stepInputs(batch, meta_.kv_block_size);
    threads_.run([&](size_t r) {
        ranks_[r]->prepare(batch, inputs, all_positions);
        if (r == 0 && sampling != nullptr) { // on the head's thread: its device is the current one
            ranks_[r]->prepareSampling(*sampling, batch.logitRows(false));
        }
    });
}

void Model::infer(const StepBatch &batch, const std::vector<SamplingParams> &sampling, uint32_t *out_tokens,
                  float *logits_out) {
    ensureLoaded();
    if (sampling.size() != batch.nreq()) {
        fail(IQ3_ERR_INTERNAL, "one sampling entry per request is needed");
    }
    prepare(batch, false, &sampling);
    Tensor logits;
    threads_.run([&](size_t r) {
        const Tensor out = ranks_[r]->runStep(batch);
        if (r == 0) {
            logits = out;
        }
    });
    collectTrace();
    head().ops().activate();
    if (logits_out != nullptr) {
        head().copyLogits(logits.slice(0, 0, batch.nreq()), logits_out);
    }
    head().copySampled(out_tokens, batch.nreq());
}

void Model::forward(const StepBatch &batch, bool all_positions, float *out) {
    ensureLoaded();
    prepare(batch, all_positions);
    Tensor logits;
    threads_.run([&](size_t r) {
        const Tensor result = ranks_[r]->forward(batch, all_positions);
        if (r == 0) {
            logits = result;
        }
    });
    collectTrace();
    head().ops().activate();
    head().copyLogits(logits.slice(0, 0, all_positions ? batch.ntok : batch.nreq()), out);
}

void Model::setTrace(bool enabled) {
    tracing_ = enabled;
    for (auto &rank : ranks_) {
        rank->trace().enabled = enabled;
        rank->trace().clear();
    }
    trace_entries_.clear();
}

void Model::collectTrace() {
    trace_entries_.clear();
    for (auto &rank : ranks_) {
        for (const auto &entry : rank->trace().entries()) {
            trace_entries_.push_back(&entry);
        }
    }
}

} // namespace iq3
