//! Listening sockets: one per worker on the same address (SO_REUSEPORT), so the kernel spreads
//! connections across workers the way nginx's workers share a port.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::ProxyError;

/// Binds `count` listeners on `addr` (port 0 picks one free port for all of them).
///
/// A fixed port is first bound once *without* SO_REUSEPORT: that fails when any other process
/// holds the port (even another difyctl), where SO_REUSEPORT alone would silently share it.
/// Port 0 needs no probe: the kernel hands out a free port, and probing (bind, close, bind
/// again) would leave a window for someone else to take it.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
    what: &'static str,
) -> Result<Vec<TcpListener>, ProxyError> {
    let err = |addr| move |error| ProxyError::Bind { what, addr, error };
    let first = if addr.port() == 0 {
        socket(addr, true).map_err(err(addr))?
    } else {
        drop(socket(addr, false).map_err(err(addr))?);
        socket(addr, true).map_err(err(addr))?
    };
    let addr = first.local_addr().map_err(err(addr))?;
    let mut group = vec![first];
    for _ in 1..count.max(1) {
        group.push(socket(addr, true).map_err(err(addr))?);
    }
    Ok(group)
}

fn socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
