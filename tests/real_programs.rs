//! Real, unmodified Debian programs that nobody here wrote — interpreters, servers,
//! editors, a debugger, a terminal multiplexer, programs with many threads and many
//! libraries — are started, left to block where they normally wait (or, for the busy
//! ones, caught computing at a random instruction), and killed by a signal so that the
//! kernel writes their core; three busy ones are also stopped and traced live by PID. bt's frames of every thread are then
//! compared with gdb's (full function names, files, lines): per program the frames
//! compared, matched and shown only by bt are printed and appended to `real_programs.tsv` in Cargo's
//! test scratch directory, and the bar is ≥ 99 % of gdb's frames matched by name (frames
//! only bt shows count against it) and every line where both give one.
//!
//! Among them: gdb (mmaps ELF files as data while it reads their symbols), Python and
//! Perl (dlopen their C modules after start), `sotruss` (its audit library lives in a
//! second link-map namespace, loaded with dlmopen), node and memcached (many threads),
//! Python with its Debian debug package (`python3.11-dbg`) and libc with `libc6-dbg`,
//! the others with only their symbol tables; the interpreter's own debug build
//! (`python3.11-dbg`), SQLite, jq, xz and zstd caught computing; and Chromium, whose
//! stacks gdb loses (frame pointers, almost no CFI: see `GDB_LOSES_WALK`), and a JVM,
//! whose Java frames gdb loses too (JIT code), where bt must match gdb as far as gdb is
//! right and walk every thread to its entry.
//! `make deps` installs them all; a missing one fails its test (the deps are part of
//! `make test`).

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One program: how to start it and when it has settled.
struct Program {
    name: &'static str,
    /// The Debian package that provides it (for the failure message).
    package: &'static str,
    argv: &'static [&'static str],
    /// Settled: at least this many tasks, all asleep.
    min_tasks: usize,
    /// The signal that kills it (one it does not catch, or whose handler re-raises it;
    /// nano saves its buffers and exits on SIGSEGV and SIGABRT, so it gets SIGBUS).
    signal: i32,
    /// A script written to the scratch directory and named by `{script}` in argv.
    script: Option<&'static str>,
    /// Runs on a pseudo-terminal (an editor that needs one).
    tty: bool,
    /// Modules bt must list (path suffixes; one entry per expected copy).
    modules: &'static [&'static str],
    /// Files the process maps (the core's file mappings say so) that are data, not
    /// loaded images: bt must not list them as modules.
    data_files: &'static [&'static str],
    /// Caught busy instead of asleep: the signal lands at whatever instruction runs
    /// (a prologue, an epilogue, hand-written assembly), some tens of ms after the
    /// program started computing.
    busy: bool,
}

