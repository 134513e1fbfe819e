/* Optimised code without frame pointers (-O2 -fomit-frame-pointer): a checksum
 * pipeline whose innermost stage writes through a NULL output buffer. Only CFI can
 * unwind it; rbp holds data, not a frame chain. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) uint32_t mix(const uint8_t *data, size_t n, uint32_t *out)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ data[i]) * 16777619u;
    *out = h; /* out is NULL: the crash */
    return h;
}

__attribute__((noinline)) uint32_t checksum_block(const uint8_t *data, size_t n, uint32_t *out)
{
    uint32_t a = mix(data, n / 2, out);
    return a ^ mix(data + n / 2, n - n / 2, out);
}

__attribute__((noinline)) uint32_t checksum_file(const uint8_t *data, size_t n, uint32_t **outs)
{
    uint32_t total = 0;
    for (int i = 0; i < 4; i++)
        total += checksum_block(data, n, outs[i]);
    return total;
}

int main(int argc, char **argv)
{
    (void)argv;
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + argc);
    uint32_t *outs[4] = { 0 };
    printf("%u\n", checksum_file(data, sizeof data, outs));
    return 0;
}
