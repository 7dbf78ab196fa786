//! HTTP/1.1 over plain TCP for the S3 data path, cut to what moving GiBs needs: connections
//! kept alive and reused across ranges, parts and pieces (a pool per endpoint), socket
//! timeouts set once per connection (the request's deadline is checked between reads, with no
//! system call), and response bodies read from the socket straight into the caller's buffer
//! (no intermediate buffer, no copy).
//!
//! A request can be sent and its answer read later ([`Wire::send`], [`Sent::response`]):
//! the read-ahead of [`super::reader`] keeps several ranged GETs outstanding this way, their
//! bytes waiting in the kernel's socket buffers until the reader takes them.
//!
//! Response heads and chunk sizes are parsed by `httparse` (hyper's and ureq's parser); this
//! file's one job is the connection pool and the body framing around it.
//!
//! `https` endpoints do not come here: they go through the engine's ureq agent (TLS copies
//! every byte anyway). Connections are never shared with a forked child: a pool made in
//! another process is emptied (see `crate::http::Http`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::{HeaderMap, HeaderName, HeaderValue};

/// Idle connections kept per endpoint (several streams × ranges or parts in flight).
const MAX_IDLE: usize = 64;
/// A response head (status line and headers) longer than this is refused.
const MAX_HEAD: usize = 64 << 10;
/// Headers in one response head (S3 answers carry about 15).
const MAX_HEADERS: usize = 64;
/// What the head buffer reads at once: the head, and the first bytes of the body with it.
const HEAD_READ: usize = 8 << 10;
/// Unread body bytes a dropped response drains to keep its connection (more: closed).
const MAX_DRAIN: u64 = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool of one client: idle connections by `host:port`, and the process they belong to.
pub struct Wire {
    pool: Arc<Pool>,
    timeout: Duration,
}

struct Pool {
    idle: Mutex<(u32, HashMap<String, Vec<Conn>>)>,
}

impl Pool {
    fn take(&self, key: &str) -> Option<Conn> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let pid = crate::util::pid();
        if g.0 != pid {
            // Made in the parent: the child must not write on the parent's sockets. Forget
            // rather than close them (closing a duplicate only drops this process's copy, but
            // forgetting makes the point: they are not ours).
            for (_, v) in g.1.drain() {
                v.into_iter().for_each(std::mem::forget);
            }
            g.0 = pid;
        }
        g.1.get_mut(key).and_then(Vec::pop)
    }

    fn give(&self, mut c: Conn) {
        c.reused = true;
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != crate::util::pid() {
            std::mem::forget(c);
            return;
        }
        let v = g.1.entry(c.key.clone()).or_default();
        if v.len() < MAX_IDLE {
            v.push(c);
        }
    }
}

/// One kept-alive connection and the bytes read past the last response head.
struct Conn {
    stream: TcpStream,
    key: String,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The socket timeout in force (set only when a request wants another one).
    timeout: Duration,
    /// Taken from the pool: a failure before any answer may be the server having closed it.
    reused: bool,
}

impl Conn {
    fn connect(key: &str, timeout: Duration) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{key}: no address"));
        for addr in key.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    // Once per connection: a read or write that blocks this long fails; the
                    // whole request's deadline is checked between reads.
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    return Ok(Conn {
                        stream,
                        key: key.to_string(),
                        buf: vec![0; HEAD_READ],
                        start: 0,
                        end: 0,
                        timeout,
                        reused: false,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        if t != self.timeout {
            self.stream.set_read_timeout(Some(t))?;
            self.stream.set_write_timeout(Some(t))?;
            self.timeout = t;
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Read more bytes into the head buffer (after what is there).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too long"));
            }
        }
        let n = read_retry(&mut self.stream, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// One `\r\n`-terminated line, without its terminator.
    fn line(&mut self, deadline: Instant) -> io::Result<String> {
        loop {
            let hay = &self.buf[self.start..self.end];
            if let Some(i) = hay.windows(2).position(|w| w == b"\r\n") {
                let s = String::from_utf8_lossy(&hay[..i]).into_owned();
                self.start += i + 2;
                return Ok(s);
            }
            check(deadline)?;
            if self.fill()? == 0 {
                return Err(eof("in a response head"));
            }
        }
    }
}

fn read_retry(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // What an expired SO_RCVTIMEO looks like.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer within the request timeout"))
            }
            r => return r,
        }
    }
}

fn eof(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("connection closed {what}"))
}

fn check(deadline: Instant) -> io::Result<()> {
    if Instant::now() > deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out"));
    }
    Ok(())
}

