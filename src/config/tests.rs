//! Tests of the configuration merge.
use super::*;
use std::path::Path;

fn env(text: &str) -> EnvFile {
    EnvFile::parse(Path::new("/srv/dify/.env"), text).unwrap()
}

#[test]
fn dotenv_values_apply_below_flags_and_file() {
    let e = env("NGINX_CLIENT_MAX_BODY_SIZE=15M\nNGINX_PROXY_READ_TIMEOUT=600s\nEXPOSE_NGINX_PORT=8080\nCERTBOT_DOMAIN=dify.example.com\n");
    let c = Config::merge(&Flags::default(), FileConfig::default(), Some(&e)).unwrap();
    assert_eq!(c.proxy.max_body, 15 << 20);
    assert_eq!(c.proxy.read_timeout, Duration::from_secs(600));
    assert_eq!(c.proxy.http.port(), 8080);
    assert_eq!(c.domains, vec!["dify.example.com"]);

    let flags = Flags {
        max_body: Some("1G".into()),
        ..Flags::default()
    };
    let file: FileConfig = toml::from_str("[proxy]\nread_timeout = \"5m\"\n").unwrap();
    let c = Config::merge(&flags, file, Some(&e)).unwrap();
    assert_eq!(c.proxy.max_body, 1 << 30);
    assert_eq!(c.proxy.read_timeout, Duration::from_secs(300));
}

#[test]
fn errors_name_their_origin() {
    let e = env("A=1\nNGINX_CLIENT_MAX_BODY_SIZE=lots\n");
    let err = Config::merge(&Flags::default(), FileConfig::default(), Some(&e)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/srv/dify/.env:2 (NGINX_CLIENT_MAX_BODY_SIZE): `lots` is not a size: write a number with an optional k, M or G suffix (like 100M)"
    );
    let flags = Flags {
        https: Some("nowhere".into()),
        ..Flags::default()
    };
    let err = Config::merge(&flags, FileConfig::default(), None).unwrap_err();
    assert!(err.to_string().starts_with("--https: `nowhere`"), "{err}");
}

#[test]
fn unknown_toml_key_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("difyctl-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("difyctl.toml");
    std::fs::write(&path, "domains = []\n[proxy]\nmax_bdy = \"1M\"\n").unwrap();
    let err = FileConfig::read(&path, true).unwrap_err().to_string();
    assert!(err.contains("max_bdy") && err.contains("line 3"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_example_config_is_valid() {
    let file: FileConfig =
        toml::from_str(include_str!("../../assets/difyctl.example.toml")).unwrap();
    let c = Config::merge(&Flags::default(), file, None).unwrap();
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
    let file: FileConfig = toml::from_str("[backup]\nschedule = \"every night\"\n").unwrap();
    let err = Config::merge(&Flags::default(), file, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backup.schedule") && err.contains("five cron fields"),
        "{err}"
    );
    let flags = Flags {
        backup_keep: Some(0),
        ..Flags::default()
    };
    let err = Config::merge(&flags, FileConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--keep") && err.contains("at least 1"),
        "{err}"
    );
    let c = Config::merge(&Flags::default(), FileConfig::default(), None).unwrap();
    assert_eq!(c.backup.dir, c.state_dir.join("backups"));
}

#[test]
fn ip_or_localhost_domains_get_self_signed_with_a_reason() {
    for domain in ["203.0.113.7", "localhost", "dify.localhost"] {
        let flags = Flags {
            domains: vec![domain.into()],
            ..Flags::default()
        };
        let c = Config::merge(&flags, FileConfig::default(), None).unwrap();
        assert!(c.acme.is_none(), "{domain}");
        assert!(c.self_signed_reason.unwrap().contains(domain));
    }
    let c = Config::merge(&Flags::default(), FileConfig::default(), None).unwrap();
    assert!(c.self_signed_reason.unwrap().contains("no domain"));
}

#[test]
fn acme_settings_are_checked() {
    let flags = Flags {
        domains: vec!["dify.example.com".into()],
        challenge: Some("dns-01".into()),
        ..Flags::default()
    };
    let err = Config::merge(&flags, FileConfig::default(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--challenge: `dns-01` is not a challenge type: use http-01 or tls-alpn-01"
    );
    let file: FileConfig = toml::from_str("domains = [\"a.example\"]\n[acme]\ndirectory = \"letsencrypt-staging\"\nchallenge = \"tls-alpn-01\"\n").unwrap();
    let acme = Config::merge(&Flags::default(), file, None)
        .unwrap()
        .acme
        .unwrap();
    assert_eq!(acme.directory, LETSENCRYPT_STAGING);
    assert_eq!(acme.challenge, ChallengeKind::TlsAlpn01);
}

#[test]
fn listen_addresses() {
    assert_eq!(
        parse_addr("127.0.0.1:8443", false),
        Some("127.0.0.1:8443".parse().unwrap())
    );
    assert_eq!(
        parse_addr(":8443", false),
        Some("0.0.0.0:8443".parse().unwrap())
    );
    assert_eq!(
        parse_addr("8080", true),
        Some("0.0.0.0:8080".parse().unwrap())
    );
    assert_eq!(
        parse_addr("[::]:443", false),
        Some("[::]:443".parse().unwrap())
    );
    assert_eq!(parse_addr("x", false), None);
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
        let flags = Flags {
            domains: vec![bad.into()],
            ..Flags::default()
        };
        let err = Config::merge(&flags, FileConfig::default(), None)
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
    let flags = Flags {
        max_body: Some("huge".into()),
        from_env: vec![("max-body".into(), "DIFYCTL_MAX_BODY".into())],
        ..Flags::default()
    };
    let err = Config::merge(&flags, FileConfig::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("DIFYCTL_MAX_BODY: "), "{err}");
}

/// Dify's .env.example placeholders (`your_domain.com`, `your_email@example.com`) are not
/// settings: a copied .env.example must not fail on them nor register an ACME account with them.
#[test]
fn dify_placeholders_in_env_are_not_settings() {
    let e = env("CERTBOT_DOMAIN=your_domain.com\nCERTBOT_EMAIL=your_email@example.com\n");
    let c = Config::merge(&Flags::default(), FileConfig::default(), Some(&e)).unwrap();
    assert!(c.domains.is_empty());
    assert_eq!(c.email, None);
}

#[test]
fn admin_listener_defaults_on_loopback_and_can_be_turned_off() {
    let c = Config::merge(&Flags::default(), FileConfig::default(), None).unwrap();
    assert_eq!(c.admin.listen, Some(DEFAULT_ADMIN));
    assert!(!c.admin.explicit, "a busy default is only a warning");
    let file: FileConfig = toml::from_str("[admin]\nlisten = \"off\"\n").unwrap();
    let c = Config::merge(&Flags::default(), file, None).unwrap();
    assert_eq!(c.admin.listen, None);
    let flags = Flags {
        admin: Some("0.0.0.0:9180".into()),
        ..Flags::default()
    };
    let file: FileConfig = toml::from_str("[admin]\nlisten = \"off\"\n").unwrap();
    let c = Config::merge(&flags, file, None).unwrap();
    assert_eq!(
        c.admin.listen,
        Some("0.0.0.0:9180".parse().unwrap()),
        "the flag wins"
    );
    assert!(c.admin.explicit);
    let file: FileConfig = toml::from_str("[admin]\nlisten = \"metrics\"\n").unwrap();
    let err = Config::merge(&Flags::default(), file, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "difyctl.toml (admin.listen): `metrics` is not a listen address (like 127.0.0.1:2019), nor `off`"
    );
}
