#include "rank_threads.hpp"

namespace iq3 {

RankThreads::RankThreads(size_t ranks, const std::function<void(size_t)> &start) : ranks_(ranks), errors_(ranks) {
    if (ranks_ == 1) {
        return;
    }
    try {
        for (size_t r = 0; r < ranks_; r++) {
            threads_.emplace_back([this, r, start] { work(r, start); });
        }
    } catch (...) { // a thread could not be started: stop those that were
        stop();
        throw;
    }
}

RankThreads::~RankThreads() { stop(); }

void RankThreads::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto &thread : threads_) {
        if (thread.joinable()) {
            thread.join();
        }
    }
    threads_.clear();
}

void RankThreads::run(const std::function<void(size_t)> &task) {
    if (ranks_ == 1) {
        task(0);
        return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    task_ = &task;
    running_ = ranks_;
    std::fill(errors_.begin(), errors_.end(), nullptr);
    round_++;
    wake_.notify_all();
    done_.wait(lock, [&] { return running_ == 0; });
    task_ = nullptr;
    for (const auto &error : errors_) {
        if (error) {
            std::rethrow_exception(error);
        }
    }
}

void RankThreads::work(size_t rank, const std::function<void(size_t)> &start) {
    std::exception_ptr start_error;
    try {
        start(rank);
    } catch (...) {
        start_error = std::current_exception(); // reported by every task this rank is given
    }
    unsigned long long seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
        if (stopping_) {
            return;
        }
        seen = round_;
        const auto *task = task_;
        lock.unlock();
        std::exception_ptr error = start_error;
        if (!error) {
            try {
                (*task)(rank);
            } catch (...) {
                error = std::current_exception();
            }
        }
        lock.lock();
        errors_[rank] = error;
        if (--running_ == 0) {
            done_.notify_all();
        }
    }
}

} // namespace iq3
