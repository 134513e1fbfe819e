// Crashes inside C++ code whose function names are local to other functions: a
// lambda's call operator in a member function, a lambda in main, and a member of a
// class defined inside a lambda. tests/ptrace_lambdas.rs builds it with g++ and
// clang++ at -O0 and -O2 and compares bt's names with gdb's.
namespace app {

int *volatile target = nullptr;

struct Scope {
    int k = 3;
    int fn(int x);
};

__attribute__((noinline)) void crash_here(int v) {
    *target = v; // SIGSEGV: target is null
}

int Scope::fn(int x) {
    auto inner = [this](int y) __attribute__((noinline)) {
        crash_here(y + k);
        return y;
    };
    return inner(x) + 1;
}

} // namespace app

namespace {
struct Base {
    virtual int go(int) = 0;
};
} // namespace

int main(int argc, char **) {
    auto first = [](int a) __attribute__((noinline)) { return a * 2; };
    auto second = [&](int b) __attribute__((noinline)) {
        struct Inner : Base {
            int go(int z) override {
                app::Scope s;
                return s.fn(z);
            }
        } in;
        Base *base = &in;
        return base->go(b + argc);
    };
    volatile int r = first(argc);
    return second(r);
}
