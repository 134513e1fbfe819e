//! A small HTTP/1.1 server on std::net: one thread per connection, socket read and
//! write timeouts, a deadline per request head and body, keep-alive, `Expect:
//! 100-continue`, chunked request bodies, size limits checked before a body is
//! read, and optionally TLS (the stream is a [`Stream`]: TCP or rustls over it).
//!
//! Folklore: tiny_http 0.12 was the plan; reading its source ruled it out for two
//! reasons. Its sockets have no read timeout, so a client that sends half a body and
//! stalls holds a worker for ever; and an unread body is drained when the request
//! is dropped (`EqualReader::drop` allocates `vec![0; remaining]` and reads it), so
//! a 413 still reads the whole body, and a forged `Content-Length` makes it
//! allocate whatever the client claims.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A connection's byte stream: plain TCP, or TLS over it.
pub trait Stream: Read + Write + Send {
    /// Ends the stream politely before the socket is shut down (TLS: close_notify).
    fn finish(&mut self) {}
}

impl Stream for TcpStream {}

/// The buffered connection a request is read from (and its response written to).
pub type Conn = BufReader<Box<dyn Stream>>;

/// Wraps an accepted socket (TLS handshakes happen on first use, under the
/// socket's timeouts).
pub type Wrap = dyn Fn(TcpStream) -> std::io::Result<Box<dyn Stream>> + Send + Sync;

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (413 beyond, refused before reading).
    pub max_body: u64,
    /// Largest request line + headers.
    pub max_head: usize,
    /// Longest wait for any single read or write on a socket.
    pub io_timeout: Duration,
    /// Longest time a request head or body may take to arrive in full.
    pub request_deadline: Duration,
    /// Most connections served at once; beyond, 503 and close.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 << 20,
            max_head: 64 << 10,
            io_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("request body did not arrive in time")]
    Timeout,
    #[error("request body: {0}")]
    Bad(String),
}

/// One request. The body is read on demand through [`Request::body`].
pub struct Request<'c> {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub remote: SocketAddr,
    body_kind: BodyKind,
    expects_continue: bool,
    body_done: bool,
    conn: &'c mut Conn,
    limits: &'c Limits,
    /// Bytes of body read so far.
    pub body_bytes: u64,
}

impl Request<'_> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The declared body length, when the client gave one.
    pub fn content_length(&self) -> Option<u64> {
        match self.body_kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Empty => Some(0),
            BodyKind::Chunked => None,
        }
    }

    /// Reads the whole body, refusing (before reading) one larger than `limit`
    /// (and than the server's limit).
    pub fn body(&mut self, limit: u64) -> Result<Vec<u8>, BodyError> {
        let limit = limit.min(self.limits.max_body);
        if let BodyKind::Length(n) = self.body_kind
            && n > limit
        {
            return Err(BodyError::TooLarge { limit });
        }
        if self.expects_continue {
            self.expects_continue = false;
            let stream = self.conn.get_mut();
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .and_then(|_| stream.flush())
                .map_err(|e| BodyError::Bad(e.to_string()))?;
        }
        let deadline = Instant::now() + self.limits.request_deadline;
        let mut out = Vec::new();
        match self.body_kind {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                out.reserve(n.min(1 << 20) as usize);
                read_exactly(self.conn, &mut out, n, deadline)?;
            }
            BodyKind::Chunked => loop {
                let line = read_line(self.conn, 1024, deadline)?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_text, 16)
                    .map_err(|_| BodyError::Bad(format!("bad chunk size {size_text:?}")))?;
                if out.len() as u64 + size > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !read_line(self.conn, 8192, deadline)?.is_empty() {}
                    break;
                }
                read_exactly(self.conn, &mut out, size, deadline)?;
                if !read_line(self.conn, 2, deadline)?.is_empty() {
                    return Err(BodyError::Bad("chunk not followed by CRLF".into()));
                }
            },
        }
        self.body_done = true;
        self.body_bytes = out.len() as u64;
        Ok(out)
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn read_exactly(conn: &mut Conn, out: &mut Vec<u8>, n: u64, deadline: Instant) -> Result<(), BodyError> {
    let mut left = n;
    let mut buf = [0u8; 64 * 1024];
    while left > 0 {
        if Instant::now() > deadline {
            return Err(BodyError::Timeout);
        }
        let want = (left as usize).min(buf.len());
        match conn.read(&mut buf[..want]) {
            Ok(0) => return Err(BodyError::Bad(format!("connection closed {left} bytes before the end of the body"))),
            Ok(k) => {
                out.extend_from_slice(&buf[..k]);
                left -= k as u64;
            }
            Err(e) if timed_out(&e) => return Err(BodyError::Timeout),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BodyError::Bad(e.to_string())),
        }
    }
    Ok(())
}

