/* Thread-locals in the executable and in a shared library (tls_lib.c); crashes with
   SIGSEGV after setting them. */
void lib_set(long v);
__thread int exe_tls = 1;
volatile int sink;

int main(void)
{
    exe_tls = 41;
    lib_set(123456789);
    *(volatile int *)8 = exe_tls;
    return sink;
}
