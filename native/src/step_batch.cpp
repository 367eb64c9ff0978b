#include "step_batch.hpp"

#include <algorithm>

namespace iq3 {

StepInputs stepInputs(const StepBatch &batch, size_t block_size) {
    StepInputs in;
    in.rows = batch.rows;
    in.nseq = batch.decodeOnly() ? batch.rows : batch.nreq();
    in.width = 1;
    for (const auto &blocks : batch.blocks) {
        while (in.width < blocks.size()) {
            in.width *= 2;
        }
    }
    const size_t rows = in.rows, nseq = in.nseq, width = in.width;
    in.words.assign(3 * rows + nseq * width + 2 * nseq, 0);
    int64_t *ids = in.words.data(), *positions = ids + rows, *slots = positions + rows, *tables = slots + rows,
            *seq_lens = tables + nseq * width, *new_lens = seq_lens + nseq;
    std::fill(slots, slots + rows, -1);
    for (size_t r = 0; r < batch.nreq(); r++) {
        const auto &blocks = batch.blocks[r];
        for (size_t i = 0; i < batch.lens[r]; i++) {
            const size_t t = batch.starts[r] + i, position = batch.pos[r] + i;
            ids[t] = batch.tokens[t];
            positions[t] = int64_t(position);
            slots[t] = int64_t(blocks[position / block_size]) * int64_t(block_size) + int64_t(position % block_size);
        }
        std::copy(blocks.begin(), blocks.end(), tables + r * width);
        seq_lens[r] = int64_t(batch.pos[r]) + batch.lens[r];
        new_lens[r] = batch.lens[r];
    }
    return in;
}

} // namespace iq3
