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

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection's byte stream: plain TCP, or TLS over it.
pub trait Stream: Read + Write + Send {
    /// Ends the stream politely before the socket is shut down (TLS: close_notify).
    fn finish(&mut self) {}
}

impl Stream for TcpStream {}

/// An in-memory stream: reads `input`, discards what is written (fuzzing and tests).
struct Replay {
    input: std::io::Cursor<Vec<u8>>,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Stream for Replay {}

/// A request as [`parse_one`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one request from `bytes` through the same head parser, framing rules and
/// body decoder (chunked included) as a connection; `Err` is the status and reason
/// a client would get. For fuzzing and tests.
pub fn parse_one(bytes: Vec<u8>, limits: &Limits) -> Result<Option<Parsed>, (u16, String)> {
    let stream: Box<dyn Stream> = Box::new(Replay { input: std::io::Cursor::new(bytes) });
    let mut conn: Conn = BufReader::with_capacity(64 * 1024, stream);
    let (request_line, headers) = match read_head(&mut conn, limits)? {
        Head::Eof => return Ok(None),
        Head::Request(l, h) => (l, h),
    };
    let (method, path, query, body_kind, _, _) = request_meta(&request_line, &headers)?;
    let mut req = Request {
        method,
        path,
        query,
        headers,
        remote: SocketAddr::from(([127, 0, 0, 1], 0)),
        body_kind,
        expects_continue: false,
        body_done: body_kind == BodyKind::Empty,
        conn: &mut conn,
        limits,
        body_bytes: 0,
        log_project: None,
    };
    let body = req.body(limits.max_body).map_err(|e| match e {
        BodyError::TooLarge { .. } => (413, e.to_string()),
        BodyError::Timeout => (408, e.to_string()),
        BodyError::Bad(_) => (400, e.to_string()),
    })?;
    Ok(Some(Parsed { method: req.method, path: req.path, query: req.query, headers: req.headers, body }))
}

/// What the request line and headers say: method, path, query, framing, HTTP/1.0,
/// keep-alive; or the status and reason to refuse with.
#[allow(clippy::type_complexity)]
fn request_meta(
    request_line: &str,
    headers: &[(String, String)],
) -> Result<(String, String, Vec<(String, String)>, BodyKind, bool, bool), (u16, String)> {
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err((400, "malformed request line".into()));
    };
    if !is_token(method) || target.is_empty() {
        return Err((400, "malformed request line".into()));
    }
    let http10 = match *version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err((505, "only HTTP/1.0 and HTTP/1.1 are served".into())),
    };
    let n_host = headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("host")).count();
    if (!http10 && n_host == 0) || n_host > 1 {
        return Err((400, "an HTTP/1.1 request needs exactly one Host header".into()));
    }
    let body_kind = framing(headers).map_err(|(s, m)| (s, m.to_string()))?;
    let conn_header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let keep_alive = if http10 { conn_header.contains("keep-alive") } else { !conn_header.contains("close") };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target.to_string(), Vec::new()),
    };
    Ok((method.to_string(), path, query, body_kind, http10, keep_alive))
}

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
    /// Most connections one client address may hold at once (never more than a
    /// quarter of `max_connections`, so one address cannot starve the rest).
    pub max_per_address: usize,
    /// Slowest transfer accepted for a request head or body, bytes per second,
    /// enforced once `rate_grace` has passed (slowloris).
    pub min_rate: u64,
    /// How long a request may take before `min_rate` applies.
    pub rate_grace: Duration,
    /// Most trailer lines after a chunked body.
    pub max_trailers: usize,
}

impl Limits {
    /// The per-address cap in force: the configured one, at most a quarter of the total.
    pub fn per_address(&self) -> usize {
        self.max_per_address.min((self.max_connections / 4).max(1)).max(1)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 << 20,
            max_head: 64 << 10,
            io_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(60),
            max_connections: 512,
            max_per_address: 64,
            min_rate: 1024,
            rate_grace: Duration::from_secs(5),
            max_trailers: 16,
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
    /// The project the request acts on, once authorized (for the request log).
    pub log_project: Option<String>,
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
        let mut pace = Pace::new(self.limits);
        let mut out = Vec::new();
        match self.body_kind {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                out.reserve(n.min(1 << 20) as usize);
                read_exactly(self.conn, &mut out, n, &mut pace)?;
            }
            BodyKind::Chunked => loop {
                let line = read_line(self.conn, 1024, &mut pace)?;
                let size = chunk_size(&line)?;
                // Checked: a size near u64::MAX must not wrap past the limit.
                if (out.len() as u64).checked_add(size).is_none_or(|total| total > limit) {
                    return Err(BodyError::TooLarge { limit });
                }
                if size == 0 {
                    // Trailers, up to the empty line, bounded in number.
                    let mut n_trailers = 0;
                    while !read_line(self.conn, 8192, &mut pace)?.is_empty() {
                        n_trailers += 1;
                        if n_trailers > self.limits.max_trailers {
                            return Err(BodyError::Bad(format!(
                                "more than {} trailer lines",
                                self.limits.max_trailers
                            )));
                        }
                    }
                    break;
                }
                read_exactly(self.conn, &mut out, size, &mut pace)?;
                if !read_line(self.conn, 2, &mut pace)?.is_empty() {
                    return Err(BodyError::Bad("chunk not followed by CRLF".into()));
                }
            },
        }
        self.body_done = true;
        self.body_bytes = out.len() as u64;
        Ok(out)
    }
}

