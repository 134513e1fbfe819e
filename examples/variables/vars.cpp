// Known values in C++: classes with a base, references, std::string, std::vector,
// a namespace global and a thread_local; crashes with SIGSEGV in Inventory::fail.
#include <string>
#include <vector>
#include <cstdio>

namespace shop {

struct Base {
    int id;
};

struct Item : Base {
    std::string name;
    double price;
    Item *next;
};

int item_count = 3;
thread_local int per_thread = 11;

class Inventory {
public:
    std::vector<int> stock{4, 8, 15, 16, 23, 42};
    std::string owner{"ada lovelace"};
    __attribute__((noinline)) int fail(const Item &first, int hops) {
        const Item *p = &first;
        int seen = 0;
        for (int i = 0; i < hops; i++) {
            p = p->next;
            seen += p->id;
        }
        return seen;
    }
};

} // namespace shop

volatile int sink;

int main(int argc, char **)
{
    shop::Item b{{2}, "bolt", 0.25, nullptr};
    shop::Item a{{1}, "anvil with a long name that does not fit locally", 99.5, &b};
    shop::Inventory inv;
    std::string greeting = "hi";
    shop::per_thread = 12;
    sink = inv.fail(a, 2 + argc);
    std::printf("%s %zu\n", greeting.c_str(), inv.stock.size());
    return sink;
}
