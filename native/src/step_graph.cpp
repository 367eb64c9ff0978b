#include "step_graph.hpp"

#include "error.hpp"

namespace iq3 {

StepGraph::~StepGraph() { reset(); }

void StepGraph::reset() {
    if (exec_ != nullptr) {
        infinirtGraphExecDestroy(exec_);
        exec_ = nullptr;
    }
    if (graph_ != nullptr) {
        infinirtGraphDestroy(graph_);
        graph_ = nullptr;
    }
}

bool StepGraph::capture(infinirtStream_t stream, const std::function<void()> &step, std::string *why) {
    reset();
    const infiniStatus_t begun = infinirtStreamBeginCapture(stream, INFINIRT_STREAM_CAPTURE_MODE_THREAD_LOCAL);
    if (begun != INFINI_STATUS_SUCCESS) {
        *why = std::string("stream capture: ") + infiniStatusName(begun);
        return false;
    }
    try {
        step();
    } catch (...) {
        infinirtGraph_t partial = nullptr;
        if (infinirtStreamEndCapture(stream, &partial) == INFINI_STATUS_SUCCESS && partial != nullptr) {
            infinirtGraphDestroy(partial);
        }
        throw;
    }
    const infiniStatus_t ended = infinirtStreamEndCapture(stream, &graph_);
    if (ended != INFINI_STATUS_SUCCESS || graph_ == nullptr) {
        *why = std::string("end of stream capture: ") + infiniStatusName(ended);
        reset();
        return false;
    }
    char log[256] = {0};
    const infiniStatus_t instantiated = infinirtGraphInstantiate(&exec_, graph_, nullptr, log, sizeof(log));
    if (instantiated != INFINI_STATUS_SUCCESS) {
        *why = std::string("graph instantiation: ") + infiniStatusName(instantiated) + " " + log;
        exec_ = nullptr;
        reset();
        return false;
    }
    return true;
}

void StepGraph::launch(infinirtStream_t stream) const { IQ3_INFINI(infinirtGraphLuanch(exec_, stream)); }

} // namespace iq3
