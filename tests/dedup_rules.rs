//! Data-driven tests of the default rule files: input frames → expected signature.
//! One table per rule file; add a row to add a case.
//!
//! Frame spec: `FUNCTION @MODULE #FILE:LINE`, each part optional; `@MODULE+0xOFF`
//! alone is a frame without a symbol.

use bt::dedup::RuleSet;
use bt::snapshot::Frame;

fn frame(spec: &str) -> Frame {
    let (inlined, spec) = match spec.strip_prefix('~') {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let (rest, file) = match spec.split_once(" #") {
        Some((r, f)) => (r, Some(f)),
        None => (spec, None),
    };
    let (func, module) = match rest.rsplit_once('@') {
        Some((f, m)) => (f.trim(), Some(m.trim())),
        None => (rest.trim(), None),
    };
    let (module, offset) = match module.and_then(|m| m.split_once("+0x")) {
        Some((m, off)) => (Some(m), u64::from_str_radix(off, 16).unwrap()),
        None => (module, 0),
    };
    let (file, line) = match file.and_then(|f| f.rsplit_once(':')) {
        Some((f, l)) => (Some(f.to_string()), l.parse().ok()),
        None => (file.map(str::to_string), None),
    };
    Frame {
        function: (!func.is_empty()).then(|| func.to_string()),
        module: module.map(str::to_string),
        module_offset: offset,
        file,
        line,
        inlined,
        ..Default::default()
    }
}

fn signature_of(rules: &RuleSet, frames: &[&str]) -> Vec<String> {
    let frames: Vec<Frame> = frames.iter().map(|s| frame(s)).collect();
    rules.evaluate(&frames, &[]).signature
}

/// (case name, frames crash-site first, expected signature)
type Case = (&'static str, &'static [&'static str], &'static [&'static str]);

fn run(cases: &[Case]) {
    let rules = RuleSet::default_rules();
    let mut failures = Vec::new();
    for (name, frames, want) in cases {
        let got = signature_of(&rules, frames);
        if got != *want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn names_rules() {
    run(&[
        ("cold clone", &["parse.cold @/opt/app"], &["parse"]),
        ("isra + constprop", &["parse.isra.0.constprop.3 @/opt/app"], &["parse"]),
        ("part", &["parse.part.1 @/opt/app"], &["parse"]),
        ("llvm thinlto suffix", &["parse.llvm.8812736451 @/opt/app"], &["parse"]),
        ("c++ clone spelling", &["Foo::bar(int) [clone .isra.0] [clone .cold] @/opt/app"], &["Foo::bar"]),
        ("plt", &["memcpy@plt @/opt/app", "copy @/opt/app"], &["copy"]),
        ("symbol version", &["fopen@@GLIBC_2.2.5 @libc.so.6", "open_log @/opt/app"], &["fopen", "open_log"]),
        ("rust hash", &["app::parse::h0123456789abcdef @/opt/app"], &["app::parse"]),
        ("v8 optimized", &["JS:*leaf /srv/a.js:1:14 @[jit]"], &["JS:leaf /srv/a.js:1:14"]),
        ("v8 interpreted", &["JS:~leaf /srv/a.js:1:14 @[jit]"], &["JS:leaf /srv/a.js:1:14"]),
        ("not jit", &["JS:~leaf @/opt/app"], &["JS:~leaf"]),
    ]);
}

#[test]
fn glibc_rules() {
    let assert_stack: &[&str] = &[
        "__pthread_kill_implementation @libc.so.6",
        "raise @libc.so.6",
        "abort @libc.so.6",
        "__assert_fail_base.cold @libc.so.6",
        "__assert_fail @libc.so.6",
        "validate_order @/opt/app #/src/order.c:12",
        "main @/opt/app",
    ];
    run(&[
        // An assertion keeps its caller: the check is often a precondition.
        ("assert prologue", assert_stack, &["validate_order", "main"]),
        (
            "assert wrappers nest (JerryScript's assert → fatal → port fatal → abort)",
            &[
                "__pthread_kill_implementation @libc.so.6",
                "__GI_raise @libc.so.6",
                "__GI_abort @libc.so.6",
                "jerry_port_fatal @jerry",
                "jerry_fatal @jerry",
                "jerry_assert_fail @jerry",
                "jmem_decompress_pointer @jerry",
                "ecma_create_property @jerry",
                "ecma_create_named_data_property @jerry",
                "main @jerry",
            ],
            &["jmem_decompress_pointer", "ecma_create_property"],
        ),
        (
            "a segfault keeps one application frame",
            &["jmem_decompress_pointer @jerry", "ecma_create_property @jerry", "main @jerry"],
            &["jmem_decompress_pointer"],
        ),
        (
            "fatal() wrapper",
            &["raise @libc.so.6", "__GI_abort @libc.so.6", "fatal @app", "load_config @app", "main @app"],
            &["load_config"],
        ),
        (
            "namespaced die wrapper",
            &["abort @libc.so.6", "util::die_with_message(char const*) @app", "Db::open() @app"],
            &["Db::open"],
        ),
        (
            "ordinary function calling abort keeps the blame",
            &["abort @libc.so.6", "validate @app", "main @app"],
            &["validate"],
        ),
        (
            "abort called by app",
            &["raise @libc.so.6", "abort @libc.so.6", "shutdown_now @app", "main @app"],
            &["shutdown_now"],
        ),
        (
            "stack protector",
            &[
                "raise @libc.so.6",
                "abort @libc.so.6",
                "__libc_message @libc.so.6",
                "__fortify_fail @libc.so.6",
                "__stack_chk_fail @libc.so.6",
                "copy_name @app",
                "?? @app",
            ],
            &["copy_name"],
        ),
        (
            "double free keeps free",
            &[
                "raise @libc.so.6",
                "abort @libc.so.6",
                "__libc_message @libc.so.6",
                "malloc_printerr @libc.so.6",
                "_int_free @libc.so.6",
                "__GI___libc_free @libc.so.6",
                "release_item @app",
            ],
            &["free", "release_item"],
        ),
        ("ifunc builtin is skipped", &["__memmove_avx_unaligned_erms @libc.so.6", "copy_block @app"], &["copy_block"]),
        ("strlen evex", &["__strlen_evex @/lib/x86_64-linux-gnu/libc.so.6", "log_message @app"], &["log_message"]),
        (
            "printf internals fold to printf",
            &["__strlen_avx2 @libc.so.6", "__vfprintf_internal @libc.so.6", "printf @libc.so.6", "report @app"],
            &["printf", "report"],
        ),
        ("thread start is not app", &["worker @app", "start_thread @libc.so.6", "clone3 @libc.so.6"], &["worker"]),
        (
            "crash in main",
            &["main @app", "__libc_start_call_main @libc.so.6", "__libc_start_main_impl @libc.so.6", "_start @app"],
            &["main"],
        ),
        (
            "system only stack stops at entry",
            &["poll @libc.so.6", "start_thread @libc.so.6", "clone3 @libc.so.6"],
            &["poll"],
        ),
        (
            "header code inlined into app",
            &["~std::vector<int>::operator[] @app #/usr/include/c++/12/bits/stl_vector.h:1123", "sum @app #a.cc:3"],
            &["sum"],
        ),
        (
            "C static inline from a header",
            &["~__bswap_32 @app #/usr/include/x86_64-linux-gnu/bits/byteswap.h:52", "decode @app #d.c:9"],
            &["decode"],
        ),
        (
            "physical frame whose line is in a header keeps its blame",
            &["Config::load @app #/usr/include/c++/12/bits/new_allocator.h:90", "run_bug @app"],
            &["Config::load"],
        ),
        (
            "signal handler frames",
            &[
                "raise @libc.so.6",
                "abort @libc.so.6",
                "on_segv @app",
                "__restore_rt @libc.so.6",
                "crash_here @app",
                "main @app",
            ],
            &["crash_here"],
        ),
        (
            "vdso",
            &["__vdso_clock_gettime @[vdso]", "clock_gettime @libc.so.6", "tick @app"],
            &["clock_gettime", "tick"],
        ),
        (
            "system path by directory",
            &["do_thing @/usr/lib/x86_64-linux-gnu/libfoo.so.3", "caller @/opt/app"],
            &["do_thing", "caller"],
        ),
    ]);
}

#[test]
fn cxx_rules() {
    run(&[
        (
            "uncaught exception",
            &[
                "raise @libc.so.6",
                "abort @libc.so.6",
                "__gnu_cxx::__verbose_terminate_handler() @libstdc++.so.6",
                "__cxxabiv1::__terminate(void (*)()) @libstdc++.so.6",
                "std::terminate() @libstdc++.so.6",
                "__cxa_throw @libstdc++.so.6",
                "Config::load(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&) @app",
                "main @app",
            ],
            &["Config::load"],
        ),
        (
            "vector::at out of range",
            &[
                "raise @libc.so.6",
                "abort @libc.so.6",
                "std::terminate() @libstdc++.so.6",
                "__cxa_throw @libstdc++.so.6",
                "std::__throw_out_of_range_fmt(char const*, ...) @libstdc++.so.6",
                "std::vector<int, std::allocator<int> >::_M_range_check(unsigned long) const @app #/usr/include/c++/12/bits/stl_vector.h:1153",
                "std::vector<int, std::allocator<int> >::at(unsigned long) const @app #/usr/include/c++/12/bits/stl_vector.h:1175",
                "Inventory::lookup(int) const @app #bugs.cpp:31",
            ],
            &["Inventory::lookup"],
        ),
        (
            "lambda through std::function",
            &[
                "Server::install_handler()::{lambda(int)#1}::operator()(int) const @app #bugs.cpp:40",
                "std::_Function_handler<void (int), Server::install_handler()::{lambda(int)#1}>::_M_invoke(std::_Any_data const&, int&&) @app",
                "std::function<void (int)>::operator()(int) const @app",
                "run_bug() @app",
            ],
            &["Server::install_handler::{lambda}::operator()"],
        ),
        ("lambda numbering", &["f()::{lambda()#3}::operator()() const @app"], &["f::{lambda}::operator()"]),
        ("templates fold", &["Matrix<double>::get(unsigned long, unsigned long) const @app"], &["Matrix::get"]),
        (
            "gcc debug-info lambda name",
            &["Server::install_handler()::<lambda(int)>::operator() @app"],
            &["Server::install_handler::{lambda}::operator()"],
        ),
        (
            "clang debug-info lambda name",
            &["Server::install_handler()::(lambda at /src/bugs.cpp:41:16)::operator() @app"],
            &["Server::install_handler::{lambda}::operator()"],
        ),
        (
            "anonymous namespace",
            &["(anonymous namespace)::decode_packet(unsigned char const*) @app"],
            &["decode_packet"],
        ),
        ("operator< survives", &["Key::operator<(Key const&) const @app"], &["Key::operator<"]),
        // One function, named from DWARF and from the symbol table (no debug info).
        ("dwarf name", &["ns::bar<long> @app #t.cc:3"], &["ns::bar"]),
        (
            "symtab name with return type",
            &["long ns::bar<long>(std::vector<long, std::allocator<long> >&) @app"],
            &["ns::bar"],
        ),
        ("symtab return type of two words", &["unsigned long ns::size<int>(int) @app"], &["ns::size"]),
        ("symtab pointer return type", &["char const* ns::name<Kind>(Kind) @app"], &["ns::name"]),
        (
            "operator with a return type",
            &["bool ns::operator==<int>(ns::V<int> const&, ns::V<int> const&) @app"],
            &["ns::operator=="],
        ),
        (
            "conversion operator keeps its type",
            &["ns::Str::operator char const*() const @app"],
            &["ns::Str::operator char const*"],
        ),
        ("operator new", &["operator new(unsigned long) @app"], &["operator new"]),
        (
            "pure virtual",
            &["raise @libc.so.6", "abort @libc.so.6", "__cxa_pure_virtual @libstdc++.so.6", "Shape::draw_all() @app"],
            &["Shape::draw_all"],
        ),
    ]);
}

#[test]
fn rust_rules() {
    run(&[
        (
            "unwrap on None (panic=abort)",
            &[
                "__pthread_kill_implementation @libc.so.6",
                "raise @libc.so.6",
                "abort @libc.so.6",
                "std::sys::pal::unix::abort_internal @app",
                "std::process::abort @app",
                "__rustc::__rust_start_panic @app",
                "rust_panic @app",
                "std::panicking::rust_panic_with_hook @app",
                "std::panicking::begin_panic_handler::{{closure}} @app",
                "std::sys::backtrace::__rust_end_short_backtrace @app",
                "__rustc::rust_begin_unwind @app",
                "core::panicking::panic_fmt @app",
                "core::panicking::panic @app",
                "core::option::unwrap_failed @app",
                "bugs::parse_port @app #bugs.rs:14",
                "bugs::run_bug @app",
                "bugs::main @app",
                "core::ops::function::FnOnce::call_once @app",
                "std::rt::lang_start::{{closure}} @app",
                "std::rt::lang_start_internal @app",
                "main @app",
            ],
            &["bugs::parse_port"],
        ),
        (
            "bounds check through inlined std frames",
            &[
                "core::panicking::panic_bounds_check::h1111111111111111 @app",
                "~<usize as core::slice::index::SliceIndex<[T]>>::index @app #/rustc/abc/library/core/src/slice/index.rs:255",
                "bugs::lookup_user::h2222222222222222 @app #bugs.rs:20",
            ],
            &["bugs::lookup_user"],
        ),
        ("segv in rust code", &["bugs::read_raw @app #bugs.rs:40", "bugs::run_bug @app"], &["bugs::read_raw"]),
        (
            "thread entry",
            &[
                "bugs::worker @app",
                "std::sys::backtrace::__rust_begin_short_backtrace @app",
                "std::sys::pal::unix::thread::Thread::new::thread_start @app",
                "start_thread @libc.so.6",
            ],
            &["bugs::worker"],
        ),
        (
            "refcell double borrow",
            &[
                "core::panicking::panic_fmt @app",
                "core::cell::panic_already_borrowed @app",
                "core::cell::RefCell<T>::borrow_mut @app",
                "bugs::update_cache @app",
            ],
            &["bugs::update_cache"],
        ),
        (
            "debug-info names: generics and impl blocks",
            &["bugs::Table<u32>::get<u32> @app", "bugs::{impl#3}::run @app"],
            &["bugs::Table::get"],
        ),
        (
            "app type implementing a std trait stays app",
            &["<bugs::Id as core::fmt::Display>::fmt @app"],
            &["<bugs::Id as core::fmt::Display>::fmt"],
        ),
        ("closure numbering", &["bugs::main::{closure#2} @app"], &["bugs::main::{{closure}}"]),
        (
            "closure",
            &["bugs::main::{{closure}} @app", "<alloc::boxed::Box<F,A> as core::ops::function::Fn<Args>>::call @app"],
            &["bugs::main::{{closure}}"],
        ),
    ]);
}

#[test]
fn alloc_rules() {
    // One heap bug, whichever internal check noticed it, plain or ASan: the
    // allocator operation and its caller.
    let free_bug: &[&str] = &["free", "bug_a"];
    run(&[
        (
            "free: munmap_chunk",
            &["munmap_chunk @libc.so.6", "free @libc.so.6", "bug_a @app #a.c:3", "main @app #a.c:9"],
            free_bug,
        ),
        (
            "free: arena_for_chunk inlined",
            &["~arena_for_chunk @libc.so.6 #./malloc/arena.c:1", "free @libc.so.6", "bug_a @app #a.c:3", "main @app"],
            free_bug,
        ),
        (
            "free: malloc_printerr abort",
            &[
                "__pthread_kill_implementation @libc.so.6",
                "raise @libc.so.6",
                "abort @libc.so.6",
                "__libc_message_impl @libc.so.6",
                "malloc_printerr @libc.so.6",
                "_int_free @libc.so.6",
                "__GI___libc_free @libc.so.6",
                "bug_a @app #a.c:3",
                "main @app",
            ],
            free_bug,
        ),
        (
            "free: ASan double free",
            &[
                "__sanitizer::Die() @libasan.so.8",
                "__asan::ReportDoubleFree(unsigned long, __sanitizer::BufferedStackTrace*) @libasan.so.8",
                "__asan::Allocator::Deallocate(void*) @libasan.so.8",
                "__interceptor_free @libasan.so.8",
                "bug_a @app #a.c:3",
                "main @app",
            ],
            free_bug,
        ),
        (
            "Boehm GC: the collector's internals",
            &[
                "GC_allocobj @libgc.so.1",
                "GC_generic_malloc_inner @libgc.so.1",
                "GC_malloc_kind @libgc.so.1",
                "GC_malloc @libgc.so.1",
                "alloc_node @app #n.c:4",
                "main @app",
            ],
            &["GC_malloc", "alloc_node"],
        ),
        // Debian's libgc 8.2: GC_malloc jumps to GC_malloc_kind, which jumps to
        // GC_malloc_kind_global; neither public name is on the stack.
        (
            "Boehm GC: an optimized library's tail calls",
            &[
                "GC_clear_fl_marks @libgc.so.1",
                "GC_start_reclaim @libgc.so.1",
                "GC_try_to_collect_inner @libgc.so.1",
                "GC_generic_malloc @libgc.so.1",
                "GC_malloc_kind_global @libgc.so.1",
                "GC_malloc_kind @libgc.so.1",
                "alloc_node @app #n.c:4",
                "main @app",
            ],
            &["GC_malloc", "alloc_node"],
        ),
        (
            "Boehm GC built into the program, GC_strdup's own allocation",
            &[
                "GC_mark_from @app",
                "GC_allocobj @app",
                "GC_malloc_atomic @app",
                "GC_strdup @app",
                "alloc_node @app #n.c:4",
                "main @app",
            ],
            &["GC_strdup", "alloc_node"],
        ),
        (
            "Boehm GC: a bad free stays apart",
            &["GC_free_inner @libgc.so.1", "GC_free @libgc.so.1", "alloc_node @app #n.c:4", "main @app"],
            &["GC_free", "alloc_node"],
        ),
        (
            "Boehm GC through the application's xmalloc",
            &["GC_malloc_kind @libgc.so.1", "xmalloc @app #x.c:2", "alloc_node @app #n.c:4", "main @app"],
            &["GC_malloc", "alloc_node"],
        ),
        (
            "free through the application's wrapper (JasPer)",
            &[
                "malloc_printerr @libc.so.6",
                "_int_free @libc.so.6",
                "__GI___libc_free @libc.so.6",
                "jas_free @app #jas_malloc.c:5",
                "mem_close @app #jas_stream.c:9",
                "jas_stream_close @app #jas_stream.c:20",
            ],
            &["free", "mem_close"],
        ),
        (
            "nested wrappers, snake and camel case (SQLite)",
            &[
                "__GI___libc_free @libc.so.6",
                "sqlite3MemFree @app #sqlite3.c:10",
                "sqlite3_free @app #sqlite3.c:20",
                "vdbeFreeOpArray @app #sqlite3.c:30",
                "sqlite3VdbeDelete @app #sqlite3.c:40",
            ],
            &["free", "vdbeFreeOpArray"],
        ),
        (
            "a function that frees one kind of object keeps the blame",
            &["__GI___libc_free @libc.so.6", "free_tree @app #t.c:3", "main @app"],
            &["free", "free_tree"],
        ),
        // mimalloc's `malloc` and `mi_malloc` are one operation: the prefix goes.
        (
            "mimalloc",
            &[
                "_mi_page_malloc @libmimalloc.so.2",
                "mi_heap_malloc @libmimalloc.so.2",
                "mi_malloc @libmimalloc.so.2",
                "make_buf @app #b.c:2",
            ],
            &["malloc", "make_buf"],
        ),
        (
            "mimalloc's malloc override with its internals inlined",
            &["malloc @libmimalloc.so.2", "make_buf @app #b.c:2", "main @app"],
            &["malloc", "make_buf"],
        ),
        (
            "tcmalloc: only internals left, the entry inlined",
            &[
                "tcmalloc::CentralFreeList::FetchFromOneSpans(int, void**, void**) @libtcmalloc_minimal.so.4",
                "tcmalloc::ThreadCache::FetchFromCentralCache(unsigned int, int, void* (*)(unsigned long)) @libtcmalloc_minimal.so.4",
                "make_buf @app #b.c:2",
                "main @app",
            ],
            &["libtcmalloc_minimal.so", "make_buf"],
        ),
        (
            "Rust with tikv-jemallocator as the global allocator",
            &[
                "_rjem_je_arena_ralloc @app",
                "_rjem_je_arena_dalloc_small @app",
                "_rjem_sdallocx @app",
                "<tikv_jemallocator::Jemalloc as core::alloc::global::GlobalAlloc>::dealloc @app #lib.rs:9",
                "__rg_dealloc @app",
                "__rust_dealloc @app",
                "alloc::alloc::dealloc @app #/rustc/abc/library/alloc/src/alloc.rs:1",
                "parser::Parser::drop_token @app #src/parser.rs:40",
                "main @app",
            ],
            &["sdallocx", "parser::Parser::drop_token"],
        ),
        (
            "jemalloc built into the program (je_ prefix)",
            &["je_arena_dalloc_small @redis", "je_free @redis", "freeClient @redis #networking.c:9", "main @redis"],
            &["free", "freeClient"],
        ),
        (
            "ASan report: the access",
            &[
                "__sanitizer::Die() @libasan.so.8",
                "__asan::ScopedInErrorReport::~ScopedInErrorReport() @libasan.so.8",
                "__asan::ReportGenericError(unsigned long, unsigned long) @libasan.so.8",
                "__asan_report_load4 @libasan.so.8",
                "parse_header @app #p.c:7",
                "main @app",
            ],
            &["parse_header"],
        ),
        (
            "UBSan handler",
            &["__ubsan_handle_divrem_overflow_abort @libubsan.so.1", "ratio @app #r.c:5", "main @app"],
            &["ratio"],
        ),
    ]);
}

#[test]
fn go_rules() {
    run(&[
        (
            "nil map write",
            &[
                "runtime.throw @app #/usr/lib/go/src/runtime/panic.go:1077",
                "runtime.sigpanic @app #/usr/lib/go/src/runtime/signal_unix.go:845",
                "main.(*Store).Put @app #store.go:12",
                "main.main @app #main.go:9",
                "runtime.main @app",
                "runtime.goexit @app",
            ],
            &["main.(*Store).Put"],
        ),
        (
            "panic",
            &[
                "runtime.gopanic @app #/usr/lib/go/src/runtime/panic.go:770",
                "main.parse @app #p.go:3",
                "runtime.goexit @app",
            ],
            &["main.parse"],
        ),
    ]);
}

#[test]
fn eventloop_rules() {
    run(&[
        (
            "glib callback",
            &[
                "on_timeout @app",
                "g_timeout_dispatch @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "g_main_context_dispatch @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "g_main_context_iterate.constprop.0 @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "g_main_loop_run @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "main @app",
            ],
            &["on_timeout"],
        ),
        (
            "crash in glib without app frame",
            &[
                "g_hash_table_lookup @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "g_main_context_dispatch @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "g_main_loop_run @/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0",
                "main @app",
            ],
            &["g_hash_table_lookup", "main"],
        ),
        (
            "libuv statically linked",
            &["on_read @app", "uv__read @app", "uv__stream_io @app", "uv__io_poll @app", "uv_run @app", "main @app"],
            &["on_read"],
        ),
        (
            "asio",
            &[
                "Session::on_read(boost::system::error_code const&, unsigned long) @app",
                "boost::asio::detail::reactive_socket_recv_op<...>::do_complete(void*) @app",
                "boost::asio::detail::scheduler::run(boost::system::error_code&) @app",
                "main @app",
            ],
            &["Session::on_read"],
        ),
        (
            "libevent",
            &[
                "read_cb @app",
                "bufferevent_run_deferred_callbacks_locked @libevent-2.1.so.7",
                "event_process_active_single_queue @libevent-2.1.so.7",
                "event_base_loop @libevent-2.1.so.7",
                "main @app",
            ],
            &["read_cb"],
        ),
    ]);
}

#[test]
fn signature_settings() {
    run(&[
        ("empty stack", &[], &[]),
        (
            "unsymbolized frame keeps module only and goes on",
            &["@/opt/plugins/libplug.so.2+0x1234", "host_call @app"],
            &["libplug.so", "host_call"],
        ),
        ("recursion collapses", &["walk @app", "walk @app", "walk @app", "main @app"], &["walk"]),
        (
            "a header's inline accessor keeps its caller",
            &["~EXTRACT_16BITS @tcpdump #./extract.h:51", "stp_print @tcpdump #./print-stp.c:312", "main @tcpdump"],
            &["EXTRACT_16BITS", "stp_print"],
        ),
        (
            "… also where it was not inlined (-O0)",
            &["EXTRACT_16BITS @tcpdump #/src/tcpdump/extract.h:51", "stp_print @tcpdump #/src/tcpdump/print-stp.c:312"],
            &["EXTRACT_16BITS", "stp_print"],
        ),
        (
            "a system header is not the application's",
            &["Config::load @app #/usr/include/c++/12/bits/new_allocator.h:137", "run_bug @app #bugs.cpp:70"],
            &["Config::load"],
        ),
        (
            "system frames cap",
            &[
                "a @libc.so.6",
                "b @libc.so.6",
                "c @libc.so.6",
                "d @libc.so.6",
                "e @libc.so.6",
                "f @libc.so.6",
                "g @libc.so.6",
            ],
            &["a", "b", "c", "d", "e"],
        ),
    ]);
}

/// A stack overflow is signed by the functions that recur, wherever the stack ran out.
#[test]
fn stack_overflows_are_signed_by_their_recursion() {
    let rules = RuleSet::default_rules();
    let overflow = ["stack-overflow".to_string()];
    // A demangler-like grammar: the cycle is not periodic, and the stack ran out
    // in a different function (or a helper) each time.
    let grammar = |start: usize, helper: Option<&'static str>| {
        let cycle = ["parse_type", "parse_args", "parse_type", "parse_expr", "parse_args", "parse_type", "parse_name"];
        let mut frames: Vec<Frame> = helper.into_iter().map(|h| frame(&format!("{h} @libc.so.6"))).collect();
        frames.extend((0..600).map(|i| frame(&format!("{} @app", cycle[(start + i) % cycle.len()]))));
        frames.extend(["demangle @app", "main @app"].map(frame));
        frames
    };
    let a = rules.evaluate(&grammar(0, None), &overflow);
    let b = rules.evaluate(&grammar(3, Some("__memset_avx2_unaligned_erms")), &overflow);
    let c = rules.evaluate(&grammar(6, Some("strlen")), &overflow);
    assert_eq!(a.signature, ["parse_args", "parse_expr", "parse_name", "parse_type"], "{:#?}", a.explanation);
    assert_eq!((a.fingerprint == b.fingerprint, a.fingerprint == c.fingerprint), (true, true), "{b:?} {c:?}");
    // A long cycle (NASM's expression parser: bexpr → rexp0…3 → expr0…6 → cexpr →
    // bexpr …, 14 functions) is signed whole, wherever in it the stack ran out; with
    // a cap below its length, each crash kept a different subset.
    let levels: Vec<String> = ["bexpr", "rexp0", "rexp1", "rexp2", "rexp3"]
        .into_iter()
        .map(String::from)
        .chain((0..7).map(|i| format!("expr{i}")))
        .chain(["cexpr".to_string(), "expr_paren".to_string()])
        .collect();
    let long = |start: usize| {
        let mut frames: Vec<Frame> = (0..1000)
            .map(|i| frame(&format!("{} @nasm", levels[levels.len() - 1 - (start + i) % levels.len()])))
            .collect();
        frames.extend(["evaluate @nasm", "parse_line @nasm", "main @nasm"].map(frame));
        frames
    };
    let signs: Vec<_> = (0..levels.len()).map(|s| rules.evaluate(&long(s), &overflow)).collect();
    assert_eq!(signs[0].signature.len(), levels.len(), "{:?}", signs[0].signature);
    assert!(
        signs.iter().all(|s| s.fingerprint == signs[0].fingerprint),
        "{:?}",
        signs.iter().map(|s| &s.signature).collect::<Vec<_>>()
    );
    // Without the classifier (a deep but finite recursion that crashed): the crash site.
    assert_eq!(rules.evaluate(&grammar(3, None), &[]).signature, ["parse_expr"]);
    // An overflow with no recursion (one huge frame): the crash site too.
    let flat: Vec<Frame> = ["memset @libc.so.6", "load_image @app", "main @app"].map(frame).to_vec();
    assert_eq!(rules.evaluate(&flat, &overflow).signature, rules.evaluate(&flat, &[]).signature);
}

#[test]
fn pretty_names_are_clean_but_recognizable() {
    let rules = RuleSet::default_rules();
    let frames: Vec<Frame> = [
        "__pthread_kill_implementation @libc.so.6",
        "__GI_raise @libc.so.6",
        "__GI_abort @libc.so.6",
        "__assert_fail @libc.so.6",
        "__memcpy_avx_unaligned_erms @libc.so.6",
        "Config::load(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&) [clone .cold] @app #/src/config.cc:22",
        "main::{lambda(int)#2}::operator()(int) const @app",
        "walk @app",
        "walk @app",
        "walk @app",
    ]
    .iter()
    .map(|s| frame(s))
    .collect();
    let pretty = rules.evaluate(&frames, &[]).pretty;
    assert_eq!(
        pretty,
        vec![
            "[4 frames of error handling: __pthread_kill_implementation, raise, abort, __assert_fail]",
            "[1 frame skipped: memcpy]",
            "Config::load(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&) (config.cc:22)",
            "main::{lambda(int)#2}::operator()(int) const",
            "walk (×3)",
        ]
    );
}
