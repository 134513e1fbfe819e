// A small event pipeline in modern C++ (-O2 -g): class templates, lambdas captured in
// std::function, and an inlined template accessor that dereferences a null node deep
// inside. gdb shows the inlined calls as frames of their own; so must bt.
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pipeline {

template <typename T>
struct Node {
    T value;
    Node *next;
};

template <typename T>
class Chain {
public:
    explicit Chain(std::size_t n) {
        for (std::size_t i = 0; i < n; i++)
            nodes_.push_back(std::make_unique<Node<T>>(Node<T>{T(i), nullptr}));
        for (std::size_t i = 0; i + 1 < n; i++)
            nodes_[i]->next = nodes_[i + 1].get();
    }
    // Walks `hops` links; past the end `next` is null and the read faults.
    inline T at(std::size_t hops) const {
        const Node<T> *n = nodes_.front().get();
        for (std::size_t i = 0; i < hops; i++)
            n = n->next;
        return n->value;
    }
private:
    std::vector<std::unique_ptr<Node<T>>> nodes_;
};

template <typename T, typename F>
inline T reduce(const Chain<T> &chain, std::size_t n, F f) {
    T acc{};
    for (std::size_t i = 0; i <= n; i++)
        acc = f(acc, chain.at(i)); // at(n) walks off the end
    return acc;
}

template <typename T>
struct Stage {
    std::string name;
    std::function<T(const Chain<T> &, std::size_t)> run;
};

template <typename T>
__attribute__((noinline)) T run_stages(const std::vector<Stage<T>> &stages, const Chain<T> &chain, std::size_t n) {
    T total{};
    for (const auto &s : stages)
        total += s.run(chain, n);
    return total;
}

} // namespace pipeline

__attribute__((noinline)) long process(std::size_t n) {
    pipeline::Chain<long> chain(n);
    std::vector<pipeline::Stage<long>> stages;
    stages.push_back({"sum", [](const pipeline::Chain<long> &c, std::size_t k) {
                          return pipeline::reduce(c, k - 1, [](long a, long b) { return a + b; });
                      }});
    stages.push_back({"overrun", [](const pipeline::Chain<long> &c, std::size_t k) {
                          return pipeline::reduce(c, k, [](long a, long b) { return a ^ b; });
                      }});
    return pipeline::run_stages(stages, chain, n);
}

int main(int argc, char **) {
    std::printf("%ld\n", process(static_cast<std::size_t>(argc) + 7));
    return 0;
}
