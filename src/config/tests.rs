//! Tests of the settings table and the merge.
use super::row::Kind;
use super::settings::all_rows;
use super::*;
use std::path::Path;
use std::time::Duration;

fn env(text: &str) -> EnvFile {
    EnvFile::parse(Path::new("/srv/dify/.env"), text).unwrap()
}

fn rows() -> Vec<&'static Setting> {
    all_rows().collect()
}

fn toml(text: &str) -> FileConfig {
    FileConfig::parse(Path::new("/etc/difyctl/difyctl.toml"), text, &rows()).unwrap()
}

fn merged(
    flags: &Flags,
    file: FileConfig,
    dotenv: Option<&EnvFile>,
) -> Result<Config, ConfigError> {
    Config::merge(flags, file, dotenv)
}

/// A value each row's parser accepts, as a user would write it.
fn sample(row: &Setting) -> &'static str {
    match row.key {
        "domains" => "a.example.com",
        "email" => "ops@example.com",
        "state_dir" | "backup.dir" | "acme.ca_root" | "proxy.cert" | "proxy.key" => "/srv/x",
        "releases.url" => "https://mirror.example.com/dify",
        "proxy.http" | "proxy.https" | "admin.listen" => "127.0.0.1:8443",
        "proxy.max_body" | "proxy.max_header_size" => "2k",
        "proxy.hsts" => "false",
        "proxy.trusted_proxies" => "10.0.0.0/8",
        "acme.directory" => "https://ca.example.com/dir",
        "acme.challenge" => "tls-alpn-01",
        "acme.profile" => "shortlived",
        "acme.hook" | "backup.hook" => "/usr/local/bin/tell",
        "backup.schedule" => "@daily",
        "proxy.max_connections" | "proxy.max_connections_per_client" | "proxy.workers" => "3",
        "backup.keep" => "4",
        _ => "7s",
    }
}

/// What `key`'s typed field holds after a merge, as text, to compare sources by.
fn field(c: &Config, key: &str) -> String {
    let p = &c.proxy;
    let acme = c.acme.as_ref();
    match key {
        "domains" => format!("{:?}", c.domains),
        "email" => format!("{:?}", c.email),
        "state_dir" => format!("{:?}", c.state_dir),
        "releases.url" => c.releases_url.clone(),
        "proxy.http" => p.http.to_string(),
        "proxy.https" => p.https.to_string(),
        "proxy.max_body" => p.max_body.to_string(),
        "proxy.read_timeout" => format!("{:?}", p.read_timeout),
        "proxy.header_timeout" => format!("{:?}", p.header_timeout),
        "proxy.max_header_size" => p.max_header_size.to_string(),
        "proxy.idle_timeout" => format!("{:?}", p.idle_timeout),
        "proxy.max_connections" => p.max_connections.to_string(),
        "proxy.max_connections_per_client" => p.max_connections_per_client.to_string(),
        "proxy.connect_timeout" => format!("{:?}", p.connect_timeout),
        "proxy.upstream_wait" => format!("{:?}", p.upstream_wait),
        "proxy.shutdown_grace" => format!("{:?}", p.shutdown_grace),
        "proxy.hsts" => p.hsts.to_string(),
        "proxy.trusted_proxies" => format!("{:?}", p.trusted_proxies),
        "proxy.workers" => p.workers.to_string(),
        "proxy.cert" => format!("{:?}", p.cert),
        "proxy.key" => format!("{:?}", p.key),
        "acme.directory" => format!("{:?}", acme.map(|a| &a.directory)),
        "acme.ca_root" => format!("{:?}", acme.map(|a| &a.ca_root)),
        "acme.challenge" => format!("{:?}", acme.map(|a| a.challenge)),
        "acme.profile" => format!("{:?}", acme.map(|a| &a.profile)),
        "acme.hook" => format!("{:?}", acme.map(|a| &a.hook)),
        "acme.check_interval" => format!("{:?}", acme.map(|a| a.check_interval)),
        "acme.retry_initial" => format!("{:?}", acme.map(|a| a.retry_initial)),
        "backup.dir" => format!("{:?}", c.backup.dir),
        "backup.keep" => format!("{:?}", c.backup.keep),
        "backup.schedule" => format!("{:?}", c.backup.schedule),
        "backup.hook" => format!("{:?}", c.backup.hook),
        "admin.listen" => format!("{:?}", c.admin.listen),
        other => panic!("a row without a test: {other} (add it to `field` and `sample`)"),
    }
}

