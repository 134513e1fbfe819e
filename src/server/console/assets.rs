//! The console's assets, compiled into the binary: one HTML shell, one script, one
//! style sheet (plain HTML/CSS/JS, no framework, no build step), and the login page.

use super::*;

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const APP_CSS: &str = include_str!("assets/app.css");
const LOGIN_HTML: &str = include_str!("assets/login.html");

/// Headers of every page: scripts and styles from this server only, no framing,
/// no sniffing, no referrer (URLs carry project and group names).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

/// The login page; `next` and `message` are already HTML-escaped or fixed text.
pub fn login_page(next_escaped: &str, message: &str) -> String {
    LOGIN_HTML.replace("{{NEXT}}", next_escaped).replace("{{MESSAGE}}", message)
}

pub fn asset(content_type: &str, body: &str) -> Outcome {
    let mut resp = Response::new(200, &format!("{content_type}; charset=utf-8"), body.as_bytes().to_vec());
    resp.headers.push(("Cache-Control".into(), "no-cache".into()));
    resp.headers.push(("X-Content-Type-Options".into(), "nosniff".into()));
    Outcome { resp, note: None }
}
