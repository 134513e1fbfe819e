//! gdb's spelling of scalars: floats (`%g`), characters and strings with repeats and
//! escapes, sign extension, flag enums.

use super::*;

pub(super) fn unreadable_text(addr: u64) -> String {
    format!("<error: Cannot access memory at address {addr:#x}>")
}

/// gdb's `%g` with `prec` significant digits (9 for float, 17 for double).
pub fn fmt_g(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan(0x8000000000000)".into() } else { "nan(0x8000000000000)".into() };
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if exp < -4 || exp >= prec as i32 {
        format!("{}e{}{:02}", trim(mant), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{v:.decimals$}"))
    }
}

/// One character escaped as gdb does inside quotes (`quote` is `'` or `"`).
pub(super) fn escape_char(out: &mut String, c: u8, quote: char) {
    match c {
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        7 => out.push_str("\\a"),
        8 => out.push_str("\\b"),
        11 => out.push_str("\\v"),
        12 => out.push_str("\\f"),
        27 => out.push_str("\\033"),
        b'\\' => out.push_str("\\\\"),
        c if c as char == quote => {
            out.push('\\');
            out.push(quote);
        }
        0x20..=0x7e => out.push(c as char),
        c => {
            let _ = write!(out, "\\{c:03o}");
        }
    }
}

/// gdb's char literal: `65 'A'`.
pub(super) fn char_text(v: i64, byte: u8) -> String {
    let mut s = format!("{v} '");
    escape_char(&mut s, byte, '\'');
    s.push('\'');
    s
}

/// gdb's rendering of a char sequence: strings, with long runs of one character as
/// `'c' <repeats N times>`, joined by ", "; `...` when `truncated`.
pub(super) fn chars_text(bytes: &[u8], repeats: usize, truncated: bool) -> String {
    let (mut s, cut) = chars_limited(bytes, repeats, usize::MAX);
    if truncated && !cut {
        s.push_str("...");
    }
    s
}

/// Like [`chars_text`] under gdb's `print elements` limit (`max` "things": a character
/// counts one, a repeat block counts `repeats`); says whether it stopped early.
pub(super) fn chars_limited(bytes: &[u8], repeats: usize, max: usize) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    let mut things = 0usize;
    while i < bytes.len() && things < max {
        let c = bytes[i];
        let run = bytes[i..].iter().take_while(|b| **b == c).count();
        if run > repeats {
            if !cur.is_empty() {
                parts.push(format!("\"{cur}\""));
                cur.clear();
            }
            let mut s = String::from("'");
            escape_char(&mut s, c, '\'');
            let _ = write!(s, "' <repeats {run} times>");
            parts.push(s);
            i += run;
            things += repeats;
        } else {
            escape_char(&mut cur, c, '"');
            i += 1;
            things += 1;
        }
    }
    if !cur.is_empty() || parts.is_empty() {
        parts.push(format!("\"{cur}\""));
    }
    let cut = i < bytes.len();
    let mut s = parts.join(", ");
    if cut {
        s.push_str("...");
    }
    (s, cut)
}

pub(super) fn is_char_type(t: &Type) -> bool {
    matches!(t.kind, TypeKind::Base { size: 1, encoding: Encoding::SignedChar | Encoding::UnsignedChar })
}

pub(super) fn sign_extend(u: u64, size: usize) -> i64 {
    if size == 0 || size >= 8 {
        return u as i64;
    }
    let shift = 64 - 8 * size as u32;
    ((u << shift) as i64) >> shift
}

/// gdb prints an enum value that matches no enumerator as `(A | B)` for flag enums or
/// the number; bt keeps to the number with the flags it can name.
pub(super) fn flags_text(v: i64, values: &[(i64, String)]) -> String {
    let flags: Vec<&(i64, String)> = values.iter().filter(|(x, _)| *x != 0 && (*x as u64).is_power_of_two()).collect();
    if v > 0 && !flags.is_empty() && flags.len() == values.iter().filter(|(x, _)| *x != 0).count() {
        let mut rest = v as u64;
        let mut names = Vec::new();
        for (x, n) in flags {
            if rest & (*x as u64) != 0 {
                names.push(n.as_str());
                rest &= !(*x as u64);
            }
        }
        if !names.is_empty() {
            let mut s = format!("({}", names.join(" | "));
            if rest != 0 {
                let _ = write!(s, " | unknown: {rest:#x}");
            }
            s.push(')');
            return s;
        }
    }
    v.to_string()
}

/// gdb's spelling of C++ names in what it prints: GCC's `long int`, `short unsigned
/// int`, `long long unsigned int` are `long`, `unsigned short`, `unsigned long long`,
/// and a `char` template argument `'a'` is `(char)'a'` (gdb re-prints the names its
/// C++ parser reads; the caller decides which those are).
pub fn gdb_spelling(name: &str) -> String {
    let b = name.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        // A run of integer keywords separated by single spaces: `long unsigned int`.
        if (i == 0 || !is_ident(b[i - 1])) && b[i].is_ascii_alphabetic() {
            let (mut j, mut words) = (i, Vec::new());
            loop {
                let end = j + b[j..].iter().take_while(|c| is_ident(**c)).count();
                let word = &name[j..end];
                if !matches!(word, "long" | "short" | "int" | "unsigned" | "signed" | "char") {
                    break;
                }
                words.push(word);
                j = end;
                if b.get(j) == Some(&b' ') && b.get(j + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
                    let next_end = j + 1 + b[j + 1..].iter().take_while(|c| is_ident(**c)).count();
                    if matches!(&name[j + 1..next_end], "long" | "short" | "int" | "unsigned" | "signed" | "char") {
                        j += 1;
                        continue;
                    }
                }
                break;
            }
            if words.len() > 1 {
                let count = |w: &str| words.iter().filter(|x| **x == w).count();
                let unsigned = if count("unsigned") > 0 { "unsigned " } else { "" };
                let canonical = if count("char") > 0 {
                    None
                } else if count("short") > 0 {
                    Some(format!("{unsigned}short"))
                } else if count("long") == 2 {
                    Some(format!("{unsigned}long long"))
                } else if count("long") == 1 {
                    Some(format!("{unsigned}long"))
                } else {
                    None
                };
                match canonical {
                    Some(c) => out.push_str(&c),
                    None => out.push_str(&name[i..j]),
                }
                i = j;
                continue;
            }
            if let Some(w) = words.first() {
                out.push_str(w);
                i += w.len();
                continue;
            }
        }
        // A character literal as a template argument.
        if b[i] == b'\'' && (out.ends_with('<') || out.ends_with(", ")) {
            let lit_len = name[i + 1..].find('\'').map(|n| n + 2);
            if let Some(n) = lit_len
                && matches!(b.get(i + n), Some(b'>' | b','))
            {
                out.push_str("(char)");
                out.push_str(&name[i..i + n]);
                i += n;
                continue;
            }
        }
        let c = name[i..].chars().next().expect("i is inside the name");
        out.push(c);
        i += c.len_utf8();
    }
    out
}