/// Each row, from each of its sources: the value is read, each source wins over the ones
/// below it (flag > variable > difyctl.toml > .env > default), and a wrong value names the
/// source it came from.
#[test]
fn every_row_from_every_source() {
    let none = |_: &str| None;
    for row in all_rows() {
        // Domains, so that the ACME part (and its rows) exists; a certificate needs its key.
        let base = |mut flags: Flags| {
            if row.key != "domains" {
                flags = flags.with(General::row("domains"), "base.example.com");
            }
            match row.key {
                "proxy.cert" => flags.with(ProxyConfig::row("key"), "/k"),
                "proxy.key" => flags.with(ProxyConfig::row("cert"), "/c"),
                _ => flags,
            }
        };
        let resolve = |flags: Flags,
                       env: &dyn Fn(&str) -> Option<String>,
                       file: &FileConfig,
                       dotenv: Option<&EnvFile>| {
            let flags = base(flags);
            let src = Sources {
                flags: &flags,
                env,
                file,
                dotenv,
            };
            Config::from_sources(&src, &flags).map(|c| field(&c, row.key))
        };
        let one = |v: &str| match row.kind {
            Kind::List => Value::List(vec![v.to_string()]),
            _ => Value::One(v.to_string()),
        };
        let value = sample(row);
        let file = FileConfig::default().with(row.key, one(value));
        let wrong = FileConfig::default().with(row.key, one("x-wrong"));
        let empty = FileConfig::default();
        let shown = resolve(Flags::default(), &none, &file, None).unwrap();
        if !matches!(row.key, "proxy.cert" | "proxy.key") {
            let default = resolve(Flags::default(), &none, &empty, None).unwrap();
            assert_ne!(shown, default, "{}: the file's value is read", row.key);
        }
        // The variable over the file, the flag over the variable.
        let switch = matches!(row.kind, Kind::Switch { .. });
        let var = |name: &str| (name == row.var).then(|| if switch { "1" } else { value }.into());
        let bad_var = |name: &str| (name == row.var).then(|| "x-wrong".to_string());
        let got = resolve(Flags::default(), &var, &wrong, None).unwrap();
        assert_eq!(got, shown, "{}: {} over difyctl.toml", row.key, row.var);
        if let Some((flag, _)) = row.flag {
            let got = resolve(Flags::default().with(row, value), &bad_var, &wrong, None);
            assert_eq!(
                got.unwrap(),
                shown,
                "{}: --{flag} over {}",
                row.key,
                row.var
            );
        }
        // A wrong value names where it came from (rows that take any text aside).
        if let Err(err) = resolve(Flags::default(), &none, &wrong, None) {
            let origin = format!("difyctl.toml:1 ({}): ", row.key);
            assert!(err.to_string().starts_with(&origin), "{err}");
            if !switch {
                let err = resolve(Flags::default(), &bad_var, &empty, None).unwrap_err();
                assert!(
                    err.to_string().starts_with(&format!("{}: ", row.var)),
                    "{err}"
                );
            }
        }
        // `.env` is the last word before the default.
        if let Some(key) = row.dotenv {
            let e = env(&format!("{key}={value}\n"));
            let got = resolve(Flags::default(), &none, &empty, Some(&e)).unwrap();
            assert_eq!(got, shown, "{}: {key} from .env", row.key);
            let under =
                resolve(Flags::default(), &none, &wrong, Some(&e)).map_err(|e| e.to_string());
            let alone = resolve(Flags::default(), &none, &wrong, None).map_err(|e| e.to_string());
            assert_eq!(under, alone, "{}: difyctl.toml over {key}", row.key);
        }
    }
}

#[test]
fn defaults_parse_and_help_lines_say_them() {
    let _ = (
        General::default(),
        ProxyConfig::default(),
        AcmeSettings::default(),
    );
    let _ = (BackupConfig::default(), AdminConfig::default());
    let max_body = ProxyConfig::row("max_body");
    assert_eq!(
        max_body.help_line(),
        "Largest request body accepted, like nginx's client_max_body_size (0: no limit); larger gets 413 [default: 100M, or NGINX_CLIENT_MAX_BODY_SIZE from .env]"
    );
    assert_eq!(
        ProxyConfig::row("hsts").help_line(),
        "Do not send Strict-Transport-Security (1 year) on HTTPS"
    );
    let mut keys: Vec<_> = all_rows().map(|r| r.key).collect();
    let mut vars: Vec<_> = all_rows().map(|r| r.var).collect();
    let n = keys.len();
    keys.dedup();
    vars.sort();
    vars.dedup();
    assert_eq!(
        (keys.len(), vars.len()),
        (n, n),
        "each key and variable once"
    );
}

