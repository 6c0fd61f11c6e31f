//! The command line as typed: clap definitions only, raw values. `main` turns them into a
//! validated `Config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "difyctl",
    version,
    about = "Run a self-hosted Dify: stack, HTTPS proxy and certificates in one binary"
)]
pub struct Cli {
    /// Compose file; repeat to merge several, later ones winning (default: ./compose.yaml or
    /// ./docker-compose.yaml, plus its .override file). Before the command, as with compose
    /// (`logs -f` is follow)
    #[arg(
        short = 'f',
        long = "file",
        env = "COMPOSE_FILE",
        value_name = "FILE",
        value_delimiter = ':'
    )]
    pub file: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, else the compose file's folder name)
    #[arg(
        short = 'p',
        long = "project-name",
        global = true,
        env = "COMPOSE_PROJECT_NAME",
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub project_name: Option<String>,
    /// difyctl.toml to read (default: ./difyctl.toml when it exists)
    #[arg(
        long,
        global = true,
        env = "DIFYCTL_CONFIG",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,
    /// Dify's .env (default: ./.env beside the compose file, when it exists); repeat to read
    /// several, later ones winning, as compose does
    #[arg(
        long,
        global = true,
        env = "DIFYCTL_ENV_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub env_file: Vec<PathBuf>,
    /// Where difyctl keeps certificates, keys and run state (default: /var/lib/difyctl as root,
    /// ~/.local/state/difyctl otherwise)
    #[arg(
        long,
        global = true,
        env = "DIFYCTL_STATE_DIR",
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub state_dir: Option<PathBuf>,
    /// Log line format on stderr (the log level comes from RUST_LOG, default info)
    #[arg(long, global = true, env = "DIFYCTL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, help_heading = "Global options")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(display_order = 40)]
    /// Run only the HTTPS reverse proxy (and its certificates) in front of running Dify services
    Proxy(Box<ProxyArgs>),
    #[command(display_order = 41)]
    /// Certificates: where they stand, and renewal on demand
    #[command(subcommand)]
    Certs(CertsCommand),
    #[command(display_order = 1)]
    /// A new install in a folder: Dify's stack, a .env with fresh secrets, difyctl.toml
    Init {
        /// The domain Dify is served on (Let's Encrypt certificate)
        #[arg(long, value_name = "D")]
        domain: Option<String>,
        /// Contact e-mail for Let's Encrypt
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// Folder to write to (created when missing)
        #[arg(long, default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// Dify release to install (default: the newest difyctl ships; another is fetched from
        /// Dify's release archives, `difyctl releases` lists them)
        #[arg(long, value_name = "V")]
        version: Option<String>,
    },
    #[command(display_order = 10)]
    /// Start the stack (create, recreate or keep each service's container, in dependency order)
    Up(UpArgs),
    #[command(display_order = 11)]
    /// Stop and remove the stack's containers and networks; volumes (your data) only with -v
    Down {
        /// Also remove the project's named volumes, and with them their data
        #[arg(short = 'v', long = "volumes")]
        volumes: bool,
        /// Seconds each container gets to stop before it is killed
        #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
    },
    #[command(display_order = 13)]
    /// One screen from the running difyctl: URL, certificate, services, last minute's traffic
    Status {
        /// JSON instead of text (what the admin listener's /status serves)
        #[arg(long)]
        json: bool,
    },
    #[command(display_order = 12)]
    /// The stack's containers: state, health, ports, uptime
    Ps {
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Accepted for compose's sake: stopped containers are always shown
        #[arg(short = 'a', long = "all", hide = true)]
        all: bool,
    },
    #[command(display_order = 14)]
    /// Containers' output, prefixed with their service like compose
    Logs {
        /// Services to show [default: all]
        services: Vec<String>,
        /// Keep following new output
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines of each container
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<u64>,
        /// Prefix each line with its time
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Only output since: 10m, 2h, an RFC 3339 time or Unix seconds
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
    #[command(display_order = 15)]
    /// Restart services' containers (all with none named)
    Restart {
        /// Services to restart [default: all]
        services: Vec<String>,
        /// Seconds each container gets to stop before it is killed
        #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
    },
    /// Stop services' containers, keeping them (all with none named); `start` starts them again
    #[command(display_order = 16)]
    Stop {
        /// Services to stop [default: all]
        services: Vec<String>,
        /// Seconds each container gets to stop before it is killed
        #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
    },
    /// Start services' stopped containers (all with none named)
    #[command(display_order = 17)]
    Start {
        /// Services to start [default: all]
        services: Vec<String>,
    },
    /// Run a command in a service's running container, e.g. `exec api flask reset-password`
    #[command(display_order = 18)]
    Exec {
        /// The service
        service: String,
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    #[command(display_order = 19)]
    /// Pull the images of the services `up` would start
    Pull {
        /// Services whose images to pull [default: all]
        services: Vec<String>,
        /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
    },
    #[command(display_order = 2)]
    /// Preflight: Docker, ports 80/443, DNS of each domain, disk, state directory, clock
    Doctor {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
        /// Domain to check (repeatable) [default: the configured domains]
        #[arg(long = "domain", value_name = "D")]
        domains: Vec<String>,
    },
    #[command(display_order = 30)]
    /// One verified archive of the install: database dumps, volumes and data folders, env and
    /// compose files, difyctl.toml and difyctl's state
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        action: Option<BackupAction>,
        /// Folder for the archive [default: `[backup] dir`, else <state dir>/backups]
        #[arg(long, env = "DIFYCTL_BACKUP_DIR", value_name = "DIR")]
        to: Option<PathBuf>,
        /// After a successful backup, keep only the N newest archives of this project
        #[arg(long, env = "DIFYCTL_BACKUP_KEEP", value_name = "N")]
        keep: Option<usize>,
        /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        /// Print a JSON summary (progress stays on stderr)
        #[arg(long)]
        json: bool,
    },
    #[command(display_order = 31)]
    /// Put a backup archive back into an empty install (this machine or another), then start it
    Restore {
        /// The archive (`difyctl-<project>-<time>.tar`)
        archive: PathBuf,
        /// The install folder to restore into [default: the folder of -f, else the current
        /// folder]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Overwrite a non-empty folder, volumes, database files or state
        #[arg(long)]
        force: bool,
        /// Also believe archives signed by this backup key (`difyctl backup key` prints one;
        /// the key, or a file holding it; repeatable)
        #[arg(long, value_name = "KEY")]
        trust: Vec<String>,
        /// Restore an archive no trusted key signed: what its compose would do to this host is
        /// shown first, and asked about (or --yes)
        #[arg(long)]
        untrusted: bool,
        /// Do not ask before restoring an untrusted archive
        #[arg(long, short = 'y')]
        yes: bool,
        /// Seconds a service may take to become healthy once restored
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        wait_timeout: u64,
        /// Print a JSON summary (progress stays on stderr)
        #[arg(long)]
        json: bool,
    },
    #[command(display_order = 33)]
    /// The same install as manifests for a cluster (kubectl apply -k DIR)
    #[command(subcommand)]
    Export(ExportTarget),
    #[command(display_order = 3)]
    /// Dify's releases: which exist, which this install runs, which is newest
    Releases {
        /// JSON for scripts
        #[arg(long)]
        json: bool,
    },
    #[command(display_order = 32)]
    /// Bring the install to another Dify release, data kept; everything put back when it fails
    #[command(group(clap::ArgGroup::new("release").required(true).args(["from", "to", "resume", "undo"])))]
    Upgrade {
        /// The new release's docker/ folder (downloaded from Dify)
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// A Dify release (fetched from Dify's release archives, or one difyctl ships for an
        /// install made by `difyctl init`); `difyctl releases` lists them
        #[arg(long, value_name = "VERSION", conflicts_with = "from")]
        to: Option<String>,
        /// Run the last upgrade again, after it was interrupted
        #[arg(long)]
        resume: bool,
        /// Put the release before the last upgrade back: its files, and its data from the
        /// backup taken before the upgrade
        #[arg(long)]
        undo: bool,
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before upgrading
        #[arg(long, short = 'y')]
        yes: bool,
        /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        /// Seconds a service may take to become healthy once recreated
        #[arg(
            long,
            env = "DIFYCTL_WAIT_TIMEOUT",
            default_value_t = 300,
            value_name = "SECS"
        )]
        wait_timeout: u64,
    },
    #[command(display_order = 50)]
    /// Shell completions: `difyctl completions bash > /etc/bash_completion.d/difyctl`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(display_order = 20)]
    /// The resolved compose project (interpolated, profiles applied), like `docker compose config`
    Config {
        /// Only the names of the services `up` would start
        #[arg(long)]
        services: bool,
        /// JSON instead of YAML
        #[arg(long)]
        json: bool,
        /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
        #[arg(long = "profile", value_name = "P")]
        profiles: Vec<String>,
        /// Leave env_file values out of each service's environment
        #[arg(long)]
        no_env_resolution: bool,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Only these services (and what they depend on) [default: all]
    pub services: Vec<String>,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// Only the stack: start it, wait until every service is healthy, exit
    #[arg(long)]
    pub no_proxy: bool,
    /// Start the stack, then keep serving in the background (the systemd unit when it is
    /// installed, else a detached difyctl whose log `difyctl logs difyctl` shows)
    #[arg(short = 'd', long, conflicts_with = "no_proxy")]
    pub detach: bool,
    /// Seconds a service may take to become healthy (or to complete) before `up` fails
    #[arg(
        long,
        env = "DIFYCTL_WAIT_TIMEOUT",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub wait_timeout: u64,
    /// Services left to difyctl instead of started (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nginx,certbot",
        value_name = "LIST"
    )]
    pub replace: Vec<String>,
    /// Print the result as JSON (progress stays on stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub domain: DomainArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Plain-HTTP listen address [default: 0.0.0.0:80, or EXPOSE_NGINX_PORT]
    #[arg(long, env = "DIFYCTL_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// HTTPS listen address [default: 0.0.0.0:443, or EXPOSE_NGINX_SSL_PORT]
    #[arg(long, env = "DIFYCTL_HTTPS", value_name = "ADDR")]
    pub https: Option<String>,
    #[command(flatten)]
    pub acme: AcmeArgs,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Issuer, serial, validity, next renewal and last error of each certificate
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Renew now: through the running difyctl if there is one, else by itself (binding :80/:443)
    Renew {
        /// Renew even when the certificate is not due
        #[arg(long)]
        force: bool,
        /// The certificate (any of its names) to renew [default: the configured one]
        #[arg(long, value_name = "D")]
        domain: Option<String>,
        #[command(flatten)]
        acme: AcmeArgs,
        /// Plain-HTTP address for HTTP-01 when no difyctl is running [default: 0.0.0.0:80]
        #[arg(long, env = "DIFYCTL_HTTP", value_name = "ADDR")]
        http: Option<String>,
        /// HTTPS address for TLS-ALPN-01 when no difyctl is running [default: 0.0.0.0:443]
        #[arg(long, env = "DIFYCTL_HTTPS", value_name = "ADDR")]
        https: Option<String>,
        /// Names on the certificate (repeatable) [default: `domains` from difyctl.toml, or CERTBOT_DOMAIN]
        #[arg(long = "name", value_name = "D")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Kubernetes: Deployments, StatefulSets, Services, Secrets, ConfigMaps, NetworkPolicies,
    /// Gateway API routes (or an Ingress) and cert-manager objects, with a kustomization.yaml
    Kubernetes(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Folder the manifests are written to (created; an earlier export there is replaced)
    #[arg(long, default_value = "kubernetes", value_name = "DIR")]
    pub out: PathBuf,
    /// Namespace of every object
    #[arg(long, default_value = "dify", value_name = "N")]
    pub namespace: String,
    /// StorageClass of the volume claims [default: the cluster's default]
    #[arg(long, value_name = "C")]
    pub storage_class: Option<String>,
    /// Replicas of a service that scales (api, worker, web), e.g. api=3 (repeatable)
    #[arg(long = "replicas", value_name = "SVC=N", value_parser = parse_replicas)]
    pub replicas: Vec<(String, u32)>,
    /// How traffic comes in: Gateway API routes, or an Ingress
    #[arg(long, value_enum, default_value = "gateway")]
    pub ingress: IngressArg,
    /// The cluster's GatewayClass (or IngressClass)
    #[arg(long = "class", default_value = "default", value_name = "NAME")]
    pub class: String,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    #[command(flatten)]
    pub domain: DomainArgs,
    #[command(flatten)]
    pub acme: AcmeContact,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IngressArg {
    Gateway,
    Ingress,
}

fn parse_replicas(s: &str) -> Result<(String, u32), String> {
    let (svc, n) = s.split_once('=').ok_or("expected SVC=N, e.g. api=3")?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number of replicas"))?;
    Ok((svc.trim().to_string(), n))
}

/// The domains served (`up`, `proxy`, `export`).
#[derive(Debug, Args, Default)]
pub struct DomainArgs {
    /// Domain to serve and get a certificate for (repeatable; from the ACME CA unless `proxy`
    /// is given --cert/--key) [default: `domains` from difyctl.toml, or CERTBOT_DOMAIN]
    #[arg(
        long = "domain",
        env = "DIFYCTL_DOMAIN",
        value_delimiter = ',',
        value_name = "D"
    )]
    pub domains: Vec<String>,
}

