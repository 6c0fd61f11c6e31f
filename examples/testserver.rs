//! The project's test server as a program: plays Dify's services in the demo, the benchmarks
//! and (built static) in the test images.
//!
//! Usage: `testserver NAME=ADDR...`, e.g. `testserver web=127.0.0.1:3000 api=127.0.0.1:5001`.
//! Each NAME answers on its ADDR with the endpoints described in tests/it/testserver.rs.

#[path = "../tests/it/testserver.rs"]
mod testserver;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pairs: Vec<(String, String)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(n, a)| (n.to_string(), a.to_string()))
        })
        .collect();
    if pairs.is_empty() {
        eprintln!("usage: testserver NAME=ADDR... (e.g. web=127.0.0.1:3000 api=127.0.0.1:5001)");
        std::process::exit(2);
    }
    for (name, addr) in pairs {
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("testserver: cannot listen on {addr} for {name}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!(
            "testserver: {name} on {}",
            listener
                .local_addr()
                .map_or(addr.clone(), |a| a.to_string())
        );
        tokio::spawn(testserver::serve(listener, name));
    }
    // Exit on SIGINT and on SIGTERM (`docker stop`: as PID 1 it would otherwise be ignored).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