#[test]
fn dotenv_values_apply_below_flags_and_file() {
    let e = env("NGINX_CLIENT_MAX_BODY_SIZE=15M\nNGINX_PROXY_READ_TIMEOUT=600s\nEXPOSE_NGINX_PORT=8080\nCERTBOT_DOMAIN=dify.example.com\n");
    let c = merged(&Flags::default(), FileConfig::default(), Some(&e)).unwrap();
    assert_eq!(c.proxy.max_body, 15 << 20);
    assert_eq!(c.proxy.read_timeout, Duration::from_secs(600));
    assert_eq!(c.proxy.http.port(), 8080);
    assert_eq!(c.domains, vec!["dify.example.com"]);

    let flags = Flags::default().with(ProxyConfig::row("max_body"), "1G");
    let c = merged(&flags, toml("[proxy]\nread_timeout = \"5m\"\n"), Some(&e)).unwrap();
    assert_eq!(c.proxy.max_body, 1 << 30);
    assert_eq!(c.proxy.read_timeout, Duration::from_secs(300));
}

#[test]
fn errors_name_their_origin() {
    let e = env("A=1\nNGINX_CLIENT_MAX_BODY_SIZE=lots\n");
    let err = merged(&Flags::default(), FileConfig::default(), Some(&e)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/srv/dify/.env:2 (NGINX_CLIENT_MAX_BODY_SIZE): `lots` is not a size: write a number with an optional k, M or G suffix (like 100M)"
    );
    let flags = Flags::default().with(ProxyConfig::row("https"), "nowhere");
    let err = merged(&flags, FileConfig::default(), None).unwrap_err();
    assert!(err.to_string().starts_with("--https: `nowhere`"), "{err}");
    let err = merged(
        &Flags::default(),
        toml("\n[proxy]\nidle_timeout = \"0s\"\n"),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "difyctl.toml:3 (proxy.idle_timeout): must be longer than 0"
    );
}

