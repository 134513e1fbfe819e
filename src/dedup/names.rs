//! Name helpers the rule language cannot express with a regex: language guessing,
//! balanced-bracket stripping (template arguments, parameter lists), module names.

/// The language a frame was written in, guessed from its name and source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    C,
    Cxx,
    Rust,
    Go,
    /// A Java method (a JVM's frame, named `pkg.Class.method(descriptor)`).
    Java,
    /// No symbol and no file: nothing to go on.
    Unknown,
}

impl Lang {
    /// The spelling used by `lang:` in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::Cxx => "c++",
            Lang::Rust => "rust",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        Some(match s {
            "c" => Lang::C,
            "c++" | "cxx" | "cpp" => Lang::Cxx,
            "rust" => Lang::Rust,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "unknown" => Lang::Unknown,
            _ => return None,
        })
    }
}

fn ext_of(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.rsplit_once('.').map(|(_, e)| e).unwrap_or("")
}

/// True for a Rust legacy-mangling hash suffix `::h` + 16 hex digits.
fn has_rust_hash(name: &str) -> bool {
    name.len() > 19 && {
        let tail = &name.as_bytes()[name.len() - 19..];
        tail.starts_with(b"::h") && tail[3..].iter().all(u8::is_ascii_hexdigit)
    }
}

/// Guesses the language. The source file's extension wins; then the name's shape.
pub fn guess_lang(function: Option<&str>, file: Option<&str>) -> Lang {
    if let Some(file) = file {
        match ext_of(file) {
            "rs" => return Lang::Rust,
            "java" => return Lang::Java,
            "go" | "s" if file.ends_with(".go") => return Lang::Go,
            "cc" | "cpp" | "cxx" | "c++" | "hpp" | "hh" | "hxx" | "tcc" | "ipp" => return Lang::Cxx,
            "c" => return Lang::C,
            _ => {}
        }
        // libstdc++ headers have no extension (`/usr/include/c++/12/bits/vector`).
        if file.contains("/c++/") {
            return Lang::Cxx;
        }
    }
    let Some(f) = function else { return Lang::Unknown };
    if is_java_method(f) {
        return Lang::Java;
    }
    let rust_shape =
        f.contains("{{closure}}") || f.contains("{closure#") || f.contains("{impl#") || f.contains("{shim:");
    if has_rust_hash(f)
        || rust_shape
        || (f.starts_with('<') && f.contains(" as "))
        || f.starts_with("<core::")
        || f.starts_with("<alloc::")
    {
        return Lang::Rust;
    }
    if f.starts_with("runtime.") || f.starts_with("main.") || f == "runtime.goexit" {
        return Lang::Go;
    }
    if f.contains("::") || f.contains('(') || f.starts_with("operator") {
        // Rust demangled without hash has no parameter list; C++ from a demangler has one.
        if f.contains('(') || f.contains("(anonymous namespace)") || f.contains("{lambda") {
            return Lang::Cxx;
        }
        if f.starts_with("std::") || f.starts_with("core::") || f.starts_with("alloc::") {
            // `std::rt::lang_start` (Rust) vs `std::terminate()` (C++): the latter has parens.
            return Lang::Rust;
        }
        return Lang::Cxx;
    }
    Lang::C
}

/// `Sleepy$$Lambda$220/0x….run()V`, `a.B.m(I[Ljava/lang/String;)Ljava/lang/Object;`: a
/// Java method with its descriptor, which ends in a return type where a C++ name ends
/// in `)` or a qualifier, and has no blank.
fn is_java_method(f: &str) -> bool {
    let Some((head, ret)) = f.rsplit_once(')') else { return false };
    let ret = ret.trim_start_matches('[');
    let returns = matches!(ret, "V" | "Z" | "B" | "C" | "S" | "I" | "J" | "F" | "D")
        || (ret.starts_with('L') && ret.ends_with(';') && !ret.contains(' '));
    returns && !f.contains(' ') && head.contains('(') && head.split('(').next().is_some_and(|n| n.contains('.'))
}

/// Removes every balanced `open … close` group from `name`, except those that are
/// part of an operator name (`operator()`, `operator<`, `operator<<`, `operator->`).
pub fn strip_balanced(name: &str, open: char, close: char) -> String {
    const OPERATORS: [&str; 13] = ["()", "[]", "<<=", ">>=", "<=>", "<<", ">>", "<=", ">=", "->*", "->", "<", ">"];
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(c) = name[i..].chars().next() {
        if depth == 0 && out.ends_with("operator") {
            // Keep the operator's own symbol characters verbatim.
            if let Some(op) = OPERATORS.iter().find(|op| name[i..].starts_with(**op)) {
                out.push_str(op);
                i += op.len();
                continue;
            }
        }
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
        i += c.len_utf8();
    }
    // Unbalanced input (a truncated name): better the original than half a name.
    if depth > 0 { name.to_string() } else { out }
}

