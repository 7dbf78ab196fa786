//! A fault-injecting TCP proxy for the fault tests and the chaos run: it listens on 127.0.0.1, forwards every
//! connection to one target, and on command resets connections after some bytes, stalls
//! (holds every byte) for a while, throttles all traffic to a bandwidth, refuses connections
//! (the listener is closed, so connects get ECONNREFUSED) or drops every open connection.
//!
//! std threads only, and bounded: at most [`MAX_CONNS`] connections at once (more are closed
//! at accept), two threads and two 16 KiB buffers per connection, one accept thread that
//! polls. Dropping the proxy closes everything.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const MAX_CONNS: usize = 64;
const CHUNK: usize = 16 << 10;

/// Which way bytes flow: client to server (a request body, an upload) or back (a download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub accepted: u64,
    /// Connections closed at accept because MAX_CONNS were open.
    pub turned_away: u64,
    pub resets: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

struct ResetPlan {
    dir: Dir,
    every: u64,
    left: u64,
    times: u64,
}

/// One proxied connection: both sockets, so a reset or a drop can close them from anywhere.
struct Conn {
    client: TcpStream,
    server: TcpStream,
}

impl Conn {
    /// Abort both sides: SO_LINGER 0 makes the final close send a RST, and the shutdown wakes
    /// the two pump threads, which then drop the last references.
    fn abort(&self) {
        for s in [&self.client, &self.server] {
            set_linger_zero(s);
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: an open socket of `s`, and a pointer to a live `linger` with its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

struct Shared {
    addr: SocketAddr,
    target: SocketAddr,
    stop: AtomicBool,
    refuse: AtomicBool,
    reset: Mutex<Option<ResetPlan>>,
    /// Until when bytes are held, and in which direction (None: both).
    stall_until: Mutex<Option<(Instant, Option<Dir>)>>,
    /// Bytes per second over all connections together; 0: unlimited.
    rate: AtomicU64,
    /// When the shared link is next free (token-bucket-like pacing).
    link_free: Mutex<Instant>,
    conns: Mutex<Vec<Weak<Conn>>>,
    accepted: AtomicU64,
    turned_away: AtomicU64,
    resets: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

pub struct Proxy {
    sh: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on an ephemeral port of 127.0.0.1 forwarding to `target` (`host:port`, or a
    /// URL like `http://127.0.0.2:9000`).
    pub fn start(target: &str) -> Proxy {
        let t = target.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
        let target: SocketAddr = t.parse().unwrap_or_else(|e| panic!("proxy target {t}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let sh = Arc::new(Shared {
            addr,
            target,
            stop: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            reset: Mutex::new(None),
            stall_until: Mutex::new(None),
            rate: AtomicU64::new(0),
            link_free: Mutex::new(Instant::now()),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let s2 = sh.clone();
        let accept = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(s2, listener))
            .unwrap();
        Proxy { sh, accept: Some(accept) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sh.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.sh.addr)
    }

    /// Reset (RST) the connection that carries byte number `after` in direction `dir` counted
    /// from now, then again every `after` bytes, `times` times in all.
    pub fn reset_after(&self, dir: Dir, after: u64, times: u64) {
        *lock(&self.sh.reset) = Some(ResetPlan { dir, every: after.max(1), left: after.max(1), times });
    }

    /// Hold every byte (both directions, every connection, new ones too) for `d`: a stalled
    /// network, where requests reach the server late.
    pub fn stall_for(&self, d: Duration) {
        *lock(&self.sh.stall_until) = Some((Instant::now() + d, None));
    }

    /// Hold only the server's answers for `d`: a server that does the work but answers late,
    /// so a client that times out has lost the answer of a request that took effect.
    pub fn stall_answers_for(&self, d: Duration) {
        *lock(&self.sh.stall_until) = Some((Instant::now() + d, Some(Dir::Down)));
    }

    /// Hold every byte until [`Proxy::unstall`].
    pub fn stall(&self) {
        self.stall_for(Duration::from_secs(3600));
    }

    pub fn unstall(&self) {
        *lock(&self.sh.stall_until) = None;
    }

    /// Limit all traffic together to `bytes_per_sec` (0: unlimited).
    pub fn throttle(&self, bytes_per_sec: u64) {
        *lock(&self.sh.link_free) = Instant::now();
        self.sh.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Close the listening socket (connects are refused) or open it again on the same port.
    pub fn refuse(&self, on: bool) {
        self.sh.refuse.store(on, Ordering::SeqCst);
        // Wait until the accept thread has acted, so the caller knows the state.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            let probe = TcpStream::connect_timeout(&self.sh.addr, Duration::from_millis(200));
            if probe.is_ok() != on {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("proxy {} did not {} in time", self.sh.addr, if on { "start refusing" } else { "reopen" });
    }

    /// Abort every open connection (a server restart: what is in flight is lost).
    pub fn drop_all(&self) {
        for c in live(&self.sh) {
            c.abort();
        }
    }

    /// Back to plain forwarding (connections stay open).
    pub fn clear(&self) {
        *lock(&self.sh.reset) = None;
        self.unstall();
        self.throttle(0);
        if self.sh.refuse.load(Ordering::SeqCst) {
            self.refuse(false);
        }
    }

    pub fn stats(&self) -> Stats {
        let s = &self.sh;
        Stats {
            accepted: s.accepted.load(Ordering::Relaxed),
            turned_away: s.turned_away.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            bytes_up: s.bytes_up.load(Ordering::Relaxed),
            bytes_down: s.bytes_down.load(Ordering::Relaxed),
        }
    }

    pub fn open_connections(&self) -> usize {
        live(&self.sh).len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.sh.stop.store(true, Ordering::SeqCst);
        self.unstall();
        self.drop_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn live(sh: &Shared) -> Vec<Arc<Conn>> {
    let mut v = lock(&sh.conns);
    v.retain(|w| w.strong_count() > 0);
    v.iter().filter_map(Weak::upgrade).collect()
}

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    let mut listener = Some(listener);
    while !sh.stop.load(Ordering::SeqCst) {
        let refuse = sh.refuse.load(Ordering::SeqCst);
        if refuse && listener.is_some() {
            listener = None; // closed: the kernel refuses connects (and resets the backlog)
        } else if !refuse && listener.is_none() {
            // SO_REUSEADDR (set by std on Unix) lets the port be bound again at once.
            match TcpListener::bind(sh.addr) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                sh.accepted.fetch_add(1, Ordering::Relaxed);
                if live(&sh).len() >= MAX_CONNS {
                    sh.turned_away.fetch_add(1, Ordering::Relaxed);
                    continue; // dropped: closed
                }
                let Ok(server) = TcpStream::connect_timeout(&sh.target, Duration::from_secs(2)) else {
                    set_linger_zero(&client);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let conn = Arc::new(Conn { client, server });
                lock(&sh.conns).push(Arc::downgrade(&conn));
                for dir in [Dir::Up, Dir::Down] {
                    let (sh, c) = (sh.clone(), conn.clone());
                    let spawned = std::thread::Builder::new()
                        .name("proxy-pump".into())
                        .stack_size(128 << 10)
                        .spawn(move || pump(&sh, &c, dir));
                    if spawned.is_err() {
                        conn.abort();
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Copy one direction of a connection, applying the faults.
fn pump(sh: &Shared, c: &Conn, dir: Dir) {
    let (mut src, mut dst) = match dir {
        Dir::Up => (&c.client, &c.server),
        Dir::Down => (&c.server, &c.client),
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        // Stall: hold the bytes until the stall ends (or the proxy stops).
        loop {
            let until = *lock(&sh.stall_until);
            match until {
                Some((t, d))
                    if d.is_none_or(|d| d == dir)
                        && Instant::now() < t
                        && !sh.stop.load(Ordering::Relaxed) =>
                {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break,
            }
        }
        // Reset: forward up to the planned byte, then abort the connection.
        let mut send = n;
        let mut abort = false;
        {
            let mut plan = lock(&sh.reset);
            if let Some(p) = plan.as_mut().filter(|p| p.dir == dir && p.times > 0) {
                if n as u64 >= p.left {
                    send = p.left as usize;
                    abort = true;
                    p.times -= 1;
                    p.left = p.every;
                } else {
                    p.left -= n as u64;
                }
            }
        }
        // Throttle: reserve the bytes' slot on the shared link and wait for it.
        let rate = sh.rate.load(Ordering::Relaxed);
        if rate > 0 {
            let start = {
                let mut free = lock(&sh.link_free);
                let now = Instant::now();
                let start = (*free).max(now);
                *free = start + Duration::from_secs_f64(send as f64 / rate as f64);
                start
            };
            let now = Instant::now();
            if start > now {
                std::thread::sleep(start - now);
            }
        }
        if send > 0 && dst.write_all(&buf[..send]).is_err() {
            c.abort();
            return;
        }
        let counter = if dir == Dir::Up { &sh.bytes_up } else { &sh.bytes_down };
        counter.fetch_add(send as u64, Ordering::Relaxed);
        if abort {
            sh.resets.fetch_add(1, Ordering::Relaxed);
            c.abort();
            return;
        }
    }
}
