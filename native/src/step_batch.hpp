// One batched step as the model runs it: the checked batch, each request's sampling parameters, and the host
// copy of the integer inputs its operators read (built once, uploaded by every rank).
#pragma once

#include <cstddef>
#include <cstdint>
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
    // Rows of logits: every row when all positions are asked for or every request has one row (decode, padding
    // included); else the last row of each request.
    uint32_t logitRows(bool all_positions) const { return all_positions || decodeOnly() ? rows : nreq(); }
};

struct SamplingParams {
    float temperature;
    int topk;
    float topp;
    float random;
};

// Token ids, positions, the KV slot of each token, block tables, past + new and new lengths, as I64 words in
// that order (one upload). Padding rows (batch.rows beyond ntok) are sequences of their own with token 0 at
// position 0, no slot (-1: nothing cached) and no keys (length 0: zero attention output).
struct StepInputs {
    std::vector<int64_t> words;
    size_t rows = 0;  // token rows, padding included
    size_t nseq = 0;  // block-table rows
    size_t width = 0; // block-table width: the step's longest, rounded up to a power of two (decode descriptors repeat)
};

StepInputs stepInputs(const StepBatch &batch, size_t block_size);

} // namespace iq3