/// Removes Rust turbofish groups: `parse::<u32>` → `parse`, `a::<T>::b` → `a::b`.
pub fn strip_turbofish(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find("::<") {
        out.push_str(&rest[..i]);
        let mut depth = 0usize;
        let mut end = None;
        for (j, c) in rest[i + 2..].char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 2 + j + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(e) => rest = &rest[e..],
            // Unbalanced: keep the rest as it is.
            None => {
                out.push_str(&rest[i..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `libfoo.so.1.2.3` → `libfoo.so`; `/usr/lib/libfoo.so.1` → `libfoo.so`; `[vdso]` stays.
pub fn module_name(module: &str) -> String {
    let base = module.rsplit('/').next().unwrap_or(module);
    match base.find(".so.") {
        Some(i) => base[..i + 3].to_string(),
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        let cases = [
            (Some("parse_header"), None, Lang::C),
            (Some("parse_header"), Some("/src/a.c"), Lang::C),
            (Some("Config::load(std::string const&)"), None, Lang::Cxx),
            (Some("crashy::parse_port::h0123456789abcdef"), None, Lang::Rust),
            (Some("std::rt::lang_start_internal"), None, Lang::Rust),
            (Some("std::terminate()"), None, Lang::Cxx),
            (Some("runtime.sigpanic"), None, Lang::Go),
            (Some("bugs::main::{closure#2}"), None, Lang::Rust),
            (Some("<bugs::Id as core::fmt::Display>::fmt"), None, Lang::Rust),
            (Some("alloc::boxed::{impl#33}::call<()>"), None, Lang::Rust),
            (Some("anything"), Some("/rustc/abc/library/core/src/option.rs"), Lang::Rust),
            (Some("std::vector<int>::at"), Some("/usr/include/c++/12/bits/stl_vector.h"), Lang::Cxx),
            (Some("Crash.poke(Lsun/misc/Unsafe;I)V"), Some("Crash.java"), Lang::Java),
            (Some("Sleepy$$Lambda$220/0x00007f6eac14c208.run()V"), None, Lang::Java),
            (Some("java.lang.Object.toString()Ljava/lang/String;"), None, Lang::Java),
            (Some("a.B.m([I)[[J"), None, Lang::Java),
            (Some("Config::load(std::string const&)"), None, Lang::Cxx),
            (Some("f(int)"), None, Lang::Cxx),
            (None, None, Lang::Unknown),
        ];
        for (f, file, want) in cases {
            assert_eq!(guess_lang(f, file), want, "{f:?} {file:?}");
        }
    }

    #[test]
    fn stripping() {
        let cases = [
            ("std::vector<int, std::allocator<int> >::at(unsigned long)", '<', '>', "std::vector::at(unsigned long)"),
            ("Foo::operator<(Foo const&) const", '<', '>', "Foo::operator<(Foo const&) const"),
            ("Foo::operator<<<int>(int)", '<', '>', "Foo::operator<<(int)"),
            ("Foo::operator()(int) const", '(', ')', "Foo::operator() const"),
            ("Server::run()::{lambda}::operator()(int) const", '(', ')', "Server::run::{lambda}::operator() const"),
            ("a<b", '<', '>', "a<b"),
        ];
        for (input, open, close, want) in cases {
            assert_eq!(strip_balanced(input, open, close), want, "{input}");
        }
    }

    #[test]
    fn turbofish() {
        assert_eq!(strip_turbofish("a::parse::<u32>"), "a::parse");
        assert_eq!(strip_turbofish("a::f::<Vec<u8>>::{closure#0}"), "a::f::{closure#0}");
        assert_eq!(strip_turbofish("<a::B as c::D>::f"), "<a::B as c::D>::f");
        assert_eq!(strip_turbofish("a::f::<u8"), "a::f::<u8");
    }

    #[test]
    fn modules() {
        assert_eq!(module_name("/lib/x86_64-linux-gnu/libc.so.6"), "libc.so");
        assert_eq!(module_name("libstdc++.so.6.0.30"), "libstdc++.so");
        assert_eq!(module_name("[vdso]"), "[vdso]");
        assert_eq!(module_name("/opt/app/bin/server"), "server");
    }
}
