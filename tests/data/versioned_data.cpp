// Pointers to data the executable holds copies of (copy relocations): its symbol
// table names them with the library's symbol version, `_ZSt4cout@GLIBCXX_3.4`, and gdb
// prints `<std::cout@GLIBCXX_3.4>` (tests/variables_gdb.rs).
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <typeinfo>
[[gnu::noinline]] void crash(const void *a, const void *b, const void *c, const void *d) {
    std::printf("%p %p %p %p\n", a, b, c, d);
    *(volatile int *)0 = 1;
}
int main() {
    const std::type_info *thrown = &typeid(std::runtime_error);
    const std::type_info *plain = &typeid(int);
    const void *out = &std::cout;
    const void *err = &std::cerr;
    crash(thrown, plain, out, err);
}