/// A request on the wire: method, where to connect (`host:port`), the `Host` header (as
/// signed), target (path and query, already signed), headers, body.
pub struct Request<'a> {
    pub method: &'static str,
    pub addr: &'a str,
    pub host: &'a str,
    pub target: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// `None`: no body and no `Content-Length` (GET, HEAD, DELETE).
    pub body: Option<&'a [u8]>,
    pub timeout: Duration,
}

/// A request sent, its answer not read yet.
pub struct Sent {
    conn: Conn,
    addr: String,
    head: bool,
    deadline: Instant,
    /// The head of a GET or HEAD, resent once on a new connection when a reused one turns
    /// out closed.
    resend: Option<Vec<u8>>,
}

impl Wire {
    pub fn new(timeout: Duration) -> Wire {
        Wire { pool: Arc::new(Pool { idle: Mutex::new((crate::util::pid(), HashMap::new())) }), timeout }
    }

    /// Send `req` on an idle connection to its host (or a new one); the answer is read by
    /// [`Sent::response`].
    pub fn send(&self, req: &Request<'_>) -> io::Result<Sent> {
        let timeout = req.timeout.min(self.timeout);
        let deadline = Instant::now() + timeout;
        let head = head(req);
        let body = req.body.unwrap_or(&[]);
        // A pooled connection the server has closed fails here or on the answer's first byte:
        // then once more on a new one.
        while let Some(mut c) = self.pool.take(req.addr) {
            if c.set_timeout(timeout).is_ok() && write_all(&mut c.stream, head.as_bytes(), body).is_ok() {
                // Only a GET or HEAD is sent again here: the server may have carried out a
                // write before the connection failed, and a conditional PUT sent twice would
                // be refused by its own first landing. Writes go back to the caller, whose
                // retries know a lost answer (`api::put_object`'s `on_retry_refusal`).
                let resend = matches!(req.method, "GET" | "HEAD").then(|| head.clone().into_bytes());
                return Ok(Sent {
                    conn: c,
                    addr: req.addr.to_string(),
                    head: req.method == "HEAD",
                    deadline,
                    resend,
                });
            }
        }
        let mut c = Conn::connect(req.addr, timeout)?;
        write_all(&mut c.stream, head.as_bytes(), body)?;
        Ok(Sent { conn: c, addr: req.addr.to_string(), head: req.method == "HEAD", deadline, resend: None })
    }

    /// Send `req` and read the answer's head.
    #[cfg(test)]
    pub fn call(&self, req: &Request<'_>) -> io::Result<Response> {
        self.send(req)?.response(self)
    }
}

fn head(req: &Request<'_>) -> String {
    let mut h = format!("{} {} HTTP/1.1\r\nhost: {}\r\n", req.method, req.target, req.host);
    for (k, v) in req.headers {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    if let Some(b) = req.body {
        h.push_str(&format!("content-length: {}\r\n", b.len()));
    }
    h.push_str(concat!("user-agent: vast-ost/", env!("CARGO_PKG_VERSION"), "\r\n\r\n"));
    h
}

/// Head, then body. Two `send`s rather than one `writev`: `send` takes MSG_NOSIGNAL (std's
/// TcpStream uses it), so a server that closed the connection is an error here, never a
/// SIGPIPE that would kill the host process; a second system call per part costs nothing.
fn write_all(s: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    s.write_all(head).and_then(|()| s.write_all(body)).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => {
            io::Error::new(io::ErrorKind::TimedOut, "server took no data within the request timeout")
        }
        _ => e,
    })
}

impl Sent {
    /// Read the answer's status line and headers (interim `100 Continue` skipped).
    pub fn response(self, wire: &Wire) -> io::Result<Response> {
        let Sent { mut conn, addr, head, deadline, resend } = self;
        match read_head(&mut conn, deadline) {
            Ok((status, headers, close)) => {
                Response::new(conn, wire.pool.clone(), head, deadline, status, headers, close)
            }
            Err(e) if conn.reused && e.kind() != io::ErrorKind::TimedOut && resend.is_some() => {
                // The server closed the idle connection before it saw this request.
                drop(conn);
                let mut c = Conn::connect(&addr, wire.timeout)?;
                write_all(&mut c.stream, resend.as_deref().unwrap_or_default(), &[])?;
                let (status, headers, close) = read_head(&mut c, deadline)?;
                Response::new(c, wire.pool.clone(), head, deadline, status, headers, close)
            }
            Err(e) => Err(e),
        }
    }
}

