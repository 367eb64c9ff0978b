/* infini-qwen3: Qwen3 dense decoder on InfiniCore (infiniop / infinirt / infiniccl).
 *
 * Every function returns an iq3Status_t; on failure iq3LastError() gives a readable message (per thread).
 * Nothing here exits or aborts the process on bad input.
 *
 * Life cycle: iq3CreateModel -> iq3LoadWeight (once per tensor, by its Hugging Face name) -> iq3FinishLoading
 * -> iq3Infer / iq3Forward (any number of times) -> iq3DestroyModel.
 */
#ifndef INFINI_QWEN3_H
#define INFINI_QWEN3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define IQ3_API __attribute__((visibility("default")))
#else
#define IQ3_API
#endif

typedef enum {
    IQ3_OK = 0,
    IQ3_ERR_INVALID_ARGUMENT = 1, /* a caller mistake: bad shape, id out of range, wrong state */
    IQ3_ERR_INFINICORE = 2,       /* an InfiniCore call failed; the message names it and its status */
    IQ3_ERR_OUT_OF_MEMORY = 3,
    IQ3_ERR_CAPACITY = 4,         /* a request would outgrow its block table or max_seq_tokens */
    IQ3_ERR_WEIGHT = 5,           /* missing / unexpected / wrongly shaped or typed tensor */
    IQ3_ERR_NOT_IMPLEMENTED = 6,
    IQ3_ERR_INTERNAL = 7,
} iq3Status_t;

/* Matches InfiniCore's infiniDtype_t values for the types used here. */
enum { IQ3_DTYPE_F16 = 12, IQ3_DTYPE_F32 = 13, IQ3_DTYPE_BF16 = 19 };

/* Matches infiniDevice_t. */
enum { IQ3_DEVICE_CPU = 0, IQ3_DEVICE_NVIDIA = 1 };

/* RoPE layout used on the device. NEOX is Qwen3's own; GPT_J permutes the q/k projection rows and the
 * q_norm/k_norm weights at load time so that backends without NeoX RoPE compute the same model. */
enum { IQ3_ROPE_AUTO = -1, IQ3_ROPE_GPT_J = 0, IQ3_ROPE_GPT_NEOX = 1 };

/* How the weights of the decoder layers' linear projections (q, k, v, o, gate, up, down) are stored. DENSE: in
 * the checkpoint's float dtype, converted to the compute dtype. INT8 / FP8_E4M3: 8-bit values ("<name>.weight",
 * IQ3 dtype I8 or U8 bytes of E4M3, [out, in]) with F32 scales per row and per group of weight_block_k inputs
 * ("<name>.weight_scale", [out, ceil(in / weight_block_k)]); the value of weight[j, l] is
 * value * scale[j, l / weight_block_k]. The embedding, the norms and lm_head stay dense. */
enum { IQ3_WEIGHTS_DENSE = 0, IQ3_WEIGHTS_INT8 = 1, IQ3_WEIGHTS_FP8_E4M3 = 2 };

typedef struct {
    uint32_t num_layers;
    uint32_t hidden_size;
    uint32_t intermediate_size;
    uint32_t num_heads;
    uint32_t num_kv_heads;
    uint32_t head_dim;
    uint32_t vocab_size;
    uint32_t max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    int32_t tie_word_embeddings;
    int32_t dtype;            /* compute and KV-cache dtype: IQ3_DTYPE_* */
    int32_t rope_layout;      /* IQ3_ROPE_* */
    uint32_t kv_blocks;       /* KV-cache blocks in the shared pool */
    uint32_t kv_block_size;   /* tokens per block */
    uint32_t max_seq_tokens;  /* most tokens (past + new) one request may hold: the context window */
    uint32_t max_step_tokens; /* most tokens one iq3Infer / iq3Forward call may carry */
    int32_t cuda_graphs;      /* 1: capture decode steps as graphs where the backend can (NVIDIA), 0: eager,
                                 2: attempt a capture on any backend (where it cannot, as on the CPU, each bucket
                                 falls back to eager steps: tests that fallback) */
    int32_t weight_format;    /* IQ3_WEIGHTS_* of the decoder layers' projections */
    uint32_t weight_block_k;  /* inputs per scale group of 8-bit weights (0 when dense) */
} iq3Meta;

typedef struct iq3Model iq3Model;

/* One batched step: the tokens of nreq requests concatenated; request r has req_lens[r] new tokens starting
 * at position req_pos[r] (tokens already in its KV blocks). Its blocks are row r of block_tables
 * ([nreq, block_table_width], in position order; block i holds positions [i * kv_block_size, (i + 1) *
 * kv_block_size)); the row must list a block for every position up to req_pos[r] + req_lens[r]. Requests of
 * one step may share blocks they only read (a cached prefix: blocks wholly before req_pos); a block the step
 * writes (one holding a position from req_pos[r] on) may appear in no other request of the step. Requests with one new token that come first (decoding requests)
 * share one paged-attention launch. */