/// The clock of one request head or body: a hard deadline, and after a grace
/// period a minimum average rate (a client trickling one byte every few seconds
/// holds a connection for ever otherwise).
#[derive(Debug, Clone, Copy)]
struct Pace {
    started: Instant,
    deadline: Instant,
    grace: Duration,
    min_rate: u64,
    bytes: u64,
}

impl Pace {
    fn new(limits: &Limits) -> Pace {
        let started = Instant::now();
        Pace {
            started,
            deadline: started + limits.request_deadline,
            grace: limits.rate_grace,
            min_rate: limits.min_rate,
            bytes: 0,
        }
    }

    fn add(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
    }

    /// Whether the transfer is too late or too slow.
    fn expired(&self) -> bool {
        let now = Instant::now();
        if now > self.deadline {
            return true;
        }
        let elapsed = now.duration_since(self.started);
        elapsed > self.grace && (self.bytes as f64) < self.min_rate as f64 * (elapsed - self.grace).as_secs_f64()
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// The size of a chunk line: 1 to 16 hex digits, then optional `;extensions`
/// (RFC 9112 §7.1: no sign, no `0x`, no spaces inside the number).
fn chunk_size(line: &str) -> Result<u64, BodyError> {
    let digits = line.split(';').next().unwrap_or("").trim_end_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = digits.chars().take(20).collect();
        return Err(BodyError::Bad(format!("bad chunk size {shown:?}")));
    }
    u64::from_str_radix(digits, 16).map_err(|_| BodyError::Bad("bad chunk size".into()))
}

fn read_exactly(conn: &mut Conn, out: &mut Vec<u8>, n: u64, pace: &mut Pace) -> Result<(), BodyError> {
    let mut left = n;
    let mut buf = [0u8; 64 * 1024];
    while left > 0 {
        if pace.expired() {
            return Err(BodyError::Timeout);
        }
        let want = (left as usize).min(buf.len());
        match conn.read(&mut buf[..want]) {
            Ok(0) => return Err(BodyError::Bad(format!("connection closed {left} bytes before the end of the body"))),
            Ok(k) => {
                out.extend_from_slice(&buf[..k]);
                left -= k as u64;
                pace.add(k);
            }
            Err(e) if timed_out(&e) => return Err(BodyError::Timeout),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BodyError::Bad(e.to_string())),
        }
    }
    Ok(())
}