fn read_head(c: &mut Conn, deadline: Instant) -> io::Result<(u16, HeaderMap, bool)> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let used = match parsed.parse(&c.buf[c.start..c.end]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                check(deadline)?;
                if c.fill()? == 0 {
                    return Err(eof("in a response head"));
                }
                continue;
            }
            Err(e) => return Err(bad(format!("bad response head: {e}"))),
        };
        let status = parsed.code.unwrap_or_default();
        let http10 = parsed.version == Some(0);
        let mut headers = HeaderMap::new();
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| bad(format!("bad header name '{}'", h.name)))?;
            let value =
                HeaderValue::from_bytes(h.value).map_err(|_| bad(format!("bad value of '{}'", h.name)))?;
            headers.append(name, value);
        }
        c.start += used;
        if (100..200).contains(&status) {
            continue;
        }
        let close = http10
            || headers
                .get_all("connection")
                .iter()
                .any(|v| v.to_str().is_ok_and(|s| s.eq_ignore_ascii_case("close")));
        return Ok((status, headers, close));
    }
}

enum Framing {
    Length(u64),
    /// Bytes left in the current chunk; `None` before a chunk-size line.
    Chunked(Option<u64>),
    /// Until the server closes.
    Eof,
    Done,
}

/// An answer whose body is read from the socket as it is asked for. The connection goes back
/// to the pool the moment the last body byte is read.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    conn: Option<Conn>,
    pool: Arc<Pool>,
    framing: Framing,
    keep: bool,
    deadline: Instant,
}

impl Response {
    fn new(
        conn: Conn,
        pool: Arc<Pool>,
        head: bool,
        deadline: Instant,
        status: u16,
        headers: HeaderMap,
        close: bool,
    ) -> io::Result<Response> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        let framing = if head || status == 204 || status == 304 {
            Framing::Done
        } else if header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().ends_with("chunked")) {
            Framing::Chunked(None)
        } else if let Some(n) = header("content-length") {
            let n = n.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad content-length '{n}'"))
            })?;
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        let keep = !close && !matches!(framing, Framing::Eof);
        let mut r = Response { status, headers, conn: Some(conn), pool, framing, keep, deadline };
        if matches!(r.framing, Framing::Length(0) | Framing::Done) {
            r.framing = Framing::Done;
            r.release();
        }
        Ok(r)
    }

    /// The body is all read: the connection goes back to the pool (or is closed).
    fn release(&mut self) {
        self.framing = Framing::Done;
        if let Some(c) = self.conn.take() {
            if self.keep && c.buffered() == 0 {
                self.pool.give(c);
            }
        }
    }

    /// Body bytes left, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// Read body bytes into `out`, straight from the socket when nothing is buffered.
    fn read_raw(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let c = self.conn.as_mut().ok_or_else(|| eof("(response already read)"))?;
        check(self.deadline)?;
        let n = if c.buffered() > 0 {
            let n = c.buffered().min(out.len());
            out[..n].copy_from_slice(&c.buf[c.start..c.start + n]);
            c.start += n;
            n
        } else {
            read_retry(&mut c.stream, out)?
        };
        Ok(n)
    }

    fn chunk_size(&mut self) -> io::Result<u64> {
        let deadline = self.deadline;
        let c = self.conn.as_mut().ok_or_else(|| eof("(response already read)"))?;
        loop {
            match httparse::parse_chunk_size(&c.buf[c.start..c.end]) {
                Ok(httparse::Status::Complete((used, size))) => {
                    c.start += used;
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) => {
                    check(deadline)?;
                    if c.fill()? == 0 {
                        return Err(eof("in a chunk size"));
                    }
                }
                Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk size line")),
            }
        }
    }
}

