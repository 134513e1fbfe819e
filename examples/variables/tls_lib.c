/* A shared library with thread-locals, set by the calling thread before it
   crashes (tests/variables_gdb.rs). */
__thread long lib_counter = 5;
__thread char lib_tag[8] = "lib";
__thread int lib_untouched = 3;

void lib_set(long v)
{
    lib_counter = v;
    lib_tag[3] = '!';
}
