// Which part of the model one rank holds under tensor parallelism (jiuge's split): attention heads and MLP
// columns are divided evenly among `count` ranks, rank `index` holding the index-th part.
#pragma once

#include <cstddef>

namespace iq3 {

struct Shard {
    size_t index = 0;
    size_t count = 1;

    size_t part(size_t n) const { return n / count; }            // this rank's share of n (count divides n)
    size_t begin(size_t n) const { return index * part(n); }     // where it starts in the whole
    bool holdsHead() const { return index == 0; }                // adds the residual once, samples
    bool alone() const { return count == 1; }
};

} // namespace iq3
