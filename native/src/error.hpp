// Errors inside the library are exceptions carrying an iq3Status_t; the C API boundary (api.cpp) turns them
// into a status code and a per-thread message, so no failure ever reaches exit() or abort().
#pragma once

#include "infini_qwen3.h"

#include <infinicore.h>

#include <stdexcept>
#include <string>

namespace iq3 {

class Error : public std::runtime_error {
public:
    Error(iq3Status_t status, const std::string &message) : std::runtime_error(message), status_(status) {}
    iq3Status_t status() const { return status_; }

private:
    iq3Status_t status_;
};

const char *infiniStatusName(infiniStatus_t status);

inline void checkInfini(infiniStatus_t status, const char *call) {
    if (status != INFINI_STATUS_SUCCESS) {
        throw Error(IQ3_ERR_INFINICORE, std::string(call) + " returned " + infiniStatusName(status));
    }
}

[[noreturn]] inline void fail(iq3Status_t status, const std::string &message) { throw Error(status, message); }

} // namespace iq3

#define IQ3_INFINI(call) ::iq3::checkInfini((call), #call)
