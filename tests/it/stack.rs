//! Dify's real compose files (../shared/fixtures, never copied into the repo) through the
//! compose model and `difyctl config`.

use std::path::PathBuf;

use difyctl::stack::compose::{LoadOptions, Project, REPLACED_SERVICES};

use crate::cli::{difyctl, Scratch};

fn fixture(version: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(format!("dify-{version}"));
    if dir.join("docker-compose.yaml").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: Dify {version} fixture not found at {}",
            dir.display()
        );
        None
    }
}

fn load(dir: &std::path::Path, profiles: &[&str]) -> Project {
    Project::load(&LoadOptions {
        compose_file: dir.join("docker-compose.yaml"),
        env_files: vec![dir.join(".env.example")],
        project_name: None,
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        process_env: Default::default(),
        overrides: Vec::new(),
    })
    .unwrap()
}

fn enabled(project: &Project) -> Vec<String> {
    project
        .enabled_services(&REPLACED_SERVICES)
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

/// Services without a profile, plus those of COMPOSE_PROFILES from `.env.example`
/// (`${VECTOR_STORE:-weaviate},${DB_TYPE:-postgresql}`, and `collaboration` in 1.15), minus
/// nginx and certbot.
#[test]
fn dify_1_13_3_default_services_and_api_environment() {
    let Some(dir) = fixture("1.13.3") else { return };
    let project = load(&dir, &[]);
    assert_eq!(project.profiles, vec!["weaviate", "postgresql"]);
    assert_eq!(
        enabled(&project),
        [
            "init_permissions",
            "api",
            "worker",
            "worker_beat",
            "web",
            "db_postgres",
            "redis",
            "sandbox",
            "plugin_daemon",
            "ssrf_proxy",
            "weaviate"
        ]
    );
    assert_eq!(
        project.name, "dify-1133",
        "compose keeps only [a-z0-9_-] of the folder name"
    );
    let api = &project
        .services
        .iter()
        .find(|s| s.name == "api")
        .unwrap()
        .definition;
    let env = api["environment"].as_object().unwrap();
    assert!(
        env.len() > 500,
        "the shared anchor was merged: {} keys",
        env.len()
    );
    assert_eq!(env["MODE"], "api");
    assert_eq!(env["DB_HOST"], "db_postgres", "defaults applied");
    assert_eq!(env["DB_PASSWORD"], "difyai123456");
    // Regression: plain braces inside a default (`{hook_id}`) must balance, not end it.
    assert_eq!(env["ENDPOINT_URL_TEMPLATE"], "http://localhost/e/{hook_id}");
}

#[test]
fn dify_1_15_0_default_services() {
    let Some(dir) = fixture("1.15.0") else { return };
    let project = load(&dir, &[]);
    assert_eq!(
        project.profiles,
        vec!["weaviate", "postgresql", "collaboration"]
    );
    assert_eq!(
        enabled(&project),
        [
            "init_permissions",
            "api",
            "api_websocket",
            "worker",
            "worker_beat",
            "web",
            "db_postgres",
            "redis",
            "sandbox",
            "local_sandbox",
            "plugin_daemon",
            "agent_backend",
            "ssrf_proxy",
            "weaviate"
        ]
    );
    let waves = project.start_order(&REPLACED_SERVICES).unwrap();
    let wave_of = |name: &str| {
        waves
            .iter()
            .position(|w| w.iter().any(|s| s == name))
            .unwrap()
    };
    assert!(
        wave_of("db_postgres") < wave_of("api") && wave_of("redis") < wave_of("api"),
        "{waves:?}"
    );
    assert!(wave_of("init_permissions") < wave_of("api"), "{waves:?}");
    let with_mysql = load(&dir, &["mysql"]);
    assert!(
        enabled(&with_mysql).contains(&"db_mysql".to_string()),
        "--profile adds to COMPOSE_PROFILES"
    );
}

#[test]
fn config_services_command_on_a_fixture() {
    let Some(dir) = fixture("1.13.3") else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .arg("-f")
        .arg(dir.join("docker-compose.yaml"))
        .arg("--env-file")
        .arg(dir.join(".env.example"))
        .args(["config", "--services"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("init_permissions"));
    assert!(!names.contains(&"nginx".to_string()) && !names.contains(&"certbot".to_string()));
    assert_eq!(names.len(), 11);
}

#[test]
fn missing_required_variable_is_an_error_naming_file_and_key() {
    let dir = std::env::temp_dir().join(format!("difyctl-stack-required-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yaml"), "services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD in .env}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .current_dir(&dir)
        .args(["config", "--services"])
        .env_remove("DB_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: docker-compose.yaml: services.db.environment.POSTGRES_PASSWORD: required variable DB_PASSWORD is missing a value: set DB_PASSWORD in .env"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `config` output is itself a compose file: reading it again gives the same project.
#[test]
fn config_output_reads_back_the_same() {
    let Some(dir) = fixture("1.13.3") else { return };
    let run = |args: &[&str], cwd: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let compose = dir.join("docker-compose.yaml").display().to_string();
    let env = dir.join(".env.example").display().to_string();
    let first = run(
        &["-f", &compose, "--env-file", &env, "config", "--json"],
        &dir,
    );
    let scratch = std::env::temp_dir().join(format!("difyctl-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(
        scratch.join("docker-compose.yaml"),
        run(&["-f", &compose, "--env-file", &env, "config"], &dir),
    )
    .unwrap();
    // Without the .env, the profiles it enabled are given on the command line.
    let again = run(
        &[
            "-p",
            "dify-1133",
            "--env-file",
            "/dev/null",
            "config",
            "--json",
            "--profile",
            "weaviate",
            "--profile",
            "postgresql",
        ],
        &scratch,
    );
    std::fs::remove_dir_all(&scratch).unwrap();
    let a: serde_json::Value = serde_json::from_str(&first).unwrap();
    let b: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(a, b);
    assert!(
        first.contains("$${FLAG_FILE}") || !first.contains("FLAG_FILE"),
        "literal dollars escaped"
    );
}

/// The typed model the engine uses accepts both Dify releases: every default service has an
/// image, its binds resolve inside the compose folder, api's env_file list (optional files)
/// and environment merge, and the networks and volumes get compose's names.
#[test]
fn dify_fixtures_type_into_the_engine_model() {
    use difyctl::stack::model::Stack;
    use difyctl::stack::mounts::Source;
    for version in ["1.13.3", "1.15.0", "1.16.0"] {
        let Some(fixture) = fixture(version) else {
            continue;
        };
        // Dify's api reads ./.env as an env_file (the user copies .env.example there), so the
        // fixture runs from a scratch copy.
        let scratch = Scratch::new(&format!("model-{version}"));
        let dir = scratch.0.clone();
        std::fs::copy(
            fixture.join("docker-compose.yaml"),
            dir.join("docker-compose.yaml"),
        )
        .unwrap();
        std::fs::copy(fixture.join(".env.example"), dir.join(".env")).unwrap();
        std::fs::copy(fixture.join(".env.example"), dir.join(".env.example")).unwrap();
        let project = load(&dir, &[]);
        let stack = Stack::from_project(&project, &REPLACED_SERVICES)
            .unwrap_or_else(|e| panic!("{version}: {}", difyctl::error_chain(&e)));
        assert_eq!(
            stack
                .services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            enabled(&project)
        );
        let api = stack.service("api").unwrap();
        assert!(
            api.image.starts_with("langgenius/dify-api:"),
            "{}",
            api.image
        );
        assert!(api.environment.contains_key("SECRET_KEY"), "{version}");
        if version == "1.16.0" {
            // local_sandbox's environment is a list there (`- KEY=value`).
            let sandbox = stack
                .service("local_sandbox")
                .expect("local_sandbox runs by default");
            assert!(
                sandbox.environment.contains_key("SHELLCTL_AUTH_TOKEN"),
                "{:?}",
                sandbox.environment
            );
        }
        for m in &api.mounts {
            if let Source::Bind(path) = &m.source {
                assert!(path.starts_with(&dir), "{version}: {}", path.display());
            }
        }
        let db = stack
            .services
            .iter()
            .find(|s| s.name.starts_with("db"))
            .unwrap();
        assert!(
            db.healthcheck.is_some(),
            "{version}: {} has its healthcheck",
            db.name
        );
        let ssrf = stack.network("ssrf_proxy_network").unwrap();
        assert!(ssrf.internal, "{version}");
        assert_eq!(
            ssrf.docker_name,
            format!("{}_ssrf_proxy_network", project.name)
        );
    }
}

/// `.env.example` kept as is: its public secrets are found, by variable.
#[test]
fn public_default_secrets_of_the_fixture_are_found() {
    let Some(dir) = fixture("1.13.3") else { return };
    let project = load(&dir, &[]);
    let stack = difyctl::stack::model::Stack::from_project(&project, &REPLACED_SERVICES).unwrap();
    let found = difyctl::stack::secrets::public_defaults(&stack);
    let text = found.join("\n");
    for needle in [
        "DB_PASSWORD",
        "REDIS_PASSWORD",
        "CELERY_BROKER_URL",
        "SECRET_KEY",
        "SANDBOX_API_KEY",
        "PLUGIN_DAEMON_KEY",
        "PLUGIN_DIFY_INNER_API_KEY",
        "WEAVIATE_API_KEY",
    ] {
        assert!(text.contains(needle), "{needle} not reported:\n{text}");
    }
}

/// A `docker-compose.override.yaml` beside the main file is read as compose reads it (a user's
/// customisations must not be silently dropped), and `-f a -f b` merges in order.
#[test]
fn override_file_and_repeated_f_are_merged() {
    let scratch = Scratch::new("override");
    let dir = &scratch.0;
    std::fs::write(
        dir.join("docker-compose.yaml"),
        "services:\n  api:\n    image: api:1\n    environment:\n      MODE: api\n  web:\n    image: web:1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docker-compose.override.yaml"),
        "services:\n  api:\n    environment:\n      - LOG_LEVEL=DEBUG\n  extra:\n    image: extra:1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("later.yaml"),
        "services:\n  web:\n    image: web:2\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = difyctl().current_dir(dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let merged = run(&["config", "--json"]);
    assert_eq!(merged["services"]["api"]["environment"]["MODE"], "api");
    assert_eq!(
        merged["services"]["api"]["environment"]["LOG_LEVEL"],
        "DEBUG"
    );
    assert_eq!(merged["services"]["extra"]["image"], "extra:1");
    let explicit = run(&[
        "-f",
        "docker-compose.yaml",
        "-f",
        "later.yaml",
        "config",
        "--json",
    ]);
    assert_eq!(explicit["services"]["web"]["image"], "web:2");
    assert!(
        explicit["services"].get("extra").is_none(),
        "-f given: no implicit override file"
    );
}

/// `service_healthy` on a service the compose file gives no healthcheck loads (compose loads
/// it: the image may define one) with a warning that names both; `up` decides (see
/// engine::service_healthy_uses_the_images_healthcheck_or_names_its_absence).
#[test]
fn service_healthy_without_a_healthcheck_in_the_file_is_a_warning() {
    let scratch = Scratch::new("nohc");
    let dir = &scratch.0;
    std::fs::write(
        dir.join("docker-compose.yaml"),
        "services:\n  db:\n    image: db\n  api:\n    image: api\n    depends_on:\n      db: {condition: service_healthy}\n",
    )
    .unwrap();
    let out = difyctl()
        .current_dir(dir)
        .args(["config", "--services"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "warning: services.api.depends_on.db: condition service_healthy, but db has no healthcheck in the compose file"
        ),
        "{err}"
    );
}

/// `include` and `extends: {file}` read other folders' files as compose does: each file's
/// relative paths (binds, env files) against its own folder, the included project's `.env`
/// for its interpolation, env_file values inlined by `config`; an override's `!reset` drops
/// what the main file set.
#[test]
fn include_extends_and_reset_resolve_like_compose() {
    let scratch = Scratch::new("include");
    let dir = &scratch.0;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "compose.yaml",
        "include:\n  - sub/compose.yaml\nservices:\n  app:\n    image: app:1\n    ports: ['8080:80']\n    extends: {file: common/base.yaml, service: base}\n",
    );
    write(
        "compose.override.yaml",
        "services:\n  app:\n    ports: !reset []\n",
    );
    write(
        "sub/compose.yaml",
        "services:\n  imported:\n    image: nginx\n    container_name: ${SOURCE:-none}\n    env_file: ./extra.env\n    volumes: ['./data:/data']\n",
    );
    write("sub/.env", "SOURCE=from-sub-env\n");
    write("sub/extra.env", "A=1\n");
    write(
        "common/base.yaml",
        "services:\n  base:\n    image: base:1\n    volumes: ['./cfg:/cfg:ro']\n    env_file: base.env\n",
    );
    write("common/base.env", "B=2\n");
    let out = difyctl()
        .current_dir(dir)
        .args(["config", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (app, imported) = (&doc["services"]["app"], &doc["services"]["imported"]);
    let root = std::fs::canonicalize(dir).unwrap_or(dir.clone());
    let under = |v: &serde_json::Value, folder: &str| {
        let text = v.as_str().unwrap_or_default().to_string();
        text.starts_with(&format!("{}/{folder}", dir.display()))
            || text.starts_with(&format!("{}/{folder}", root.display()))
    };
    assert_eq!(imported["container_name"], "from-sub-env");
    assert_eq!(imported["environment"]["A"], "1");
    assert!(
        under(&imported["volumes"][0], "sub/data:/data"),
        "{imported}"
    );
    assert_eq!(app["image"], "app:1", "the service's own keys win");
    assert_eq!(app["environment"]["B"], "2");
    assert!(under(&app["volumes"][0], "common/cfg:/cfg:ro"), "{app}");
    assert!(app.get("extends").is_none());
    assert!(
        app.get("ports").is_none(),
        "!reset dropped the ports: {app}"
    );
}