#[test]
fn unknown_toml_key_is_refused_with_its_line() {
    let err = FileConfig::parse(
        Path::new("difyctl.toml"),
        "domains = []\n[proxy]\nmax_bdy = \"1M\"\n",
        &rows(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "difyctl.toml: line 3: unknown key `proxy.max_bdy` (did you mean `proxy.max_body`?)"
    );
    let err = FileConfig::parse(
        Path::new("difyctl.toml"),
        "[proxy]\nhttp = [\"a\"]\n",
        &rows(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "difyctl.toml: line 2: proxy.http: expected one value, not a list"
    );
}

#[test]
fn shipped_example_config_is_valid() {
    let file = toml(include_str!("../../assets/difyctl.example.toml"));
    let c = merged(&Flags::default(), file, None).unwrap();
    assert_eq!(c.domains, vec!["dify.example.com"]);
    assert_eq!(c.proxy.max_body, 100 << 20);
    let acme = c.acme.expect("domains give an ACME configuration");
    assert_eq!(acme.directory, LETSENCRYPT);
    assert_eq!(acme.ca_root, None, "an empty ca_root means none");
    assert_eq!(acme.hook, None);
    assert_eq!(c.backup.keep, Some(7));
    assert_eq!(c.backup.schedule.unwrap().to_string(), "30 3 * * * (UTC)");
    assert_eq!(c.backup.hook, None);
}

#[test]
fn backup_settings_name_their_origin_when_wrong() {
    let err = merged(
        &Flags::default(),
        toml("[backup]\nschedule = \"every night\"\n"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("backup.schedule") && err.contains("five cron fields"),
        "{err}"
    );
    let flags = Flags::default().with(BackupConfig::row("keep"), "0");
    let err = merged(&flags, FileConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "--keep: must be at least 1 (the backup just taken is always kept)"
    );
    let c = merged(&Flags::default(), FileConfig::default(), None).unwrap();
    assert_eq!(c.backup.dir, c.state_dir.join("backups"));
}

#[test]
fn ip_or_localhost_domains_get_self_signed_with_a_reason() {
    for domain in ["203.0.113.7", "localhost", "dify.localhost"] {
        let flags = Flags::default().with(General::row("domains"), domain);
        let c = merged(&flags, FileConfig::default(), None).unwrap();
        assert!(c.acme.is_none(), "{domain}");
        assert!(c.self_signed_reason.unwrap().contains(domain));
    }
    let c = merged(&Flags::default(), FileConfig::default(), None).unwrap();
    assert!(c.self_signed_reason.unwrap().contains("no domain"));
}

#[test]
fn acme_settings_are_checked() {
    let flags = Flags::default()
        .with(General::row("domains"), "dify.example.com")
        .with(AcmeSettings::row("challenge"), "dns-01");
    let err = merged(&flags, FileConfig::default(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--challenge: `dns-01` is not a challenge type: use http-01 or tls-alpn-01"
    );
    let file = toml("domains = [\"a.example\"]\n[acme]\ndirectory = \"letsencrypt-staging\"\nchallenge = \"tls-alpn-01\"\n");
    let acme = merged(&Flags::default(), file, None).unwrap().acme.unwrap();
    assert_eq!(acme.directory, LETSENCRYPT_STAGING);
    assert_eq!(acme.challenge, ChallengeKind::TlsAlpn01);
}

#[test]
fn listen_addresses() {
    let addr = |t: &str| parse::parse_addr(t);
    assert_eq!(
        addr("127.0.0.1:8443"),
        Some("127.0.0.1:8443".parse().unwrap())
    );
    assert_eq!(addr(":8443"), Some("0.0.0.0:8443".parse().unwrap()));
    assert_eq!(addr("8080"), Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(addr("[::]:443"), Some("[::]:443".parse().unwrap()));
    assert_eq!(addr("x"), None);
}

/// Regression (hardening, new user): domains were not checked (`https://x`, spaces), and an
/// error from a DIFYCTL_* variable blamed the flag.
#[test]
fn bad_domains_and_env_values_name_where_they_came_from() {
    for (bad, says) in [
        ("https://dify.example.com/", "is a URL"),
        ("dify.example.com:8443", "has a port"),
        ("dify example.com", "is not a domain name"),
        ("-dify.example.com", "is not a domain name"),
    ] {
        let flags = Flags::default().with(General::row("domains"), bad);
        let err = merged(&flags, FileConfig::default(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--domain: ") && err.contains(says),
            "{bad}: {err}"
        );
    }
    for good in [
        "dify.example.com",
        "*.example.com",
        "localhost",
        "203.0.113.7",
        "::1",
    ] {
        check_domain(good).unwrap();
    }
    let mut flags = Flags::default();
    flags.set(
        ProxyConfig::row("max_body"),
        Value::One("huge".into()),
        "DIFYCTL_MAX_BODY".into(),
    );
    let err = merged(&flags, FileConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("DIFYCTL_MAX_BODY: "), "{err}");
}

/// Dify's .env.example placeholders (`your_domain.com`, `your_email@example.com`) are not
/// settings: a copied .env.example must not fail on them nor register an ACME account with them.
#[test]
fn dify_placeholders_in_env_are_not_settings() {
    let e = env("CERTBOT_DOMAIN=your_domain.com\nCERTBOT_EMAIL=your_email@example.com\n");
    let c = merged(&Flags::default(), FileConfig::default(), Some(&e)).unwrap();
    assert!(c.domains.is_empty());
    assert_eq!(c.email, None);
}

#[test]
fn admin_listener_defaults_on_loopback_and_can_be_turned_off() {
    let c = merged(&Flags::default(), FileConfig::default(), None).unwrap();
    assert_eq!(c.admin.listen, Some("127.0.0.1:2019".parse().unwrap()));
    assert!(!c.admin.explicit, "a busy default is only a warning");
    let c = merged(&Flags::default(), toml("[admin]\nlisten = \"off\"\n"), None).unwrap();
    assert_eq!(c.admin.listen, None);
    let flags = Flags::default().with(AdminConfig::row("listen"), "0.0.0.0:9180");
    let c = merged(&flags, toml("[admin]\nlisten = \"off\"\n"), None).unwrap();
    assert_eq!(
        c.admin.listen,
        Some("0.0.0.0:9180".parse().unwrap()),
        "the flag wins"
    );
    assert!(c.admin.explicit);
    let err = merged(
        &Flags::default(),
        toml("[admin]\nlisten = \"metrics\"\n"),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "difyctl.toml:2 (admin.listen): `metrics` is not a listen address (like 127.0.0.1:2019), nor `off`"
    );
}
