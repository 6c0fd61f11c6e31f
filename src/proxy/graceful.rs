//! Graceful shutdown of served connections: on shutdown every connection is asked to finish
//! (HTTP/1 closes after the response in flight, HTTP/2 sends GOAWAY), and the worker waits for
//! them all. hyper-util's `GracefulShutdown` does the same but only for the connection types it
//! knows, and not for an HTTP/1 connection with upgrades served without its version sniffing.

use std::future::Future;
use std::pin::{pin, Pin};

use hyper::server::conn::{http1, http2};
use tokio::sync::watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A hyper server connection that can be asked to finish.
pub trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, B, S> Graceful for http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl<I, B, S, E> Graceful for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// The worker's side: tells every watched connection to finish, then waits for them.
pub struct Drain {
    tx: watch::Sender<bool>,
}

/// One connection's side; held until the connection ends.
pub struct Watcher {
    rx: watch::Receiver<bool>,
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            tx: watch::channel(false).0,
        }
    }

    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
        }
    }

    /// Asks every connection to finish and resolves once all have ended.
    pub async fn shutdown(self) {
        self.tx.send_replace(true);
        self.tx.closed().await;
    }
}

impl Watcher {
    /// Runs `conn` to its end, asking it to finish when the drain starts.
    pub async fn watch<C: Graceful>(mut self, conn: C) -> Result<(), hyper::Error> {
        let mut conn = pin!(conn);
        tokio::select! {
            ended = conn.as_mut() => return ended,
            _ = self.rx.wait_for(|stop| *stop) => {}
        }
        conn.as_mut().graceful_shutdown();
        conn.await
    }
}
