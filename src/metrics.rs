//! What the proxy counts while it serves, for the admin listener's `/metrics` (Prometheus text
//! format) and `difyctl status`. Counters are plain atomics indexed by service, status class
//! and protocol: recording a request is a handful of relaxed increments, nothing allocates.
//! What is not known to the proxy (containers, certificates) is read when scraped, in
//! `admin.rs`, and rendered here with the rest.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The services requests are counted for; `-` is the proxy answering itself (redirects, 431,
/// 413 before routing...).
pub const SERVICES: [&str; 5] = [
    crate::dify::WEB,
    crate::dify::API,
    crate::dify::PLUGIN_DAEMON,
    crate::dify::API_WEBSOCKET,
    "-",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const PROTOCOLS: [&str; 2] = ["HTTP/1.1", "HTTP/2"];
/// Latency buckets in seconds (Prometheus' defaults, extended for Dify's long workflows).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

fn service_index(service: &str) -> usize {
    SERVICES
        .iter()
        .position(|s| *s == service)
        .unwrap_or(SERVICES.len() - 1)
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Requests and 5xx answers per second over the last minute (a ring of 60 slots).
struct Recent {
    second: [AtomicU64; 60],
    requests: [AtomicU64; 60],
    errors: [AtomicU64; 60],
    waits: [AtomicU64; 60],
}

impl Default for Recent {
    fn default() -> Self {
        let zeros = || std::array::from_fn(|_| AtomicU64::new(0));
        Recent {
            second: zeros(),
            requests: zeros(),
            errors: zeros(),
            waits: zeros(),
        }
    }
}

impl Recent {
    fn slot(&self, now: u64) -> usize {
        let i = (now % 60) as usize;
        // A slot last used a minute (or more) ago starts again; two threads racing here can
        // lose a count in that one second, which a rate over a minute does not notice.
        // Read first: the slot changes once a second, and a write on every request would
        // bounce its cache line between the workers.
        if self.second[i].load(Relaxed) != now && self.second[i].swap(now, Relaxed) != now {
            self.requests[i].store(0, Relaxed);
            self.errors[i].store(0, Relaxed);
            self.waits[i].store(0, Relaxed);
        }
        i
    }

    fn sums(&self, now: u64) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for i in 0..60 {
            let at = self.second[i].load(Relaxed);
            if at + 60 > now && at <= now {
                out.0 += self.requests[i].load(Relaxed);
                out.1 += self.errors[i].load(Relaxed);
                out.2 += self.waits[i].load(Relaxed);
            }
        }
        out
    }
}

/// Counters of one proxy process, shared by every worker.
#[derive(Default)]
pub struct Metrics {
    requests: [[[AtomicU64; PROTOCOLS.len()]; CLASSES.len()]; SERVICES.len()],
    latency: [Histogram; SERVICES.len()],
    bytes_in: [AtomicU64; SERVICES.len()],
    bytes_out: [AtomicU64; SERVICES.len()],
    connect_errors: [AtomicU64; SERVICES.len()],
    waits: [AtomicU64; SERVICES.len()],
    retries: [AtomicU64; SERVICES.len()],
    pub connections: AtomicI64,
    pub websockets: AtomicI64,
    pub sse_streams: AtomicI64,
    /// Handshake failures by reason: rare, so a map behind a lock is fine.
    tls_failures: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Container starts seen in Docker's events since difyctl started, by compose service.
    service_starts: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Services the serving `up` brought back itself, and its failed tries, by service.
    repairs: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    recent: Recent,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// An open client connection (see [`Metrics::open_connection`]).
pub struct OpenConnection(std::sync::Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}

/// Why a TLS handshake failed, as a short label (the `reason` of
/// `difyctl_tls_handshake_failures_total`).
pub fn tls_failure_reason(e: &std::io::Error) -> &'static str {
    use rustls::{AlertDescription as A, Error as E, PeerIncompatible as P};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed",
            std::io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    match tls {
        E::NoApplicationProtocol => "no_application_protocol",
        E::PeerIncompatible(P::NoCipherSuitesInCommon) => "no_shared_cipher",
        E::PeerIncompatible(P::Tls12NotOffered | P::SupportedVersionsExtensionRequired) => {
            "protocol_version"
        }
        E::PeerIncompatible(_) => "peer_incompatible",
        E::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown) => {
            "certificate_rejected"
        }
        E::AlertReceived(_) => "alert_received",
        E::InvalidMessage(_) | E::InappropriateHandshakeMessage { .. } => "invalid_message",
        E::General(_) => "no_certificate",
        _ => "other",
    }
}

