//! HTTP/1.1 listeners on hyper: accept loop, optional TLS, per-connection tasks that can be
//! killed (a dropped connection fault, a VIP going down), and the response body types.
//!
//! A handler returns `Err(Dropped)` to have the connection closed without any response: the
//! connection task drops the socket, which is what a client sees when a node dies mid-request.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub type RespBody = BoxBody<Bytes, io::Error>;
pub type Resp = http::Response<RespBody>;
pub type Req = http::Request<Incoming>;

/// The client certificate (DER) a TLS connection presented, put in the extensions of each of
/// its requests: `cert:` credentials authenticate with it.
#[derive(Debug, Clone)]
pub struct PeerCert(pub Arc<Vec<u8>>);

/// The handler asked for the connection to be closed without a response.
#[derive(Debug)]
pub struct Dropped;

pub type BoxFut = Pin<Box<dyn Future<Output = Result<Resp, Dropped>> + Send>>;
pub type Handler = Arc<dyn Fn(Req) -> BoxFut + Send + Sync>;

pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> RespBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body fed by a task (file reads happen on the blocking pool, chunks arrive here).
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    len: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

pub fn channel_body(len: u64) -> (mpsc::Sender<io::Result<Bytes>>, RespBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, BoxBody::new(ChannelBody { rx, len }))
}

/// A bound, running listener. Dropping it (or `stop`) closes the socket and every
/// connection it accepted.
pub struct Listener {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Listener {
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts serving `std_listener` on the current runtime (call inside `Runtime::enter`).
pub fn spawn(
    std_listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
) -> io::Result<Listener> {
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, tls, handler, rx));
    Ok(Listener { shutdown: tx, task })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, handler, mut sd) = (tls.clone(), handler.clone(), shutdown.clone());
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let serve = async {
                match tls {
                    Some(acc) => {
                        if let Ok(s) = acc.accept(stream).await {
                            let peer = s.get_ref().1.peer_certificates().and_then(|c| c.first());
                            let peer = peer.map(|c| PeerCert(Arc::new(c.to_vec())));
                            serve_conn(TokioIo::new(s), handler, kill.clone(), peer).await
                        }
                    }
                    None => serve_conn(TokioIo::new(stream), handler, kill.clone(), None).await,
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = kill.notified() => {}
                _ = sd.changed() => {}
            }
        });
    }
}

async fn serve_conn<I>(io: TokioIo<I>, handler: Handler, kill: Arc<Notify>, peer: Option<PeerCert>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Req| {
        if let Some(p) = &peer {
            req.extensions_mut().insert(p.clone());
        }
        let (handler, kill) = (handler.clone(), kill.clone());
        async move {
            match handler(req).await {
                Ok(r) => Ok::<_, io::Error>(r),
                Err(Dropped) => {
                    // Wake the connection task, which drops the socket; never answer.
                    kill.notify_one();
                    std::future::pending().await
                }
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, svc).await;
}