typedef struct {
    const uint32_t *tokens;
    uint32_t ntok;
    const uint32_t *req_lens;
    const uint32_t *req_pos;
    uint32_t nreq;
    const uint32_t *block_tables;
    uint32_t block_table_width;
} iq3Batch;

/* Per-request sampling: temperature 0 (or topk 1, or random 0) is greedy; topk 0 means no limit. */
typedef struct {
    const float *temperature;
    const uint32_t *topk;
    const float *topp;
    const float *random; /* uniform [0, 1) drawn by the caller, so a seed reproduces a run */
} iq3Sampling;

IQ3_API const char *iq3LastError(void);
IQ3_API const char *iq3Version(void);

/* Bumped whenever a struct or a function of this header changes; callers compare it, and the struct sizes, with
 * what they were written against before they call anything else. */
#define IQ3_ABI_VERSION 4
IQ3_API uint32_t iq3AbiVersion(void);
/* sizeof(iq3Meta), sizeof(iq3Batch), sizeof(iq3Sampling) as compiled into the library. */
IQ3_API void iq3StructSizes(uint32_t *meta, uint32_t *batch, uint32_t *sampling);

/* Creates an InfiniCore handle on the device and reports what it found, e.g. "cpu:0 handle ok". */
IQ3_API iq3Status_t iq3ProbeDevice(int32_t device, int32_t device_id, char *info, size_t info_len);

/* Tensor parallel over ndev ranks (jiuge's split: attention heads and MLP columns, an InfiniCCL all-reduce after
 * o_proj and after down; lm_head split by vocabulary rows, the partial logits summed into every rank's; sampling
 * on rank 0). ndev must divide num_kv_heads, intermediate_size and vocab_size.
 * device_ids[ndev] (or NULL: 0 .. ndev-1) names each rank's device; on the CPU the ranks are threads of this
 * process and every id is 0. Weights are still loaded whole: each rank keeps its shard. */
IQ3_API iq3Status_t iq3CreateModel(const iq3Meta *meta, int32_t device, uint32_t ndev, const int32_t *device_ids,
                                   iq3Model **model);
IQ3_API void iq3DestroyModel(iq3Model *model);

/* dtype is IQ3_DTYPE_*, data is host memory holding a contiguous row-major tensor; it is converted to the
 * compute dtype and uploaded before the call returns. */
IQ3_API iq3Status_t iq3LoadWeight(iq3Model *model, const char *name, int32_t dtype, uint32_t ndim,
                                  const uint64_t *shape, const void *data);
/* Fails, naming them, if tensors are missing. */
IQ3_API iq3Status_t iq3FinishLoading(iq3Model *model);

/* Runs the step and samples one token per request into out_tokens[nreq]. */
IQ3_API iq3Status_t iq3Infer(iq3Model *model, const iq3Batch *batch, const iq3Sampling *sampling,
                             uint32_t *out_tokens);
/* iq3Infer that also writes the raw float32 logits [nreq, vocab] (before temperature; copied before sampling)
 * of each request's last token, for logprobs and for sampling on the host (penalties, logit bias). */
IQ3_API iq3Status_t iq3InferWithLogits(iq3Model *model, const iq3Batch *batch, const iq3Sampling *sampling,
                                       uint32_t *out_tokens, float *logits);
/* Runs the step and writes float32 logits: [ntok, vocab] when all_positions, else [nreq, vocab] for the
 * last token of each request. */
IQ3_API iq3Status_t iq3Forward(iq3Model *model, const iq3Batch *batch, int32_t all_positions, float *logits);

/* Tracing: when enabled, each step records named intermediates (float32 copies on the host); they stay
 * until the next step. */
IQ3_API iq3Status_t iq3SetTrace(iq3Model *model, int32_t enabled);
IQ3_API iq3Status_t iq3TraceCount(iq3Model *model, uint32_t *count);
IQ3_API iq3Status_t iq3TraceInfo(iq3Model *model, uint32_t index, const char **name, uint32_t *ndim,
                                 uint64_t *shape /* at least 4 */);
IQ3_API iq3Status_t iq3TraceCopy(iq3Model *model, uint32_t index, float *out);

/* Decode steps and graphs since the model was created (all zero where graphs are off). A bucket (rows, block-table
 * width) runs its first step eagerly and is captured on its second; at most max_live_graphs graphs are kept, the
 * least recently replayed destroyed first. */
typedef struct {
    uint64_t captures;         /* graphs captured and instantiated */
    uint64_t replays;          /* steps run by replaying a graph */
    uint64_t failed_captures;  /* buckets whose capture failed: they run eagerly from then on */
    uint64_t evictions;        /* graphs destroyed to stay within max_live_graphs */
    uint64_t live_graphs;
    uint64_t max_live_graphs;
} iq3GraphStats;
IQ3_API iq3Status_t iq3GetGraphStats(iq3Model *model, iq3GraphStats *stats);

#ifdef __cplusplus
}
#endif

#endif /* INFINI_QWEN3_H */
