// C++ names that gdb re-spells or keeps whole (tests/ptrace_lambdas.rs): integer types
// written by GCC as `long int`, template literals (7ul, (char)120, &(f(int))),
// operators, anonymous namespaces, ABI tags, function-local classes, array
// references and function types among the parameters and template arguments.
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

volatile int sink;
// Read through a pointer the optimizer cannot see, or GCC -O2 drops every path here.
int *volatile bad = nullptr;
[[gnu::noinline]] void boom() { sink = *bad; }

enum class Color { Red, Green };

namespace {
template <int I> struct At;
#define AT(i, ...) template <> struct At<i> { using T = __VA_ARGS__; };
AT(0, long) AT(1, unsigned long) AT(2, short) AT(3, unsigned short) AT(4, long long)
AT(5, unsigned long long) AT(6, int (*)(long, ...)) AT(7, long &) AT(8, std::map<int, long>) AT(9, void)
template <typename T, int I> struct S {
    [[gnu::noinline]] static void run() { S<typename At<I + 1>::T, I + 1>::run(); }
};
template <> struct S<void, 9> {
    [[gnu::noinline]] static void run() { boom(); }
};
template <long V, unsigned long W, short X, bool B, char C> struct V1 {
    [[gnu::noinline]] static void run() { S<long, 0>::run(); }
};
template <typename T, int N, Color C> struct Holder {
    T value;
    [[gnu::noinline]] Holder &operator<<(int) { V1<-5, 7, 3, true, 'a'>::run(); return *this; }
};
}  // namespace

template <unsigned long N, char C, typename T> struct K {
    [[gnu::noinline]] bool operator<(const K &) const { Holder<long, 3, Color::Green> h{1}; h << 2; return false; }
    [[gnu::noinline]] K *operator->() { K o; (void)(o < *this); return this; }
    [[gnu::noinline]] operator long() const { K t = *this; t.operator->(); return 1; }
};

[[gnu::noinline]] void f(int) {}
template <void (*F)(int), typename A> [[gnu::noinline]] void viafp(A a) {
    K<7ul, 'x', std::vector<unsigned long long>> k;
    (void)(long)k;
    (void)a;
}

[[gnu::noinline]] void through_function(int) { viafp<&f>(std::map<std::string, const char *>{}); }

struct Cmp {
    [[gnu::noinline]] bool operator()(int a, int b) const {
        if (a == 7) {
            std::function<void(int)> fn = through_function;
            fn(a);
        }
        return a < b;
    }
};

[[gnu::noinline]] std::string tagged(short s) {
    struct Local {
        [[gnu::noinline]] void m(unsigned short u) {
            std::vector<int> v{5, 3, 7, 1, 9};
            std::sort(v.begin(), v.end(), Cmp{});
            (void)u;
        }
    };
    Local{}.m(1);
    return std::to_string(s);
}

namespace ns {
template <typename T> struct Outer {
    template <typename U> struct Inner {
        [[gnu::noinline]] static void run(const T (&)[2], U *) { tagged(3); }
    };
};
}  // namespace ns

int main() {
    int arr[2] = {1, 2};
    ns::Outer<int>::Inner<const signed char>::run(arr, nullptr);
}