const PROGRAMS: &[Program] = &[
    Program {
        name: "chromium",
        package: "chromium",
        // C++ of 300 MB, stripped, built with frame pointers and almost no CFI (see
        // GDB_LOSES_WALK), dozens of threads in a multi-process browser.
        argv: &[
            "/usr/lib/chromium/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--user-data-dir={dir}/profile",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        min_tasks: 8,
        signal: libc::SIGABRT,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "java",
        package: "openjdk-17-jdk-headless",
        // HotSpot: a JIT whose interpreter keeps frame pointers but returns through
        // dispatch jumps, not calls (see GDB_LOSES_WALK), ~20 threads of the VM's own.
        // The source launcher compiles the script in memory (javac's classes, JIT
        // compiled code in the process); the script says when its threads wait.
        argv: &[
            "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
            "-Xmx64m",
            "-XX:-UsePerfData",
            "--source",
            "17",
            "{script}",
            "{dir}/ready",
        ],
        min_tasks: 12,
        signal: libc::SIGABRT,
        script: Some(
            "import java.util.concurrent.*;\n\
             import java.util.concurrent.locks.LockSupport;\n\
             public class Waits {\n\
               static final Object LOCK = new Object();\n\
               static void deep(int n) throws Exception {\n\
                 if (n > 0) { deep(n - 1); return; }\n\
                 Thread.sleep(600_000);\n\
               }\n\
               public static void main(String[] args) throws Exception {\n\
                 BlockingQueue<Integer> q = new ArrayBlockingQueue<>(1);\n\
                 Thread[] ts = {\n\
                   new Thread(() -> { try { deep(6); } catch (Exception e) {} }, \"sleeper\"),\n\
                   new Thread(() -> { synchronized (LOCK) { try { LOCK.wait(); } catch (Exception e) {} } }, \"waiter\"),\n\
                   new Thread(() -> LockSupport.park(), \"parked\"),\n\
                   new Thread(() -> { try { q.take(); } catch (Exception e) {} }, \"taker\"),\n\
                 };\n\
                 for (Thread t : ts) t.start();\n\
                 java.nio.file.Files.createFile(java.nio.file.Path.of(args[0]));\n\
                 ts[0].join();\n\
               }\n\
             }\n",
        ),
        tty: false,
        modules: &["/libjvm.so"],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "dbus-daemon",
        package: "dbus",
        argv: &["/usr/bin/dbus-daemon", "--session", "--nofork", "--address=unix:path={dir}/bus"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "python3-dbg",
        package: "python3.11-dbg",
        // The interpreter's debug build (-O0, every assertion), a separate executable.
        argv: &[
            "/usr/bin/python3.11-dbg",
            "-c",
            "import threading, time\n\
             for _ in range(3): threading.Thread(target=time.sleep, args=(600,)).start()\n\
             time.sleep(600)",
        ],
        min_tasks: 4,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "python3",
        package: "python3, python3.11-dbg",
        argv: &[
            "/usr/bin/python3",
            "-c",
            "import threading, time, ctypes, json, decimal, sqlite3\n\
             for _ in range(4): threading.Thread(target=time.sleep, args=(600,)).start()\n\
             time.sleep(600)",
        ],
        min_tasks: 5,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &["/_ctypes.cpython-311-x86_64-linux-gnu.so", "/_decimal.cpython-311-x86_64-linux-gnu.so"],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "perl",
        package: "perl",
        argv: &["/usr/bin/perl", "-MPOSIX", "-MSocket", "-e", "sleep 600"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &["/POSIX/POSIX.so", "/Socket/Socket.so"],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "redis-server",
        package: "redis-server",
        argv: &[
            "/usr/bin/redis-server",
            "--port",
            "0",
            "--unixsocket",
            "{dir}/redis.sock",
            "--save",
            "",
            "--daemonize",
            "no",
            "--io-threads",
            "4",
        ],
        min_tasks: 4,
        signal: libc::SIGABRT,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "memcached",
        package: "memcached",
        argv: &["/usr/bin/memcached", "-u", "root", "-p", "0", "-U", "0", "-s", "{dir}/memcached.sock", "-t", "8"],
        min_tasks: 10,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "lua5.4",
        package: "lua5.4",
        argv: &["/usr/bin/lua5.4", "-e", "os.execute('sleep 600')"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "tclsh",
        package: "tcl",
        argv: &["/usr/bin/tclsh", "{script}"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: Some("after 600000\n"),
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "bash",
        package: "bash",
        argv: &["/bin/bash", "-c", "read -t 600 line < {dir}/fifo; echo $line"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "gawk",
        package: "gawk",
        argv: &["/usr/bin/gawk", "BEGIN { getline line < \"{dir}/fifo\" }"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "node",
        package: "nodejs",
        argv: &["/usr/bin/node", "-e", "setTimeout(() => {}, 600000)"],
        min_tasks: 7,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "vim",
        package: "vim-tiny",
        argv: &["/usr/bin/vim.tiny", "-N", "-u", "NONE", "-i", "NONE", "-es", "-c", "sleep 600"],
        min_tasks: 1,
        signal: libc::SIGABRT,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "gdb",
        package: "gdb",
        // gdb runs python3.11 to main, reading the symbols of it and its libraries:
        // it maps those files as data beside its own libc.
        argv: &[
            "/usr/bin/gdb",
            "-nx",
            "-batch",
            "-ex",
            "file /usr/bin/python3.11",
            "-ex",
            "break main",
            "-ex",
            "run",
            "-ex",
            "shell touch {dir}/ready; read x < {dir}/fifo",
        ],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &["/libc.so.6"],
        data_files: &["/usr/bin/python3.11"],
        busy: false,
    },
    Program {
        name: "sotruss",
        package: "libc-devtools",
        argv: &["/usr/bin/sotruss", "-o", "{dir}/sotruss.log", "/usr/bin/sleep", "600"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &["/audit/sotruss-lib.so", "/libc.so.6", "/libc.so.6"],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "tmux",
        package: "tmux",
        argv: &["/usr/bin/tmux", "-S", "{dir}/tmux.sock", "-f", "/dev/null", "-D"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "nano",
        package: "nano",
        argv: &["/bin/nano", "--ignorercfiles", "{dir}/fifo"],
        min_tasks: 1,
        signal: libc::SIGBUS,
        script: None,
        tty: true,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "rsync",
        package: "rsync",
        argv: &["/usr/bin/rsync", "--daemon", "--no-detach", "--port=0", "--config={script}"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: Some("use chroot = no\n[x]\npath = /tmp\n"),
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "nginx",
        package: "nginx-light",
        argv: &["/usr/sbin/nginx", "-p", "{dir}", "-c", "{script}"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: Some(
            "daemon off; master_process off; error_log {dir}/nginx.err; pid {dir}/nginx.pid;\n\
             events {}\n\
             http { access_log off; client_body_temp_path {dir}/b; proxy_temp_path {dir}/p;\n\
             fastcgi_temp_path {dir}/f; uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;\n\
             server { listen unix:{dir}/nginx.sock; } }\n",
        ),
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "less",
        package: "less",
        argv: &["/usr/bin/less", "/etc/services"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: true,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "top",
        package: "procps",
        argv: &["/usr/bin/top", "-d", "100"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: None,
        tty: true,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "ripgrep",
        package: "ripgrep",
        // Rust: blocked opening a FIFO, with its searcher threads started. Rust's own
        // SIGSEGV handler lets a sent SIGSEGV through once and the program lives on,
        // so it gets SIGQUIT.
        argv: &["/usr/bin/rg", "--threads", "4", "x", "{dir}/fifo", "/usr/share/doc"],
        min_tasks: 1,
        signal: libc::SIGQUIT,
        script: None,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    Program {
        name: "cmake",
        package: "cmake",
        // C++ (templates, libuv): a script waiting for its child process.
        argv: &["/usr/bin/cmake", "-P", "{script}"],
        min_tasks: 1,
        signal: libc::SIGSEGV,
        script: Some("execute_process(COMMAND /usr/bin/sleep 600)\n"),
        tty: false,
        modules: &[],
        data_files: &[],
        busy: false,
    },
    // Busy: caught mid-computation at a random moment (SIGQUIT, which none of them
    // catches; Rust's runtime lets one sent SIGSEGV through).
    busy(
        "python3-busy",
        "python3, python3.11-dbg",
        &[
            "/usr/bin/python3",
            "-c",
            "import threading, json\n\
             def work():\n\
             \x20   while True: json.loads(json.dumps([{'k': i, 'v': str(i)} for i in range(300)]))\n\
             threading.Thread(target=work, daemon=True).start()\n\
             while True: sorted(str(i * i) for i in range(2000))",
        ],
        None,
    ),
    busy(
        "perl-busy",
        "perl",
        &["/usr/bin/perl", "{script}"],
        Some(
            "while (1) { my $s = join(',', map { $_ * 2 } 1..1000); $s =~ s/(\\d+)/$1+1/ge; \
             my %h = map { $_ => 1 } split /,/, $s; }\n",
        ),
    ),
    // Hand-written assembly (SHA-256, AES) with its own CFI.
    busy("openssl-busy", "openssl", &["/usr/bin/openssl", "speed", "-seconds", "60", "sha256", "aes-128-cbc"], None),
    // Rust, several searching threads.
    busy("ripgrep-busy", "ripgrep", &["/usr/bin/rg", "-uuu", "--no-messages", "-c", "zq[0-9]+xj", "/usr"], None),
    busy(
        "gawk-busy",
        "gawk",
        &[
            "/usr/bin/gawk",
            "BEGIN { while (1) { s = \"\"; for (i = 0; i < 1000; i++) s = s sprintf(\"%d\", i); gsub(/1/, \"x\", s) } }",
        ],
        None,
    ),
    // Compression with hand-written and vectorized code, several worker threads.
    busy("xz-busy", "xz-utils", &["/usr/bin/xz", "-9e", "-T2", "-c", "-k", "/usr/lib/chromium/chromium"], None),
    busy("zstd-busy", "zstd", &["/usr/bin/zstd", "-19", "-T2", "-c", "/usr/lib/chromium/chromium"], None),
    // A database engine's virtual machine in one endless recursive query.
    busy(
        "sqlite3-busy",
        "sqlite3",
        &[
            "/usr/bin/sqlite3",
            ":memory:",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT count(*), sum(length(printf('%d', x))) FROM c;",
        ],
        None,
    ),
    busy("jq-busy", "jq", &["/usr/bin/jq", "-n", "[range(100000000)] | map(tostring) | length"], None),
];

/// Programs whose stacks gdb loses, and where its walk stops being right:
///
/// - [`Cut::Exe`]: built with frame pointers and almost no CFI (Chromium: 0.4 MB of
///   `.eh_frame` for 225 MB of code), gdb cannot unwind out of a frame of the program
///   itself: its prologue analysis reads stack words as return addresses, and it prints
///   a run of `??` frames (`0x6474756853724324 in ?? ()`) instead of the thread's callers.
/// - [`Cut::Jit`]: a JVM, whose Java frames are JIT code that no module describes; gdb
///   stops at the first (`?? ()` then `0x0000000000000000 in ?? ()`).
///
/// There, gdb's frames are compared up to and including the first such frame (up to
/// and not including it for a JVM: gdb calls a Java frame `??`, bt names it from the
/// JVM's metadata, as `tests/ptrace_jit.rs` checks against the JVM's own report); bt's
/// frames past that point are its own (they count neither for nor against the bar),
/// and every thread's walk must reach the thread's or the process's entry without one
/// guessed (scanned) frame.
const GDB_LOSES_WALK: &[(&str, Cut)] = &[("chromium", Cut::Exe), ("java", Cut::Jit)];

/// Where gdb's walk of a [`GDB_LOSES_WALK`] program is cut.
#[derive(Clone, Copy)]
enum Cut {
    /// After its first frame in the program's executable.
    Exe,
    /// Before its first frame in JIT code (anonymous executable memory).
    Jit,
}

/// Where a walk ends that reached its thread's or the process's entry.
const ENTRIES: &[&str] = &["clone3", "clone", "__clone", "start_thread", "_start", "__libc_start_main"];

/// A program caught busy (see [`Program::busy`]), killed by SIGQUIT.
const fn busy(
    name: &'static str,
    package: &'static str,
    argv: &'static [&'static str],
    script: Option<&'static str>,
) -> Program {
    Program {
        name,
        package,
        argv,
        min_tasks: 1,
        signal: libc::SIGQUIT,
        script,
        tty: false,
        modules: &[],
        data_files: &[],
        busy: true,
    }
}

/// Waits until the program has computed for a while (≥ 50 ms of CPU), then a
/// pseudo-random 20–400 ms more, so the signal lands at an arbitrary instruction;
/// returns the extra delay (printed, to tell runs apart).
fn busy_moment(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let ticks = || -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest: Vec<&str> = stat.rsplit_once(')').map_or("", |r| r.1).split_whitespace().collect();
        rest.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + rest.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    while ticks() < 5 {
        assert!(Instant::now() < deadline, "pid {pid} never got busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let delay = 20 + u64::from(nanos) % 381;
    std::thread::sleep(Duration::from_millis(delay));
    delay
}

/// What one program's comparison found.
#[derive(Default, Debug)]
struct Tally {
    threads: usize,
    frames: usize,
    named: usize,
    lines: usize,
    lines_matched: usize,
    /// Frames bt shows that gdb does not (a tail-call frame gdb cannot confirm, a
    /// frame from a guess): they count against the bar like frames bt misses.
    extra: usize,
    /// Frames bt shows past the point where gdb's walk was cut ([`GDB_LOSES_WALK`]).
    beyond: usize,
    misses: Vec<String>,
}

/// Aligns gdb's and bt's frames of one thread (longest common subsequence on the
/// function name) and counts the frames gdb has, those bt names the same, the frames
/// only bt has, and the lines both give and agree on.
///
/// With `beyond`, gdb's walk was cut where it stops being trustworthy: bt's frames
/// after the last one gdb has count as `beyond`, not as `extra`.
fn tally_thread(g: &GdbThread, b: &BtThread, t: &mut Tally, beyond: bool) {
    let same = |gf: &GdbFrame, bf: &BtFrame| -> bool {
        if gf.signal_trampoline {
            return bf.signal_frame || bf.function.as_deref() == Some("__restore_rt");
        }
        match (&gf.function, &bf.function) {
            (Some(a), Some(b)) => same_function(a, b),
            (None, None) => true,
            _ => false,
        }
    };
    let (n, m) = (g.frames.len(), b.frames.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] =
                if same(&g.frames[i], &b.frames[j]) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    t.threads += 1;
    t.frames += n;
    while i < n && j < m {
        if same(&g.frames[i], &b.frames[j]) {
            t.named += 1;
            if let (Some(gl), Some(bl)) = (g.frames[i].line, b.frames[j].line) {
                t.lines += 1;
                if gl == bl {
                    t.lines_matched += 1;
                } else {
                    t.misses.push(format!("thread {} line: {}  <> bt line {bl}", g.tid, g.frames[i].raw));
                }
            }
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            t.misses.push(format!(
                "thread {} gdb #{i} not in bt: {}  (bt #{j}: {:?})",
                g.tid, g.frames[i].raw, b.frames[j].function
            ));
            i += 1;
        } else {
            t.extra += 1;
            t.misses.push(format!(
                "thread {} bt #{j} not in gdb: {:?} (gdb #{i}: {})",
                g.tid, b.frames[j].function, g.frames[i].raw
            ));
            j += 1;
        }
    }
    for f in &g.frames[i..] {
        t.misses.push(format!("thread {} gdb frame not in bt: {}", g.tid, f.raw));
    }
    for (k, f) in b.frames.iter().enumerate().skip(j) {
        if beyond && i == n {
            t.beyond += 1;
            continue;
        }
        t.extra += 1;
        t.misses.push(format!("thread {} bt #{k} not in gdb: {:?}", g.tid, f.function));
    }
}

/// gdb's frames of `g` up to its first frame where `cut` says its walk stops being
/// right (see [`GDB_LOSES_WALK`]); frames with no pc printed (frame 0, inlined ones)
/// never cut.
fn cut_walk(g: &GdbThread, cut: Cut, exe: &Path, maps: &serde_json::Value) -> GdbThread {
    let cuts_at = |pc: u64| {
        maps.as_array().into_iter().flatten().any(|m| {
            let path = m["path"].as_str().unwrap_or("");
            let mapped = match cut {
                Cut::Exe => path == exe.to_str().unwrap_or("?"),
                Cut::Jit => path.is_empty() || path.starts_with("[anon") || path.starts_with("/memfd:"),
            };
            mapped
                && m["perms"].as_str().is_some_and(|p| p.contains('x'))
                && (m["start"].as_u64().unwrap_or(0)..m["end"].as_u64().unwrap_or(0)).contains(&pc)
        })
    };
    let pc = |raw: &str| {
        let word = raw.split_whitespace().nth(1)?;
        u64::from_str_radix(word.strip_prefix("0x")?, 16).ok()
    };
    let mut kept = g.clone();
    if let Some(k) = g.frames.iter().position(|f| pc(&f.raw).is_some_and(cuts_at)) {
        kept.frames.truncate(match cut {
            Cut::Exe => k + 1,
            Cut::Jit => k,
        });
    }
    kept
}

/// Whether `pc` is in the function at the ELF entry point of `exe` (`_start`, within
/// its first 64 bytes), which a stripped executable leaves unnamed: the end of the
/// process's main thread.
fn at_exe_entry(pc: u64, exe: &Path, maps: &serde_json::Value) -> bool {
    use std::io::Read;
    let mut header = [0u8; 32];
    if fs::File::open(exe).and_then(|mut f| f.read_exact(&mut header)).is_err() {
        return false;
    }
    let pie = u16::from_le_bytes([header[16], header[17]]) == 3;
    let entry = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
    let base = maps
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["path"].as_str() == exe.to_str())
        .filter_map(|m| m["start"].as_u64())
        .min()
        .unwrap_or(0);
    let entry = if pie { base + entry } else { entry };
    (entry..entry + 64).contains(&pc)
}

/// Starts the program in `dir` (its script written there, a pseudo-terminal for an
/// editor) and waits until it settles (asleep) or, for a busy one, until a moment in
/// the middle of its work. Returns the child, the terminal's master side (kept open
/// while the program runs) and the real executable.
fn start(p: &Program, dir: &Path) -> (std::process::Child, Option<fs::File>, PathBuf) {
    let fifo = dir.join("fifo");
    if !fifo.exists() {
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }
    let script = dir.join(format!("{}.script", p.name));
    let dir_s = dir.to_str().expect("utf-8");
    if let Some(text) = p.script {
        fs::write(&script, text.replace("{dir}", dir_s)).expect("write the script");
    }
    let args: Vec<String> = p.argv[1..]
        .iter()
        .map(|a| a.replace("{dir}", dir_s).replace("{script}", script.to_str().expect("utf-8")))
        .collect();
    let exe = Path::new(p.argv[0]);
    assert!(exe.exists(), "{} is missing: install the Debian package {} (make deps does)", exe.display(), p.package);
    let mut cmd = Command::new(exe);
    cmd.args(&args).current_dir(dir).env("HOME", dir).env("TERM", "xterm");
    // An editor gets a pseudo-terminal of 24 × 80; the others get nothing.
    let master = if p.tty {
        let (master, slave) = pty();
        cmd.stdin(slave.try_clone().expect("dup")).stdout(slave.try_clone().expect("dup")).stderr(slave);
        Some(master)
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        None
    };
    allow_core_dumps(&mut cmd);
    // A session of its own: no terminal signal of ours reaches it.
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let pid = child.id();
    // A program that says when it is ready (by creating `ready`) is waited for first.
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.argv.iter().any(|a| a.contains("{dir}/ready")) && !dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "{} never said it was ready", p.name);
        std::thread::sleep(Duration::from_millis(20));
    }
    let settled = std::panic::catch_unwind(|| {
        if p.busy {
            let delay = busy_moment(pid);
            eprintln!("{}: caught {delay} ms after it got busy", p.name);
        } else {
            wait_all_asleep(pid, p.min_tasks, 60)
        }
    });
    if settled.is_err() {
        let _ = child.kill();
        panic!("{} never settled (exited? {:?})", p.name, child.try_wait());
    }
    let real_exe = fs::read_link(format!("/proc/{pid}/exe")).expect("readlink exe");
    (child, master, real_exe)
}

/// Starts the program, waits until it settles, kills it with its signal and returns
/// (executable, core) once the kernel has written the core.
fn crash(p: &Program, dir: &Path, core_dir: &Path) -> (PathBuf, PathBuf) {
    let (mut child, _master, real_exe) = start(p, dir);
    let pid = child.id();
    // SAFETY: kill on our own child.
    unsafe { libc::kill(pid as i32, p.signal) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "{} did not die of signal {}", p.name, p.signal);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.core_dumped(), "{} died without a core: {status}", p.name);
    let written = core_dir.join(format!("core.{pid}"));
    let core = dir.join(format!("{}.core", p.name));
    fs::rename(&written, &core).unwrap_or_else(|e| panic!("core of {} missing at {}: {e}", p.name, written.display()));
    (real_exe, core)
}

/// A pseudo-terminal pair (master, slave) of 24 rows and 80 columns.
fn pty() -> (fs::File, fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r on the descriptor just opened;
    // ptsname_r writes a NUL-terminated name into the buffer it is given.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(m), 0, "grantpt");
        assert_eq!(libc::unlockpt(m), 0, "unlockpt");
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0, "ptsname_r");
        let ws = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        libc::ioctl(m, libc::TIOCSWINSZ, &ws);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr()).to_str().expect("utf-8 pty name").to_string();
        let slave = fs::OpenOptions::new().read(true).write(true).open(&name).expect("open the pty slave");
        (fs::File::from_raw_fd(m), slave)
    }
}

fn check(name: &str) {
    let p = PROGRAMS.iter().find(|p| p.name == name).expect("program");
    let dir = scratch_dir(&format!("real-{name}"));
    let core_dir = scratch_dir(&format!("bt-cores-real-{name}"));
    let (exe, core) = {
        let _guard = CorePatternGuard::set(&core_dir);
        crash(p, &dir, &core_dir)
    };
    let gdb = gdb_core(&exe, &core);
    let deepest = gdb.threads.iter().map(|t| t.frames.len()).max().unwrap_or(0);
    let cap = (deepest * 2 + 64).to_string();
    let snap = bt_json(&[
        "ptrace",
        "--max-frames",
        &cap,
        "--core",
        core.to_str().expect("utf-8"),
        exe.to_str().expect("utf-8"),
    ]);
    compare(p, name, &exe, &gdb, &snap);
}

/// The live form of [`check`], for a busy program: stopped (SIGSTOP) mid-computation,
/// traced by `bt ptrace PID`, then by `gdb -p PID` (the process stays stopped between
/// them: bt leaves a stopped process stopped), then killed.
fn check_live(name: &str) {
    let p = PROGRAMS.iter().find(|p| p.name == name).expect("program");
    let dir = scratch_dir(&format!("real-live-{name}"));
    let (mut child, _master, exe) = start(p, &dir);
    let pid = child.id() as i32;
    // SAFETY: kill on our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped = || {
        fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten().all(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    };
    while !stopped() {
        assert!(Instant::now() < deadline, "{name} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid_s = pid.to_string();
    let snap = std::panic::catch_unwind(|| bt_json(&["ptrace", "--max-frames", "1024", &pid_s]));
    let gdb = std::panic::catch_unwind(|| gdb_live(pid));
    // SAFETY: kill on our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = child.wait();
    let (snap, gdb) = (snap.expect("bt ptrace PID"), gdb.expect("gdb -p PID"));
    compare(p, name, &exe, &gdb, &snap);
}

/// Compares bt's snapshot with gdb's report of the same process state, frame by frame
/// (full names, lines), and the modules bt lists; panics past the bar.
fn compare(p: &Program, name: &str, exe: &Path, gdb: &GdbReport, snap: &serde_json::Value) {
    let bt = bt_threads(snap);
    let modules: Vec<&str> =
        snap["modules"].as_array().into_iter().flatten().filter_map(|m| m["path"].as_str()).collect();
    let maps: Vec<&str> = snap["maps"].as_array().into_iter().flatten().filter_map(|m| m["path"].as_str()).collect();
    for want in p.modules {
        let need = p.modules.iter().filter(|m| *m == want).count();
        let have = modules.iter().filter(|m| m.ends_with(want)).count();
        assert!(have >= need, "{name}: bt lists {have} module(s) *{want}, expected {need}: {modules:?}");
    }
    for data in p.data_files {
        assert!(maps.contains(data), "{name}: the precondition failed: {data} is not mapped at all: {maps:?}");
        assert!(!modules.contains(data), "{name}: {data} is mapped as data only, yet bt lists it as a module");
    }
    let mut t = Tally::default();
    let mut problems = vec![];
    let loses = GDB_LOSES_WALK.iter().find(|(n, _)| *n == name).map(|(_, cut)| *cut);
    for g in &gdb.threads {
        let Some(b) = bt.iter().find(|b| b.tid == g.tid) else {
            problems.push(format!("thread {} is missing in bt", g.tid));
            continue;
        };
        let Some(cut) = loses else {
            tally_thread(g, b, &mut t, false);
            continue;
        };
        tally_thread(&cut_walk(g, cut, exe, &snap["maps"]), b, &mut t, true);
        let last = b.frames.last();
        let at_entry = last.is_some_and(|f| {
            f.function.as_deref().is_some_and(|f| ENTRIES.contains(&f)) || at_exe_entry(f.pc, exe, &snap["maps"])
        });
        if !at_entry {
            let last = last.map(|f| (f.function.clone(), f.module.clone(), format!("{:#x}", f.pc)));
            problems.push(format!("thread {}: bt's walk ends at {last:?}, not at an entry", b.tid));
        }
        if let Some(k) = b.frames.iter().position(|f| f.trust == "scan") {
            problems.push(format!("thread {}: bt's frame #{k} is a guess (scan)", b.tid));
        }
    }
    if bt.len() != gdb.threads.len() {
        problems.push(format!("threads: gdb {}, bt {}", gdb.threads.len(), bt.len()));
    }
    let line = format!(
        "{name}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        exe.display(),
        t.threads,
        t.frames,
        t.named,
        t.extra,
        t.lines,
        t.lines_matched,
        t.beyond
    );
    eprintln!("program\texe\tthreads\tframes\tnamed\tonly_bt\tlines\tlines_matched\tbeyond_gdb\n{line}");
    if !t.misses.is_empty() {
        eprintln!("{}", t.misses.join("\n"));
    }
    let tsv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real_programs.tsv");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&tsv) {
        let _ = writeln!(f, "{line}");
    }
    // The oracle must have said something, or every comparison passes vacuously.
    assert!(t.frames >= 3 * t.threads && t.frames > 0, "{name}: gdb gave too few frames:\n{}", gdb.raw);
    let named = t.named as f64 / (t.frames + t.extra) as f64;
    if named < 0.99 || t.lines_matched != t.lines || !problems.is_empty() {
        panic!(
            "{name}: bt matched {}/{} of gdb's frames by name, with {} more frames of its own ({:.1} %), {}/{} lines; {}\n{}\n\ngdb:\n{}",
            t.named,
            t.frames,
            t.extra,
            named * 100.0,
            t.lines_matched,
            t.lines,
            problems.join("; "),
            t.misses.join("\n"),
            gdb.raw
        );
    }
}

macro_rules! programs {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check($name);
            }
        )*

        #[test]
        fn every_program_has_a_test() {
            let tested = [$($name),*];
            for p in PROGRAMS {
                assert!(tested.contains(&p.name), "{} has no test", p.name);
            }
            assert!(PROGRAMS.len() >= 15, "the issue asks for at least 15 programs");
        }
    };
}

#[test]
fn python3_busy_live() {
    check_live("python3-busy");
}

#[test]
fn ripgrep_busy_live() {
    check_live("ripgrep-busy");
}

#[test]
fn openssl_busy_live() {
    check_live("openssl-busy");
}

programs! {
    python3 => "python3",
    perl => "perl",
    redis_server => "redis-server",
    memcached => "memcached",
    lua => "lua5.4",
    tclsh => "tclsh",
    bash => "bash",
    gawk => "gawk",
    node => "node",
    vim => "vim",
    gdb => "gdb",
    sotruss_dlmopen => "sotruss",
    tmux => "tmux",
    nano => "nano",
    rsync => "rsync",
    nginx => "nginx",
    less => "less",
    top => "top",
    ripgrep => "ripgrep",
    python3_busy => "python3-busy",
    perl_busy => "perl-busy",
    openssl_busy => "openssl-busy",
    ripgrep_busy => "ripgrep-busy",
    gawk_busy => "gawk-busy",
    cmake => "cmake",
    chromium => "chromium",
    java => "java",
    dbus_daemon => "dbus-daemon",
    python3_dbg => "python3-dbg",
    xz_busy => "xz-busy",
    zstd_busy => "zstd-busy",
    sqlite3_busy => "sqlite3-busy",
    jq_busy => "jq-busy",
}