impl Read for Response {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::Length(left) => {
                    let want = (out.len() as u64).min(left) as usize;
                    let n = self.read_raw(&mut out[..want])?;
                    if n == 0 {
                        self.conn = None;
                        return Err(eof(&format!("with {left} body bytes to come")));
                    }
                    let left = left - n as u64;
                    self.framing = Framing::Length(left);
                    if left == 0 {
                        self.release();
                    }
                    return Ok(n);
                }
                Framing::Eof => {
                    let n = self.read_raw(out)?;
                    if n == 0 {
                        self.conn = None;
                        self.framing = Framing::Done;
                    }
                    return Ok(n);
                }
                Framing::Chunked(None) => {
                    let size = self.chunk_size()?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        let deadline = self.deadline;
                        while !self
                            .conn
                            .as_mut()
                            .ok_or_else(|| eof("in trailers"))?
                            .line(deadline)?
                            .is_empty()
                        {}
                        self.release();
                        return Ok(0);
                    }
                    self.framing = Framing::Chunked(Some(size));
                }
                Framing::Chunked(Some(left)) => {
                    let want = (out.len() as u64).min(left) as usize;
                    let n = self.read_raw(&mut out[..want])?;
                    if n == 0 {
                        self.conn = None;
                        return Err(eof("inside a chunk"));
                    }
                    if left == n as u64 {
                        let deadline = self.deadline;
                        let c = self.conn.as_mut().ok_or_else(|| eof("after a chunk"))?;
                        if !c.line(deadline)?.is_empty() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "chunk not followed by CRLF",
                            ));
                        }
                        self.framing = Framing::Chunked(None);
                    } else {
                        self.framing = Framing::Chunked(Some(left - n as u64));
                    }
                    return Ok(n);
                }
            }
        }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // A short rest (an error document, an ETag answer's body) is read to keep the
        // connection; a long one (a read-ahead range no longer wanted) closes it.
        if self.conn.is_some() && self.keep && self.remaining().is_some_and(|n| n <= MAX_DRAIN) {
            let mut sink = [0u8; 4096];
            while matches!(self.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each request on a connection with the next canned answer,
    /// recording the requests, and counts connections.
    /// Connections accepted, and the request heads seen.
    type Seen = Arc<Mutex<(usize, Vec<String>)>>;

    fn serve(answers: Vec<&'static [u8]>) -> (String, Seen) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new((0usize, Vec::new())));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for conn in l.incoming() {
                let mut conn = conn.unwrap();
                s2.lock().unwrap().0 += 1;
                let mut buf = vec![0u8; 1 << 16];
                let mut have = Vec::new();
                loop {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(i) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&have[..i]).into_owned();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.parse().unwrap());
                        if have.len() < i + 4 + len {
                            break;
                        }
                        have.drain(..i + 4 + len);
                        s2.lock().unwrap().1.push(head);
                        match answers.next() {
                            Some(a) => conn.write_all(a).unwrap(),
                            None => return,
                        }
                    }
                }
            }
        });
        (addr, seen)
    }

    fn get<'a>(host: &'a str, target: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            addr: host,
            host,
            target,
            headers: &[],
            body: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn bodies_in_every_framing_on_one_connection() {
        let (addr, seen) = serve(vec![
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: \"e\"\r\n\r\n",
        ]);
        let w = Wire::new(Duration::from_secs(5));
        let mut r = w.call(&get(&addr, "/b/k?x=1")).unwrap();
        assert_eq!(r.status, 206);
        let mut body = vec![0u8; 5];
        r.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"hello");
        assert_eq!(r.remaining(), Some(0));
        let mut r = w.call(&get(&addr, "/c")).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcde");
        drop(r);
        let put = Request { method: "PUT", body: Some(b"0123456789"), ..get(&addr, "/p") };
        let r = w.call(&put).unwrap();
        assert_eq!(r.headers.get("etag").unwrap(), "\"e\"");
        drop(r);
        let g = seen.lock().unwrap();
        assert_eq!(g.0, 1, "one connection for the three requests");
        assert!(g.1[0].starts_with("GET /b/k?x=1 HTTP/1.1\r\nhost: "), "{}", g.1[0]);
        assert!(g.1[2].contains("content-length: 10"), "{}", g.1[2]);
        assert!(!g.1[0].contains("content-length"), "no body, no length: {}", g.1[0]);
    }

    #[test]
    fn a_dropped_long_body_closes_its_connection_and_a_closed_one_is_replaced() {
        let (addr, seen) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nxxxx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]);
        let w = Wire::new(Duration::from_secs(5));
        let r = w.call(&get(&addr, "/big")).unwrap();
        drop(r);
        let mut r = w.call(&get(&addr, "/small")).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "ok");
        assert_eq!(seen.lock().unwrap().0, 2, "the half-read connection was not reused");
    }

    #[test]
    fn a_pooled_connection_the_server_closed_is_replaced_transparently() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for (i, conn) in l.incoming().enumerate() {
                let mut conn = conn.unwrap();
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{i}").as_bytes())
                    .unwrap();
                // Close after one answer, as a server whose keep-alive timer ran out.
            }
        });
        let w = Wire::new(Duration::from_secs(5));
        for want in ["0", "1", "2"] {
            let mut r = w.call(&get(&addr, "/")).unwrap();
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s, want);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_write_whose_answer_is_lost_on_a_pooled_connection_is_not_sent_again() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let conns = Arc::new(Mutex::new(0usize));
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let mut conn = conn.unwrap();
                *c2.lock().unwrap() += 1;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
                // The next request is taken in, and the connection dies before its answer (a
                // server that carried out the write and then failed).
                let _ = conn.read(&mut buf);
            }
        });
        let w = Wire::new(Duration::from_secs(5));
        w.call(&get(&addr, "/")).unwrap();
        let put = Request { method: "PUT", body: Some(b"manifest"), ..get(&addr, "/b/k") };
        // The caller hears of it (its retries know a lost answer); the wire does not resend.
        assert!(w.call(&put).is_err());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(*conns.lock().unwrap(), 1, "no new connection carried the PUT again");
    }
}
