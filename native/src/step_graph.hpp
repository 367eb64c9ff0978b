// A decode step captured once and replayed with one launch (CUDA graphs, through InfiniCore patch 0012). A graph
// replays the launches it recorded with the arguments they had, so it is valid only while the buffers it
// recorded keep their addresses; each rank keys its graphs by batch bucket and checks the addresses before a replay.
#pragma once

#include <infinirt.h>

#include <functional>
#include <string>

namespace iq3 {

class StepGraph {
public:
    StepGraph() = default;
    ~StepGraph();
    StepGraph(const StepGraph &) = delete;
    StepGraph &operator=(const StepGraph &) = delete;

    bool valid() const { return exec_ != nullptr; }
    // Records what `step` launches on `stream` (nothing runs). Returns false, keeping no graph and with the reason
    // in *why, when the backend cannot capture; an exception from `step` ends the capture and propagates.
    bool capture(infinirtStream_t stream, const std::function<void()> &step, std::string *why);
    void launch(infinirtStream_t stream) const;
    void reset();

private:
    infinirtGraph_t graph_ = nullptr;
    infinirtGraphExec_t exec_ = nullptr;
};

} // namespace iq3
