// One worker thread per rank when a model has several ranks: a task runs on all of them at once (each rank's
// collectives block until every rank has called them, so the ranks cannot take turns on one thread). With one
// rank there is no thread and a task runs on the caller's.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace iq3 {

class RankThreads {
public:
    // start(rank) runs first on each worker thread (e.g. to bind it to its device).
    RankThreads(size_t ranks, const std::function<void(size_t rank)> &start);
    ~RankThreads();
    RankThreads(const RankThreads &) = delete;
    RankThreads &operator=(const RankThreads &) = delete;

    // Runs task(rank) for every rank and waits for all; rethrows the exception of the lowest failing rank.
    void run(const std::function<void(size_t rank)> &task);

private:
    void stop();
    void work(size_t rank, const std::function<void(size_t)> &start);

    size_t ranks_;
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(size_t)> *task_ = nullptr;
    unsigned long long round_ = 0; // bumped for each task, so a worker runs each exactly once
    size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::exception_ptr> errors_;
};

} // namespace iq3
