//! The test oracle itself: parsing gdb's `thread apply all bt` and normalizing function
//! names. If these are wrong, every oracle comparison is wrong, so they have their own
//! data-driven tests.

mod common;

use common::*;

/// Guards frame-line parsing on the shapes gdb really prints.
#[test]
fn gdb_frame_lines_parse() {
    // (line, function, file, line number, from)
    let cases: &[(&str, Option<&str>, Option<&str>, Option<u32>, Option<&str>)] = &[
        (
            "#0  0x000055ea422b01bc in value_length (e=0x0) at c/null_deref.c:25",
            Some("value_length"),
            Some("c/null_deref.c"),
            Some(25),
            None,
        ),
        (
            "#3  __pthread_kill_implementation (threadid=<optimized out>, signo=signo@entry=10, no_tid=no_tid@entry=0) at ./nptl/pthread_kill.c:44",
            Some("__pthread_kill_implementation"),
            Some("./nptl/pthread_kill.c"),
            Some(44),
            None,
        ),
        (
            "#4  0x00007f8e1969d919 in ?? () from /lib/x86_64-linux-gnu/libstdc++.so.6",
            None,
            None,
            None,
            Some("/lib/x86_64-linux-gnu/libstdc++.so.6"),
        ),
        (
            "#6  0x00007f8e196a8e85 in std::terminate() () from /lib/x86_64-linux-gnu/libstdc++.so.6",
            Some("std::terminate()"),
            None,
            None,
            Some("/lib/x86_64-linux-gnu/libstdc++.so.6"),
        ),
        (
            "#6  0x0000558b1a167969 in std::function<long (pipeline::Chain<long> const&, unsigned long)>::operator()(pipeline::Chain<long> const&, unsigned long) const (__args#1=<optimized out>, this=0x558b201d80e0) at /usr/include/c++/12/bits/std_function.h:591",
            Some(
                "std::function<long (pipeline::Chain<long> const&, unsigned long)>::operator()(pipeline::Chain<long> const&, unsigned long) const",
            ),
            Some("/usr/include/c++/12/bits/std_function.h"),
            Some(591),
            None,
        ),
        (
            "#0  mix (data=data@entry=0x55efda02e040 <data> \"\\001 ?^}) at x\", <incomplete sequence \\341>, n=n@entry=2048, out=out@entry=0x0) at c/omitfp.c:13",
            Some("mix"),
            Some("c/omitfp.c"),
            Some(13),
            None,
        ),
        ("#7  0x000055f9ef780181 in _start ()", Some("_start"), None, None, None),
        (
            "#5  0x0000563e53aab63a in std::rt::lang_start::{closure#0}<()> () at /rustc/abc/library/std/src/rt.rs:206",
            Some("std::rt::lang_start::{closure#0}<()>"),
            Some("/rustc/abc/library/std/src/rt.rs"),
            Some(206),
            None,
        ),
    ];
    for (line, function, file, lineno, from) in cases {
        let f = parse_gdb_frame(line).unwrap_or_else(|| panic!("no frame parsed from {line:?}"));
        assert_eq!(f.function.as_deref(), *function, "function of {line:?}");
        assert_eq!(f.file.as_deref(), *file, "file of {line:?}");
        assert_eq!(f.line, *lineno, "line of {line:?}");
        assert_eq!(f.from.as_deref(), *from, "from of {line:?}");
    }
    let t = parse_gdb_frame("#2  <signal handler called>").expect("trampoline frame");
    assert!(t.signal_trampoline);
    assert!(parse_gdb_frame("44\t./nptl/pthread_kill.c: No such file or directory.").is_none());
}

/// Guards thread headers, names, the signal line and the current thread.
#[test]
fn gdb_report_parses_threads_signal_and_current_thread() {
    let text = "\
Program terminated with signal SIGSEGV, Segmentation fault.
#0  0x000055f9ef7803d4 in store_record (r=0x0, id=42) at c/threads.c:89
89\t    r->id = id;
[Current thread is 1 (Thread 0x7fbe4b68e6c0 (LWP 6427))]

Thread 2 (Thread 0x7fbe4e695740 (LWP 6420) \"worker-0\"):
#0  0x00007fbe4e767545 in __GI___clock_nanosleep (clock_id=0) at ../sysdeps/unix/sysv/linux/clock_nanosleep.c:48
#1  0x000055f9ef780704 in main (argc=2, argv=0x7fff6db581e8) at c/threads.c:139

Thread 1 (LWP 6427):
#0  0x000055f9ef7803d4 in store_record (r=0x0, id=42) at c/threads.c:89
";
    let r = parse_gdb(text);
    assert_eq!(r.signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(r.current_tid, Some(6427));
    assert_eq!(r.threads.len(), 2);
    assert_eq!((r.threads[0].tid, r.threads[0].name.as_deref()), (6420, Some("worker-0")));
    assert_eq!(r.threads[0].frames.len(), 2);
    assert_eq!((r.threads[1].tid, r.threads[1].name.as_deref()), (6427, None));
    assert_eq!(r.threads[1].frames.len(), 1, "the banner's frame 0 belongs to no thread");
}

/// Guards the conservative name comparison: spellings that differ between gdb and
/// demanglers map to the same key; different functions do not.
#[test]
fn function_names_normalize_to_comparable_keys() {
    let same: &[(&str, &str)] = &[
        (
            "std::function<long (pipeline::Chain<long> const&, unsigned long)>::operator()(pipeline::Chain<long> const&, unsigned long) const",
            "operator()",
        ),
        (
            "process(unsigned long)::{lambda(pipeline::Chain<long> const&, unsigned long)#2}::operator()(pipeline::Chain<long> const&, unsigned long) const",
            "operator()",
        ),
        ("pipeline::reduce<long int, process(std::size_t)::<lambda(long int, long int)> >", "reduce"),
        ("pipeline::reduce<long, process(unsigned long)::{lambda(long, long)#2}>", "reduce"),
        ("std::terminate()", "terminate"),
        (
            "inventory::Store::quantity(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&) const",
            "quantity",
        ),
        ("__GI_raise", "raise"),
        ("memcpy@@GLIBC_2.14", "memcpy"),
        ("mix.constprop.0", "mix"),
        ("crash::main::h0123456789abcdef", "main"),
        ("std::rt::lang_start::{closure#0}<()>", "{closure}"),
        ("std::rt::lang_start::{{closure}}", "{closure}"),
        ("std::vector<int, std::allocator<int> >::operator[](unsigned long)", "operator[]"),
        ("operator<<", "operator<<"),
    ];
    for (name, key) in same {
        assert_eq!(normalize_function(name), *key, "normalize({name:?})");
    }
    assert_ne!(normalize_function("load_entry"), normalize_function("value_length"));
}
