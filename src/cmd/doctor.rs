//! `difyctl doctor`: the preflight before `up`. Each check gives ok, warn or fail, what it saw
//! and what to do. Exit 1 when something fails.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;

use serde::Serialize;

use difyctl::config::Config;

use difyctl::config::row::DOCTOR;
use difyctl::config::SettingArgs;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: SettingArgs<DOCTOR>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let config = g.config_with(&self.settings)?;
        runtime()?.block_on(run(&config, &g.compose_file, self.json))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it; empty when nothing.
    pub fix: String,
}

pub fn finding(check: &str, status: Status, detail: String, fix: &str) -> Finding {
    Finding {
        check: check.to_string(),
        status,
        detail,
        fix: fix.to_string(),
    }
}

pub async fn run(config: &Config, compose_file: &Path, json: bool) -> anyhow::Result<()> {
    let compose_dir = compose_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut findings = vec![docker().await, compose(compose_file)];
    let running = tokio::net::UnixStream::connect(difyctl::control::socket_path(&config.state_dir))
        .await
        .is_ok();
    for (name, addr) in [("http", config.proxy.http), ("https", config.proxy.https)] {
        let mut f = port(name, addr, running);
        if f.status == Status::Fail {
            if let Some(replaced) = replaced_holder(addr.port()).await {
                f = finding(
                    name,
                    Status::Warn,
                    format!("{addr} is published by the container {replaced}"),
                    "`difyctl up` stops it: difyctl does its job",
                );
            }
        }
        findings.push(f);
    }
    findings.extend(dns(&config.domains).await);
    findings.push(disk("disk", compose_dir));
    findings.push(state_dir(&config.state_dir));
    findings.push(backup_dir(&config.backup.dir));
    findings.extend(super::doctor_systemd::checks(
        &config.backup.dir,
        config.backup.hook.as_deref(),
        &config.state_dir,
    ));
    findings.push(clock());

    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let status = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{status}  {:<8} {}", f.check, f.detail);
            if !f.fix.is_empty() {
                println!("      {:<8} -> {}", "", f.fix);
            }
        }
    }
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

async fn docker() -> Finding {
    match difyctl::engine::Engine::connect().await {
        Ok(e) => finding(
            "docker",
            Status::Ok,
            format!(
                "Docker {} (API {}) at {}",
                e.version, e.api_version, e.endpoint
            ),
            "",
        ),
        Err(e) => {
            let chain = difyctl::error_chain(&e);
            let endpoint = match &e {
                difyctl::engine::EngineError::Unreachable { endpoint, .. } => endpoint.clone(),
                _ => "the Docker socket".into(),
            };
            let (detail, fix) = if chain.contains("Permission denied") {
                (
                    format!("{endpoint} refuses this user (permission denied)"),
                    "run difyctl as root (sudo), or add this user to the docker group (root-equivalent)",
                )
            } else {
                (
                    format!("no Docker engine answers at {endpoint}"),
                    "install Docker and start it (systemctl enable --now docker), or set DOCKER_HOST",
                )
            };
            finding("docker", Status::Fail, detail, fix)
        }
    }
}

/// The compose file `up` would read.
fn compose(file: &Path) -> Finding {
    match std::fs::metadata(file) {
        Ok(m) if m.is_file() => finding("compose", Status::Ok, format!("{} is here", file.display()), ""),
        _ => finding(
            "compose",
            Status::Fail,
            format!("no compose file at {}", file.display()),
            "run difyctl in Dify's docker/ folder, give -f FILE, or make an install with `difyctl init`",
        ),
    }
}

/// The backup folder can be written (made when missing, as a backup would).
fn backup_dir(dir: &Path) -> Finding {
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".difyctl-doctor-{}", std::process::id()));
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map(|_| {
            let _ = std::fs::remove_file(&probe);
        });
    match writable {
        Ok(()) => finding(
            "backups",
            Status::Ok,
            format!("{} can be written", dir.display()),
            "",
        ),
        Err(e) => finding(
            "backups",
            Status::Fail,
            format!("{} cannot be written ({e})", existing.display()),
            "choose another [backup] dir, or fix its permissions",
        ),
    }
}

/// A running container of a service difyctl replaces (compose's nginx or certbot) that
/// publishes `port`: `up` stops those, so the port is not really in the way.
async fn replaced_holder(port: u16) -> Option<String> {
    let engine = difyctl::engine::Engine::connect().await.ok()?;
    let containers = engine
        .docker
        .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
        .await
        .ok()?;
    containers.into_iter().find_map(|c| {
        let service = c
            .labels
            .as_ref()?
            .get(difyctl::engine::labels::SERVICE)?
            .clone();
        let publishes = c
            .ports
            .iter()
            .flatten()
            .any(|p| p.public_port == Some(port));
        (publishes && difyctl::dify::REPLACED.contains(&service.as_str()))
            .then(|| difyctl::engine::reconcile::display_name(&c))
    })
}

