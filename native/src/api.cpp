// The C API: argument checks, exceptions turned into status codes, and the per-thread last error.
#include "infini_qwen3.h"

#include "error.hpp"
#include "model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

struct iq3Model {
    std::unique_ptr<iq3::Model> model;
};

// The C API's enum values are InfiniCore's: they are passed through unchanged.
static_assert(int(IQ3_DTYPE_F16) == int(INFINI_DTYPE_F16) && int(IQ3_DTYPE_F32) == int(INFINI_DTYPE_F32) &&
                  int(IQ3_DTYPE_BF16) == int(INFINI_DTYPE_BF16),
              "IQ3_DTYPE_* must equal infiniDtype_t");
static_assert(int(IQ3_DEVICE_CPU) == int(INFINI_DEVICE_CPU) && int(IQ3_DEVICE_NVIDIA) == int(INFINI_DEVICE_NVIDIA),
              "IQ3_DEVICE_* must equal infiniDevice_t");
static_assert(int(IQ3_ROPE_GPT_J) == int(INFINIOP_ROPE_ALGO_GPT_J) &&
                  int(IQ3_ROPE_GPT_NEOX) == int(INFINIOP_ROPE_ALGO_GPT_NEOX),
              "IQ3_ROPE_* must equal infiniopRoPEAlgo_t");

uint32_t iq3AbiVersion(void) { return IQ3_ABI_VERSION; }

void iq3StructSizes(uint32_t *meta, uint32_t *batch, uint32_t *sampling) {
    if (meta != nullptr) {
        *meta = uint32_t(sizeof(iq3Meta));
    }
    if (batch != nullptr) {
        *batch = uint32_t(sizeof(iq3Batch));
    }
    if (sampling != nullptr) {
        *sampling = uint32_t(sizeof(iq3Sampling));
    }
}

namespace {

thread_local std::string last_error;

template <class F>
iq3Status_t guarded(F &&body) {
    try {
        body();
        last_error.clear();
        return IQ3_OK;
    } catch (const iq3::Error &e) {
        last_error = e.what();
        return e.status();
    } catch (const std::bad_alloc &) {
        last_error = "out of host memory";
        return IQ3_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        last_error = std::string("internal error: ") + e.what();
        return IQ3_ERR_INTERNAL;
    } catch (...) {
        last_error = "internal error: unknown exception";
        return IQ3_ERR_INTERNAL;
    }
}

void require(bool ok, const char *what) {
    if (!ok) {
        iq3::fail(IQ3_ERR_INVALID_ARGUMENT, what);
    }
}

iq3::Model &modelOf(iq3Model *handle) {
    require(handle != nullptr && handle->model != nullptr, "model is null");
    return *handle->model;
}

infiniDevice_t deviceOf(int32_t device) {
    require(device >= 0 && device < INFINI_DEVICE_TYPE_COUNT, "unknown device type");
    return infiniDevice_t(device);
}

} // namespace

