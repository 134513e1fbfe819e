// Uncaught C++ exceptions, one per mode (argv[1]); built by tests/analysis_crashes.rs
// with g++ -O1 -g. bt must name the exception's type, and what() for the
// std::logic_error/std::runtime_error family.
#include <cstring>
#include <stdexcept>
#include <string>

namespace app {
struct config_error {
    int code;
};
}  // namespace app

__attribute__((noinline)) static void load(const char* mode)
{
    if (std::strcmp(mode, "runtime_error") == 0)
        throw std::runtime_error("the configuration file is missing");
    if (std::strcmp(mode, "custom") == 0)
        throw app::config_error{42};
    if (std::strcmp(mode, "int") == 0)
        throw 7;
    if (std::strcmp(mode, "out_of_range") == 0)
        throw std::out_of_range("widget index 7 is out of range");
}

__attribute__((noinline)) static void noexcept_violation() noexcept
{
    load("runtime_error");
}

int main(int argc, char** argv)
{
    const char* mode = argc > 1 ? argv[1] : "";
    if (std::strcmp(mode, "noexcept") == 0)
        noexcept_violation();
    load(mode);
    return 2;
}