/// One finished request, as the access log sees it.
pub struct Done<'a> {
    pub service: &'a str,
    pub status: u16,
    pub http2: bool,
    pub elapsed: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// How things stand for `difyctl status`: the last minute's traffic.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct LastMinute {
    pub requests: u64,
    pub errors_5xx: u64,
    pub upstream_waits: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Metrics {
    pub fn request(&self, done: &Done) {
        let s = service_index(done.service);
        let class = (usize::from(done.status / 100)).clamp(1, 5) - 1;
        self.requests[s][class][usize::from(done.http2)].fetch_add(1, Relaxed);
        let h = &self.latency[s];
        let secs = done.elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[b].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(done.elapsed.as_micros()).unwrap_or(u64::MAX);
        h.sum_micros.fetch_add(micros, Relaxed);
        self.bytes_in[s].fetch_add(done.bytes_in, Relaxed);
        self.bytes_out[s].fetch_add(done.bytes_out, Relaxed);
        let i = self.recent.slot(unix_now());
        self.recent.requests[i].fetch_add(1, Relaxed);
        if done.status >= 500 {
            self.recent.errors[i].fetch_add(1, Relaxed);
        }
    }

    pub fn connect_error(&self, service: &str) {
        self.connect_errors[service_index(service)].fetch_add(1, Relaxed);
    }

    /// A request held back for an upstream that is coming back.
    pub fn wait(&self, service: &str) {
        self.waits[service_index(service)].fetch_add(1, Relaxed);
        let i = self.recent.slot(unix_now());
        self.recent.waits[i].fetch_add(1, Relaxed);
    }

    pub fn retry(&self, service: &str) {
        self.retries[service_index(service)].fetch_add(1, Relaxed);
    }

    /// Counts a client connection as open until the guard is dropped.
    pub fn open_connection(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }

    pub fn tls_failure(&self, reason: &'static str) {
        let mut map = self.tls_failures.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    /// A container of `service` started (a restart, a recreation, a crash brought back).
    pub fn service_started(&self, service: &str) {
        let mut map = self
            .service_starts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(service.to_string()).or_default() += 1;
    }

    /// The serving `up` brought `service` back (`ok`), or tried and failed.
    pub fn repair(&self, service: &str, ok: bool) {
        let mut map = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
        let result = if ok { "ok" } else { "failed" };
        *map.entry((service.to_string(), result)).or_default() += 1;
    }

    pub fn service_starts(&self, service: &str) -> u64 {
        let map = self
            .service_starts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(service).copied().unwrap_or(0)
    }

    pub fn last_minute(&self) -> LastMinute {
        let (requests, errors_5xx, upstream_waits) = self.recent.sums(unix_now());
        LastMinute {
            requests,
            errors_5xx,
            upstream_waits,
        }
    }

    /// The proxy's own series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.render_requests(out);
        self.render_repairs(out);
        self.render_latency(out);
        let per_service = [
            (
                "difyctl_http_request_bytes_total",
                "Request body bytes received, by service.",
                &self.bytes_in,
            ),
            (
                "difyctl_http_response_bytes_total",
                "Response body bytes sent, by service.",
                &self.bytes_out,
            ),
            (
                "difyctl_upstream_connect_errors_total",
                "Connections to an upstream that failed.",
                &self.connect_errors,
            ),
            (
                "difyctl_upstream_waits_total",
                "Requests that waited for an upstream coming back.",
                &self.waits,
            ),
            (
                "difyctl_upstream_retries_total",
                "Requests sent to an upstream again after it refused or cut them.",
                &self.retries,
            ),
        ];
        for (name, help, values) in per_service {
            header(out, name, help, "counter");
            for (s, v) in SERVICES.iter().zip(values) {
                let _ = writeln!(out, "{name}{{service=\"{s}\"}} {}", v.load(Relaxed));
            }
        }
        for (name, help, v) in [
            (
                "difyctl_open_connections",
                "Client connections open now.",
                &self.connections,
            ),
            (
                "difyctl_websocket_tunnels",
                "WebSocket tunnels open now.",
                &self.websockets,
            ),
            (
                "difyctl_sse_streams",
                "Server-sent event streams open now.",
                &self.sse_streams,
            ),
        ] {
            header(out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed).max(0));
        }
        let name = "difyctl_tls_handshake_failures_total";
        header(
            out,
            name,
            "TLS handshakes that failed, by reason.",
            "counter",
        );
        let map = self.tls_failures.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, n) in map.iter() {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
        }
    }

    fn render_requests(&self, out: &mut String) {
        let name = "difyctl_http_requests_total";
        header(
            out,
            name,
            "Requests answered, by service, status class and protocol.",
            "counter",
        );
        for (s, service) in SERVICES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                for (p, proto) in PROTOCOLS.iter().enumerate() {
                    let n = self.requests[s][c][p].load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(out, "{name}{{service=\"{service}\",code=\"{class}\",proto=\"{proto}\"}} {n}");
                    }
                }
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        let name = "difyctl_http_request_duration_seconds";
        header(
            out,
            name,
            "Time from the request to the end of its response, by service.",
            "histogram",
        );
        for (service, h) in SERVICES.iter().zip(&self.latency) {
            let mut cumulative = 0;
            for (le, b) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += b.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{service=\"{service}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{service=\"{service}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{service=\"{service}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{service=\"{service}\"}} {count}");
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a metric.
impl Metrics {
    fn render_repairs(&self, out: &mut String) {
        let name = "difyctl_service_repairs_total";
        header(out, name, "Services the serving difyctl brought back itself (a container a killed difyctl removed), by result.", "counter");
        let map = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
        for ((service, result), n) in map.iter() {
            let _ = writeln!(
                out,
                "{name}{{service=\"{}\",result=\"{result}\"}} {n}",
                label(service)
            );
        }
    }
}

pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped as the text format wants it.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_series_and_the_last_minute() {
        let m = Metrics::default();
        for (status, http2) in [(200, false), (502, true), (200, false)] {
            m.request(&Done {
                service: "api",
                status,
                http2,
                elapsed: Duration::from_millis(30),
                bytes_in: 10,
                bytes_out: 100,
            });
        }
        m.wait("api");
        let mut text = String::new();
        m.render(&mut text);
        assert!(
            text.contains(
                "difyctl_http_requests_total{service=\"api\",code=\"2xx\",proto=\"HTTP/1.1\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "difyctl_http_requests_total{service=\"api\",code=\"5xx\",proto=\"HTTP/2\"} 1"
        ));
        assert!(text.contains(
            "difyctl_http_request_duration_seconds_bucket{service=\"api\",le=\"0.025\"} 0"
        ));
        assert!(text.contains(
            "difyctl_http_request_duration_seconds_bucket{service=\"api\",le=\"0.05\"} 3"
        ));
        assert!(text.contains("difyctl_http_response_bytes_total{service=\"api\"} 300"));
        assert!(text.contains("difyctl_upstream_waits_total{service=\"api\"} 1"));
        let last = m.last_minute();
        assert_eq!(
            (last.requests, last.errors_5xx, last.upstream_waits),
            (3, 1, 1)
        );
    }
}