/// The admin listener (`up`, `proxy`).
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin listener for /metrics, /healthz, /readyz and /status, or `off` [default: 127.0.0.1:2019]
    #[arg(long, env = "DIFYCTL_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
}

/// Where certificates come from (else from difyctl.toml's [acme] section).
#[derive(Debug, Args, Default)]
pub struct AcmeArgs {
    #[command(flatten)]
    pub contact: AcmeContact,
    /// Extra PEM root to trust for the ACME directory's TLS (a private CA)
    #[arg(long, env = "DIFYCTL_ACME_CA_ROOT", value_name = "PEM")]
    pub acme_ca_root: Option<PathBuf>,
    /// Challenge type: http-01 or tls-alpn-01 (the other is tried when one fails) [default: http-01]
    #[arg(long, env = "DIFYCTL_CHALLENGE", value_name = "TYPE")]
    pub challenge: Option<String>,
}

/// Who the ACME account is and which CA: all `export kubernetes` needs (cert-manager's issuer).
#[derive(Debug, Default, Args)]
pub struct AcmeContact {
    /// Contact e-mail for the ACME account [default: `email`, or CERTBOT_EMAIL]
    #[arg(long, env = "DIFYCTL_EMAIL", value_name = "E")]
    pub email: Option<String>,
    /// ACME directory: letsencrypt, letsencrypt-staging or a URL [default: letsencrypt]
    #[arg(long, env = "DIFYCTL_ACME_DIRECTORY", value_name = "URL")]
    pub acme_directory: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address of Dify's web service (host:port), for / and /explore
    #[arg(long, env = "DIFYCTL_UPSTREAM_WEB", value_name = "ADDR")]
    pub upstream_web: String,
    /// Address of Dify's api service (host:port), for /console/api, /api, /v1, /files, /mcp, ...
    #[arg(long, env = "DIFYCTL_UPSTREAM_API", value_name = "ADDR")]
    pub upstream_api: String,
    /// Address of the plugin daemon (host:port), for /e/ (without it /e/ answers 503)
    #[arg(long, env = "DIFYCTL_UPSTREAM_PLUGIN", value_name = "ADDR")]
    pub upstream_plugin: Option<String>,
    /// Address of the Socket.IO service (host:port), for /socket.io/ (default: the api address)
    #[arg(long, env = "DIFYCTL_UPSTREAM_SOCKET", value_name = "ADDR")]
    pub upstream_socket: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Plain-HTTP listen address: redirects to HTTPS and answers ACME challenges [default: 0.0.0.0:80]
    #[arg(long, env = "DIFYCTL_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// HTTPS listen address [default: 0.0.0.0:443]
    #[arg(long, env = "DIFYCTL_HTTPS", value_name = "ADDR")]
    pub https: Option<String>,
    /// Certificate chain (PEM) to serve; reloaded when the file changes or on SIGHUP
    #[arg(long, env = "DIFYCTL_CERT", value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert
    #[arg(long, env = "DIFYCTL_KEY", value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub domain: DomainArgs,
    #[command(flatten)]
    pub acme: AcmeArgs,
    /// Largest request body accepted, like nginx's client_max_body_size [default: 100M]
    #[arg(long, env = "DIFYCTL_MAX_BODY", value_name = "SIZE")]
    pub max_body: Option<String>,
    /// Longest wait for an upstream's answer, and longest silence in a stream [default: 3600s]
    #[arg(long, env = "DIFYCTL_READ_TIMEOUT", value_name = "DURATION")]
    pub read_timeout: Option<String>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish [default: 30s]
    #[arg(long, env = "DIFYCTL_SHUTDOWN_GRACE", value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// Do not send Strict-Transport-Security
    #[arg(long, env = "DIFYCTL_NO_HSTS")]
    pub no_hsts: bool,
    /// Peer address or CIDR whose X-Forwarded-* headers are trusted (repeatable), e.g. a load balancer
    #[arg(
        long = "trusted-proxy",
        env = "DIFYCTL_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<String>,
    /// Worker threads, each with its own listener and upstream pool [default: one per core]
    #[arg(long, env = "DIFYCTL_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
}

#[cfg(test)]
mod tests {
    /// Regression: `logs -f` (follow) once clashed with a global `-f` (file), and clap only
    /// panics about that when the command is run.
    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Print this install's public backup key (for `restore --trust` on another machine) and
    /// where the private one is; made when there is none
    Key,
}
