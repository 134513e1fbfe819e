// An uncaught C++ exception (-O2 -g): std::terminate → abort, through the unwinder
// and libstdc++ frames without debug info.
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

namespace inventory {

class Store {
public:
    __attribute__((noinline)) int quantity(const std::string &sku) const {
        auto it = stock_.find(sku);
        if (it == stock_.end())
            throw std::out_of_range("unknown sku: " + sku);
        return it->second;
    }
    void add(const std::string &sku, int n) { stock_[sku] += n; }
private:
    std::map<std::string, int> stock_;
};

__attribute__((noinline)) int reserve(Store &store, const std::string &sku, int n) {
    int have = store.quantity(sku);
    return have >= n ? n : have;
}

} // namespace inventory

int main(int argc, char **) {
    inventory::Store store;
    store.add("apple", 3);
    int got = inventory::reserve(store, "apple", 2);
    got += inventory::reserve(store, argc > 5 ? "apple" : "pear", 1); // throws, nobody catches
    std::printf("%d\n", got);
    return 0;
}