/// One CRLF-terminated line (without the CRLF), at most `max` bytes. A bare LF,
/// a CR or a NUL inside the line are refused (RFC 9112 §2.2: request smuggling
/// lives in the differences between lenient parsers).
fn read_line(conn: &mut Conn, max: usize, pace: &mut Pace) -> Result<String, BodyError> {
    let mut line = Vec::new();
    loop {
        if pace.expired() {
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
        pace.add(take);
        if line.len() > max + 2 {
            return Err(BodyError::TooLarge { limit: max as u64 });
        }
        if done {
            if !line.ends_with(b"\r\n") {
                return Err(BodyError::Bad("line ends in a bare LF".into()));
            }
            line.truncate(line.len() - 2);
            if line.iter().any(|&b| b == b'\r' || b == 0) {
                return Err(BodyError::Bad("CR or NUL inside a line".into()));
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
    /// What the request log says about it (an error's cause, the object stored).
    pub note: Option<String>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, content_type: content_type.to_string(), body, headers: Vec::new(), close: false, note: None }
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
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
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
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
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

/// The connections being served, in total and per client address.
#[derive(Default)]
struct Slots {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One connection's hold on [`Slots`], released on every path out of the
/// connection thread (a panic included), so a slot is never leaked.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    ip: IpAddr,
}

impl Slot {
    /// Takes a slot, or says why not.
    fn take(slots: &Arc<Mutex<Slots>>, ip: IpAddr, limits: &Limits) -> Result<Slot, &'static str> {
        let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
        if s.total >= limits.max_connections {
            return Err("too many connections");
        }
        let mine = s.per_address.entry(ip).or_insert(0);
        if *mine >= limits.per_address() {
            return Err("too many connections from this address");
        }
        *mine += 1;
        s.total += 1;
        Ok(Slot { slots: slots.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_address.remove(&self.ip);
            }
        }
    }
}

/// Serves connections from `listener` until the process ends.
pub fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    wrap: Option<Arc<Wrap>>,
) -> std::io::Result<()> {
    let slots = Arc::new(Mutex::new(Slots::default()));
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
        let slot = match Slot::take(&slots, remote.ip(), &limits) {
            Ok(slot) => slot,
            Err(why) => {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let mut r = Response::json(503, &serde_json::json!({"error": {"message": why, "code": 503}}));
                r.headers.push(("Retry-After".into(), "1".into()));
                r.close = true;
                let _ = write_response(&mut stream, &r, false);
                handler.log_error(remote, 503, why);
                continue;
            }
        };
        let (h, l, w) = (handler.clone(), limits.clone(), wrap.clone());
        let spawned = std::thread::Builder::new().name("http".into()).stack_size(2 << 20).spawn(move || {
            let _slot = slot;
            connection(stream, remote, &*h, &l, w.as_deref());
        });
        if spawned.is_err() {
            handler.log_error(remote, 503, "could not start a connection thread");
        }
    }
    Ok(())
}

enum Head {
    Eof,
    Request(String, Vec<(String, String)>),
}

/// A header name is an RFC 9110 token: no spaces (`TE : chunked`), no separators.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn read_head(conn: &mut Conn, limits: &Limits) -> Result<Head, (u16, String)> {
    let mut pace = Pace::new(limits);
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
        let line = match read_line(conn, limits.max_head, &mut pace) {
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
        if l.starts_with([' ', '\t']) {
            return Err((400, "obsolete line folding in the request head".into()));
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err((400, format!("malformed header line {:?}", l.chars().take(40).collect::<String>())));
        };
        if !is_token(k) {
            return Err((400, format!("bad header name {:?}", k.chars().take(40).collect::<String>())));
        }
        headers.push((k.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Head::Request(request_line, headers))
}

/// How the body of a request is framed, from its headers (RFC 9112 §6).
fn framing(headers: &[(String, String)]) -> Result<BodyKind, (u16, &'static str)> {
    let values = |name: &str| -> Vec<String> {
        headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase()).collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    if !te.is_empty() && !cl.is_empty() {
        return Err((400, "both Content-Length and Transfer-Encoding"));
    }
    if cl.len() > 1 {
        return Err((400, "more than one Content-Length"));
    }
    if !te.is_empty() {
        return match te.as_slice() {
            [t] if t == "chunked" => Ok(BodyKind::Chunked),
            _ => Err((501, "only the chunked transfer encoding is supported")),
        };
    }
    let Some(n) = cl.first() else { return Ok(BodyKind::Empty) };
    if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err((400, "bad Content-Length"));
    }
    match n.parse::<u64>() {
        Ok(0) => Ok(BodyKind::Empty),
        Ok(n) => Ok(BodyKind::Length(n)),
        Err(_) => Err((400, "bad Content-Length")),
    }
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
        let (method, path, query, body_kind, _http10, keep_alive) = match request_meta(&request_line, &headers) {
            Ok(m) => m,
            Err((status, msg)) => {
                fail(&mut conn, status, &msg);
                return;
            }
        };
        let expects_continue = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("expect"))
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("100-continue"));
        let mut req = Request {
            method,
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
            log_project: None,
        };
        // A panic in a handler answers 500 and closes this connection; the server goes on.
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&mut req)));
        let mut resp = match handled {
            Ok(r) => r,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                handler.log_error(remote, 500, &format!("handler panicked: {what}"));
                let mut r =
                    Response::json(500, &serde_json::json!({"error": {"message": "internal error", "code": 500}}));
                r.close = true;
                r
            }
        };
        // A body left unread (refused, or the handler did not need it) cannot be
        // skipped safely: close instead of reading it.
        if !req.body_done || !keep_alive {
            resp.close = true;
        }
        let head_only = req.method == "HEAD";
        let body_done = req.body_done;
        let ok = write_response(req.conn.get_mut(), &resp, head_only).is_ok();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.log(&req, &resp, started)));
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