/// One CRLF-terminated line (without the CRLF), at most `max` bytes.
fn read_line(conn: &mut Conn, max: usize, deadline: Instant) -> Result<String, BodyError> {
    let mut line = Vec::new();
    loop {
        if Instant::now() > deadline {
            return Err(BodyError::Timeout);
        }
        let buf = match conn.fill_buf() {
            Ok(b) => b,
            Err(e) if timed_out(&e) => return Err(BodyError::Timeout),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::Bad(e.to_string())),
        };
        if buf.is_empty() {
            return Err(BodyError::Bad("connection closed in the middle of a line".into()));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        conn.consume(take);
        if line.len() > max + 2 {
            return Err(BodyError::TooLarge { limit: max as u64 });
        }
        if done {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return String::from_utf8(line).map_err(|_| BodyError::Bad("line is not UTF-8".into()));
        }
    }
}

/// A response: status, content type, body, extra headers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, content_type: content_type.to_string(), body, headers: Vec::new(), close: false }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = v.to_string().into_bytes();
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn write_response(stream: &mut dyn Write, r: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if r.close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    if !head_only {
        buf.extend_from_slice(&r.body);
    }
    stream.write_all(&buf)?;
    stream.flush()
}

/// Decodes `%XX` and `+` of a query string or urlencoded form.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `a=1&b=2` into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

/// What a handler does with a request.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &mut Request<'_>) -> Response;
    /// Called once per request after the response was written (the request log).
    fn log(&self, req: &Request<'_>, resp: &Response, started: Instant);
    /// Called for requests that could not even be parsed.
    fn log_error(&self, remote: SocketAddr, status: u16, message: &str);
}

/// Serves connections from `listener` until the process ends.
pub fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    wrap: Option<Arc<Wrap>>,
) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let limits = Arc::new(limits);
    for conn in listener.incoming() {
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, and keep serving.
                handler.log_error(SocketAddr::from(([0, 0, 0, 0], 0)), 0, &format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let remote = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        if active.load(Ordering::SeqCst) >= limits.max_connections {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let mut r =
                Response::json(503, &serde_json::json!({"error": {"message": "too many connections", "code": 503}}));
            r.close = true;
            let _ = write_response(&mut stream, &r, false);
            handler.log_error(remote, 503, "too many connections");
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (h, l, a, w) = (handler.clone(), limits.clone(), active.clone(), wrap.clone());
        let spawned = std::thread::Builder::new().name("http".into()).stack_size(1 << 20).spawn(move || {
            connection(stream, remote, &*h, &l, w.as_deref());
            a.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
            handler.log_error(remote, 503, "could not start a connection thread");
        }
    }
    Ok(())
}

enum Head {
    Eof,
    Request(String, Vec<(String, String)>),
}

fn read_head(conn: &mut Conn, limits: &Limits) -> Result<Head, (u16, String)> {
    let deadline = Instant::now() + limits.request_deadline;
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        // An idle keep-alive connection that closes or times out before a request is normal.
        if lines.is_empty() {
            match conn.fill_buf() {
                Ok([]) => return Ok(Head::Eof),
                Ok(_) => {}
                Err(e) if timed_out(&e) => return Ok(Head::Eof),
                Err(_) => return Ok(Head::Eof),
            }
        }
        let line = match read_line(conn, limits.max_head, deadline) {
            Ok(l) => l,
            Err(BodyError::Timeout) => return Err((408, "request head did not arrive in time".into())),
            Err(BodyError::TooLarge { .. }) => {
                return Err((431, format!("request head larger than {} bytes", limits.max_head)));
            }
            Err(e) => return Err((400, format!("reading request head: {e}"))),
        };
        total += line.len() + 2;
        if total > limits.max_head {
            return Err((431, format!("request head larger than {} bytes", limits.max_head)));
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // Stray CRLF between requests.
            }
            break;
        }
        lines.push(line);
    }
    let request_line = lines.remove(0);
    let mut headers = Vec::with_capacity(lines.len());
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            return Err((400, format!("malformed header line {:?}", l.chars().take(40).collect::<String>())));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Head::Request(request_line, headers))
}

