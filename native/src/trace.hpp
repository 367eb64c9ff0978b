// Named intermediates of one step copied to the host as float32, for the parity harness to find the first
// operator that diverges from transformers. Off by default: recording costs a copy per tensor.
#pragma once

#include "ops.hpp"

#include <string>
#include <vector>

namespace iq3 {

struct TraceEntry {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> data;
};

class Trace {
public:
    bool enabled = false;
    std::string prefix; // before every name: which rank recorded it, when there are several

    void clear() { entries_.clear(); }
    // Copies a (possibly strided) device tensor; no-op when disabled.
    void record(Ops &ops, const std::string &name, const Tensor &tensor);
    const std::vector<TraceEntry> &entries() const { return entries_; }

private:
    std::vector<TraceEntry> entries_;
    DeviceBuffer staging_;
};

} // namespace iq3
