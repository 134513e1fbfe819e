/* A fault inside a PLT stub: the page holding puts's GOT slot is made unreadable,
 * so the stub's `jmp *GOT(%rip)` faults before puts is reached. Nothing in the
 * symbol table covers a stub; gdb names the frame `puts@plt` from the GOT slot's
 * relocation, and so must the tracer (a thread caught running a stub, as live
 * samples and cores often show, is the same frame). Built non-PIE with a lazy,
 * non-RELRO PLT: there `&puts` is the stub itself. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    const unsigned char *stub = (const unsigned char *)&puts;
    int32_t rel;
    if (stub[0] != 0xff || stub[1] != 0x25)
        return 2; /* not `jmp *rel32(%rip)`: built another way */
    memcpy(&rel, stub + 2, sizeof rel);
    uintptr_t slot = (uintptr_t)stub + 6 + rel;
    uintptr_t page = slot & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
    if (mprotect((void *)page, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) != 0)
        return 3;
    puts("unreachable: the stub faults first");
    return 0;
}
