// An exception thrown from inside std::regex's compiler (GCC -O2): the frame of
// _Compiler's constructor sits at a return address where GCC's line program puts two
// non-statement rows of two files; gdb keeps the second (tests/unwind_core.rs). The
// terminate handler faults, so the kernel writes the core on SIGSEGV.
#include <exception>
#include <regex>

volatile int *volatile bad = nullptr;

int main() {
    std::set_terminate([] { *bad = 1; });
    std::regex r("(unclosed");
    return r.mark_count() > 99;
}
