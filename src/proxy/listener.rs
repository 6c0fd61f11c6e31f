//! Listening sockets: one per worker on the same address (SO_REUSEPORT), so the kernel spreads
//! connections across workers the way nginx's workers share a port.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::ProxyError;

/// Binds `count` listeners on `addr` (port 0 picks one free port for all of them).
///
/// The address is first bound once *without* SO_REUSEPORT: that fails when any other process
/// holds the port (even another difyctl), where SO_REUSEPORT alone would silently share it.
pub fn bind_group(
    addr: SocketAddr,
    count: usize,
    what: &'static str,
) -> Result<Vec<TcpListener>, ProxyError> {
    let err = |source| ProxyError::Bind { what, addr, source };
    let probe = socket(addr, false).map_err(err)?;
    let addr = probe.local_addr().map_err(err)?;
    drop(probe);
    (0..count.max(1))
        .map(|_| socket(addr, true).map_err(err))
        .collect()
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
