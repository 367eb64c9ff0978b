// The Qwen3 dense decoder over one or more devices: the coordinator. It checks batches against the model's
// limits, hands every weight to every rank (each keeps its shard), runs each step on all ranks at once (one
// thread per rank when there are several) and returns what the head rank sampled. The math is in rank.cpp.
#pragma once

#include "rank.hpp"
#include "rank_threads.hpp"

#include <infiniccl.h>

#include <memory>
#include <mutex>
#include <vector>

namespace iq3 {

// InfiniCCL communicators of the ranks, destroyed with the model.
class Communicators {
public:
    Communicators(infiniDevice_t device, const std::vector<int> &device_ids);
    ~Communicators();
    Communicators(const Communicators &) = delete;
    Communicators &operator=(const Communicators &) = delete;
    infinicclComm_t of(size_t rank) const { return comms_.empty() ? nullptr : comms_[rank]; }

private:
    std::vector<infinicclComm_t> comms_; // empty for a single rank
};

class Model {
public:
    // One rank per entry of device_ids (ranks on the CPU are threads of this process, all on device 0).
    Model(const iq3Meta &meta, infiniDevice_t device, const std::vector<int> &device_ids);

    void loadWeight(const std::string &name, infiniDtype_t dtype, const std::vector<size_t> &shape, const void *data);
    void finishLoading();

    // Validates a batch against the model's limits and the KV capacity; throws with a readable reason.
    StepBatch checkBatch(const iq3Batch &batch) const;

    // logits_out: nullptr, or [nreq, vocab] float32 host memory for the raw logits (copied before sampling).
    void infer(const StepBatch &batch, const std::vector<SamplingParams> &sampling, uint32_t *out_tokens,
               float *logits_out = nullptr);
    void forward(const StepBatch &batch, bool all_positions, float *logits);

    void setTrace(bool enabled);
    // What the last step recorded: the head rank's entries, then each other rank's (names "rankN/..." when
    // there are several ranks). Valid until the next step.
    const std::vector<const TraceEntry *> &traceEntries() const { return trace_entries_; }
    std::mutex &mutex() { return mutex_; }
    // Graphs are captured for single-rank models only: the head rank's counts are the model's.
    const iq3GraphStats &graphStats() const { return ranks_.front()->graphStats(); }

private:
    void ensureLoaded() const;
    // Every rank prepares (uploads, buffers; the head also the sampling parameters, when given) before any
    // computes: see Rank::prepare.
    void prepare(const StepBatch &batch, bool all_positions, const std::vector<SamplingParams> *sampling = nullptr);
    void collectTrace();
    Rank &head() { return *ranks_.front(); }

    iq3Meta meta_;
    Communicators comms_;
    std::vector<std::unique_ptr<Rank>> ranks_;
    RankThreads threads_; // declared after ranks_: joined before the ranks are destroyed
    bool tracing_ = false;
    std::vector<const TraceEntry *> trace_entries_;
    std::mutex mutex_;
    bool loaded_ = false;
};

} // namespace iq3