fn connection<H: Handler>(tcp: TcpStream, remote: SocketAddr, handler: &H, limits: &Limits, wrap: Option<&Wrap>) {
    let _ = tcp.set_read_timeout(Some(limits.io_timeout));
    let _ = tcp.set_write_timeout(Some(limits.io_timeout));
    let _ = tcp.set_nodelay(true);
    let Ok(raw) = tcp.try_clone() else { return };
    let stream: Box<dyn Stream> = match wrap {
        None => Box::new(tcp),
        Some(w) => match w(tcp) {
            Ok(s) => s,
            Err(e) => {
                handler.log_error(remote, 0, &format!("TLS: {e}"));
                return;
            }
        },
    };
    let mut conn: Conn = BufReader::with_capacity(64 * 1024, stream);
    let fail = |conn: &mut Conn, status: u16, msg: &str| {
        let mut r = Response::json(status, &serde_json::json!({"error": {"message": msg, "code": status}}));
        r.close = true;
        let _ = write_response(conn.get_mut(), &r, false);
        conn.get_mut().finish();
        let _ = raw.shutdown(std::net::Shutdown::Write);
        handler.log_error(remote, status, msg);
    };
    loop {
        let (request_line, headers) = match read_head(&mut conn, limits) {
            Ok(Head::Eof) => return,
            Ok(Head::Request(l, h)) => (l, h),
            Err((status, msg)) => {
                fail(&mut conn, status, &msg);
                return;
            }
        };
        let started = Instant::now();
        let parts: Vec<&str> = request_line.split(' ').collect();
        let [method, target, version] = parts.as_slice() else {
            fail(&mut conn, 400, "malformed request line");
            return;
        };
        let http10 = match *version {
            "HTTP/1.1" => false,
            "HTTP/1.0" => true,
            _ => {
                fail(&mut conn, 505, "only HTTP/1.0 and HTTP/1.1 are served");
                return;
            }
        };
        let get = |name: &str| {
            headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase())
        };
        let body_kind = match (get("transfer-encoding"), get("content-length")) {
            (Some(te), _) if te == "chunked" => BodyKind::Chunked,
            (Some(_), _) => {
                fail(&mut conn, 501, "only the chunked transfer encoding is supported");
                return;
            }
            (None, Some(n)) => match n.parse::<u64>() {
                Ok(0) => BodyKind::Empty,
                Ok(n) => BodyKind::Length(n),
                Err(_) => {
                    fail(&mut conn, 400, "bad Content-Length");
                    return;
                }
            },
            (None, None) => BodyKind::Empty,
        };
        let expects_continue = get("expect").is_some_and(|e| e == "100-continue");
        let conn_header = get("connection").unwrap_or_default();
        let keep_alive = if http10 { conn_header.contains("keep-alive") } else { !conn_header.contains("close") };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), parse_query(q)),
            None => (target.to_string(), Vec::new()),
        };
        let mut req = Request {
            method: method.to_string(),
            path,
            query,
            headers,
            remote,
            body_kind,
            expects_continue,
            body_done: body_kind == BodyKind::Empty,
            conn: &mut conn,
            limits,
            body_bytes: 0,
        };
        let mut resp = handler.handle(&mut req);
        // A body left unread (refused, or the handler did not need it) cannot be
        // skipped safely: close instead of reading it.
        if !req.body_done || !keep_alive {
            resp.close = true;
        }
        let head_only = req.method == "HEAD";
        let body_done = req.body_done;
        let ok = write_response(req.conn.get_mut(), &resp, head_only).is_ok();
        handler.log(&req, &resp, started);
        if !ok || resp.close {
            conn.get_mut().finish();
            let _ = raw.shutdown(std::net::Shutdown::Write);
            if !body_done {
                linger(&mut conn, &raw);
            }
            return;
        }
    }
}

/// Folklore: closing a socket with unread input makes the kernel send a reset,
/// which can destroy the response (a 413) before the client reads it. Like other
/// servers' "lingering close", read and discard a bounded amount for a short
/// while after shutting down our side, so the client sees the answer.
fn linger(conn: &mut Conn, raw: &TcpStream) {
    let _ = raw.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0usize;
    while Instant::now() < deadline && total < (4 << 20) {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            parse_query("a=1&b=x%20y+z&c&d=%zz&e=%4"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y z".to_string()),
                ("c".to_string(), String::new()),
                ("d".to_string(), "%zz".to_string()),
                ("e".to_string(), "%4".to_string()),
            ]
        );
        assert_eq!(percent_decode("..%2F..%2Fetc"), "../../etc");
    }
}