extern "C" {

const char *iq3LastError(void) { return last_error.c_str(); }

const char *iq3Version(void) { return "infini-qwen3 native 0.1.0 (InfiniCore 0.1.0)"; }

iq3Status_t iq3ProbeDevice(int32_t device, int32_t device_id, char *info, size_t info_len) {
    return guarded([&] {
        iq3::Ops ops(deviceOf(device), device_id);
        if (info != nullptr && info_len > 0) {
            std::snprintf(info, info_len, "device %d:%d handle ok", int(device), int(device_id));
        }
    });
}

iq3Status_t iq3CreateModel(const iq3Meta *meta, int32_t device, uint32_t ndev, const int32_t *device_ids,
                           iq3Model **model) {
    return guarded([&] {
        require(meta != nullptr && model != nullptr, "meta and model must not be null");
        *model = nullptr;
        require(ndev >= 1, "ndev must be >= 1");
        const infiniDevice_t type = deviceOf(device);
        // Without a list the ranks take devices 0 .. ndev-1 (on the CPU all of them the host, device 0).
        std::vector<int> ids(ndev, 0);
        for (uint32_t r = 0; r < ndev; r++) {
            ids[r] = device_ids != nullptr ? device_ids[r] : (type == INFINI_DEVICE_CPU ? 0 : int(r));
        }
        auto handle = std::make_unique<iq3Model>();
        handle->model = std::make_unique<iq3::Model>(*meta, type, ids);
        *model = handle.release();
    });
}

// Each rank selects its own device before it frees anything (Rank::~Rank), whatever thread this is.
void iq3DestroyModel(iq3Model *model) { delete model; }

iq3Status_t iq3LoadWeight(iq3Model *model, const char *name, int32_t dtype, uint32_t ndim, const uint64_t *shape,
                          const void *data) {
    return guarded([&] {
        auto &m = modelOf(model);
        require(name != nullptr, "weight name is null");
        require(ndim >= 1 && ndim <= 2 && shape != nullptr, "weights are 1-D or 2-D");
        std::lock_guard<std::mutex> lock(m.mutex());
        m.loadWeight(name, infiniDtype_t(dtype), std::vector<size_t>(shape, shape + ndim), data);
    });
}

iq3Status_t iq3FinishLoading(iq3Model *model) {
    return guarded([&] {
        auto &m = modelOf(model);
        std::lock_guard<std::mutex> lock(m.mutex());
        m.finishLoading();
    });
}

namespace {

std::vector<iq3::SamplingParams> samplingParams(const iq3::StepBatch &step, const iq3Sampling *sampling) {
    require(sampling->temperature && sampling->topk && sampling->topp && sampling->random,
            "sampling arrays must not be null");
    std::vector<iq3::SamplingParams> params;
    for (uint32_t r = 0; r < step.nreq(); r++) {
        const float t = sampling->temperature[r], p = sampling->topp[r], u = sampling->random[r];
        require(std::isfinite(t) && t >= 0, "temperature must be finite and >= 0");
        require(p > 0 && p <= 1, "top_p must be in (0, 1]");
        require(u >= 0 && u < 1, "random value must be in [0, 1)");
        // InfiniCore 0.1.0 reads out of bounds for topk == 0: "no limit" is the vocabulary size.
        const uint32_t k = sampling->topk[r];
        constexpr uint32_t no_limit = uint32_t(std::numeric_limits<int>::max());
        const int topk = int(k == 0 || k > no_limit ? no_limit : k);
        params.push_back({t, topk, p, u});
    }
    return params;
}

iq3Status_t inferStep(iq3Model *model, const iq3Batch *batch, const iq3Sampling *sampling, uint32_t *out_tokens,
                      bool want_logits, float *logits) {
    return guarded([&] {
        auto &m = modelOf(model);
        require(batch != nullptr && sampling != nullptr && out_tokens != nullptr, "null argument");
        require(!want_logits || logits != nullptr, "null logits");
        std::lock_guard<std::mutex> lock(m.mutex());
        const auto step = m.checkBatch(*batch);
        m.infer(step, samplingParams(step, sampling), out_tokens, logits);
    });
}

} // namespace

iq3Status_t iq3Infer(iq3Model *model, const iq3Batch *batch, const iq3Sampling *sampling, uint32_t *out_tokens) {
    return inferStep(model, batch, sampling, out_tokens, false, nullptr);
}

iq3Status_t iq3InferWithLogits(iq3Model *model, const iq3Batch *batch, const iq3Sampling *sampling,
                               uint32_t *out_tokens, float *logits) {
    return inferStep(model, batch, sampling, out_tokens, true, logits);
}

iq3Status_t iq3Forward(iq3Model *model, const iq3Batch *batch, int32_t all_positions, float *logits) {
    return guarded([&] {
        auto &m = modelOf(model);
        require(batch != nullptr && logits != nullptr, "null argument");
        std::lock_guard<std::mutex> lock(m.mutex());
        m.forward(m.checkBatch(*batch), all_positions != 0, logits);
    });
}

iq3Status_t iq3SetTrace(iq3Model *model, int32_t enabled) {
    return guarded([&] {
        auto &m = modelOf(model);
        std::lock_guard<std::mutex> lock(m.mutex());
        m.setTrace(enabled != 0);
    });
}

iq3Status_t iq3TraceCount(iq3Model *model, uint32_t *count) {
    return guarded([&] {
        auto &m = modelOf(model);
        require(count != nullptr, "count is null");
        std::lock_guard<std::mutex> lock(m.mutex()); // the entries belong to the last step
        *count = uint32_t(m.traceEntries().size());
    });
}

iq3Status_t iq3TraceInfo(iq3Model *model, uint32_t index, const char **name, uint32_t *ndim, uint64_t *shape) {
    return guarded([&] {
        auto &m = modelOf(model);
        std::lock_guard<std::mutex> lock(m.mutex());
        const auto &entries = m.traceEntries();
        require(index < entries.size(), "trace index out of range");
        require(name && ndim && shape, "null argument");
        const auto &e = *entries[index];
        require(e.shape.size() <= 4, "trace entry has more than 4 dimensions");
        *name = e.name.c_str();
        *ndim = uint32_t(e.shape.size());
        std::copy(e.shape.begin(), e.shape.end(), shape);
    });
}

iq3Status_t iq3TraceCopy(iq3Model *model, uint32_t index, float *out) {
    return guarded([&] {
        auto &m = modelOf(model);
        std::lock_guard<std::mutex> lock(m.mutex());
        const auto &entries = m.traceEntries();
        require(index < entries.size() && out != nullptr, "trace index out of range or null output");
        std::memcpy(out, entries[index]->data.data(), entries[index]->data.size() * sizeof(float));
    });
}

iq3Status_t iq3GetGraphStats(iq3Model *model, iq3GraphStats *stats) {
    return guarded([&] {
        auto &m = modelOf(model);
        require(stats != nullptr, "stats is null");
        std::lock_guard<std::mutex> lock(m.mutex());
        *stats = m.graphStats();
    });
}

} // extern "C"