fn port(name: &str, addr: SocketAddr, difyctl_running: bool) -> Finding {
    match TcpListener::bind(addr) {
        Ok(_) => finding(name, Status::Ok, format!("{addr} is free"), ""),
        Err(_) if difyctl_running => finding(
            name,
            Status::Ok,
            format!("{addr} is in use, by the running difyctl"),
            "",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => finding(
            name,
            Status::Fail,
            format!("{addr}: not allowed to bind ({e})"),
            "run as root or give the binary CAP_NET_BIND_SERVICE (the systemd unit does)",
        ),
        Err(e) => finding(
            name,
            Status::Fail,
            format!("{addr} is taken by another program ({e})"),
            "stop it (Dify's nginx container? `docker stop <project>-nginx-1`; find it with `ss -ltnp`) or choose another address in difyctl.toml [proxy]",
        ),
    }
}

async fn dns(domains: &[String]) -> Vec<Finding> {
    let local = local_addresses();
    let mut out = Vec::new();
    for domain in domains {
        let check = format!("dns {domain}");
        let resolved: Vec<IpAddr> = match tokio::net::lookup_host((domain.as_str(), 443)).await {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(e) => {
                out.push(finding(
                    &check,
                    Status::Fail,
                    format!("{domain} does not resolve: {e}"),
                    "create A (and AAAA) records pointing to this host; Let's Encrypt cannot validate without them",
                ));
                continue;
            }
        };
        let list = resolved
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if resolved.iter().any(|ip| local.contains(ip)) {
            out.push(finding(
                &check,
                Status::Ok,
                format!("{domain} -> {list}: this host"),
                "",
            ));
        } else {
            out.push(finding(
                &check,
                Status::Warn,
                format!("{domain} -> {list}: not an address of this host"),
                "fine when a router or load balancer forwards ports 80 and 443 here; otherwise point the records at this host",
            ));
        }
    }
    out
}

/// Every address on this host's interfaces.
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read and then free once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*cur };
        if !node.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            let family = i32::from(unsafe { (*node.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(node.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(node.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = node.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
    out
}

fn disk(check: &str, dir: &Path) -> Finding {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return finding(
            check,
            Status::Warn,
            format!("{}: odd path", dir.display()),
            "",
        );
    };
    // SAFETY: statvfs writes into a zeroed struct we own, given a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return finding(
            check,
            Status::Warn,
            format!("cannot read free space of {}", dir.display()),
            "",
        );
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let gib = free as f64 / (1u64 << 30) as f64;
    let detail = format!(
        "{gib:.1} GiB free where Dify's volumes live ({})",
        dir.display()
    );
    match gib {
        g if g < 1.0 => finding(
            check,
            Status::Fail,
            detail,
            "free space: PostgreSQL stops accepting writes on a full disk",
        ),
        g if g < 10.0 => finding(
            check,
            Status::Warn,
            detail,
            "Dify's database, uploads and images grow: keep 10 GiB or more free",
        ),
        _ => finding(check, Status::Ok, detail, ""),
    }
}

/// Whether `dir` could be created: its nearest existing ancestor is a writable folder on a
/// writable file system (not /proc, not read-only, not another user's).
fn creatable(dir: &Path) -> Result<(), String> {
    let Some(base) = dir.ancestors().skip(1).find(|a| a.exists()) else {
        return Err("no part of the path exists".into());
    };
    if !base.is_dir() {
        return Err(format!("{} is not a folder", base.display()));
    }
    let c =
        std::ffi::CString::new(base.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: access(2) and statvfs(2) with a NUL-terminated path and an out struct.
    let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    let read_only =
        unsafe { libc::statvfs(c.as_ptr(), &mut fs) } == 0 && fs.f_flag & libc::ST_RDONLY != 0;
    let pseudo = base.starts_with("/proc") || base.starts_with("/sys");
    if read_only || pseudo {
        return Err(format!(
            "{} is on a read-only or virtual file system",
            base.display()
        ));
    }
    if !writable {
        return Err(format!("{} is not writable by this user", base.display()));
    }
    Ok(())
}

fn state_dir(dir: &Path) -> Finding {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(dir) {
        Err(_) => match creatable(dir) {
            Ok(()) => finding(
                "state",
                Status::Ok,
                format!("{} will be created (0700)", dir.display()),
                "",
            ),
            Err(why) => finding(
                "state",
                Status::Fail,
                format!("{} cannot be created: {why}", dir.display()),
                "give --state-dir (or state_dir in difyctl.toml) a folder this user can write",
            ),
        },
        Ok(m) if m.mode() & 0o077 != 0 => finding(
            "state",
            Status::Warn,
            format!(
                "{} is readable by others (mode {:o}); it holds private keys",
                dir.display(),
                m.mode() & 0o777
            ),
            &format!("chmod 700 {}", dir.display()),
        ),
        // SAFETY: geteuid has no preconditions.
        Ok(m) if m.uid() != unsafe { libc::geteuid() } => finding(
            "state",
            Status::Warn,
            format!(
                "{} belongs to uid {}, not to this user",
                dir.display(),
                m.uid()
            ),
            "run difyctl as that user, or chown the folder",
        ),
        Ok(_) => finding(
            "state",
            Status::Ok,
            format!("{} is private", dir.display()),
            "",
        ),
    }
}

/// The kernel knows whether NTP keeps the clock in sync (adjtimex's STA_UNSYNC).
fn clock() -> Finding {
    // SAFETY: adjtimex with modes = 0 only reads the clock state into our zeroed struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    let unsynced = state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0;
    let now = difyctl::timefmt::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    if unsynced {
        finding(
            "clock",
            Status::Warn,
            format!("{now}, not synchronised by NTP"),
            "enable time sync (systemctl enable --now systemd-timesyncd, or chrony): certificate validity and ACME depend on the clock",
        )
    } else {
        finding("clock", Status::Ok, format!("{now}, synchronised"), "")
    }
}
