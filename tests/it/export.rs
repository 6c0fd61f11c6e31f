//! `difyctl export kubernetes`: Dify's real compose files (the three fixtures) and the default
//! stack exported, every object validated offline against Kubernetes' published schemas
//! (kubernetes-validate, installed by the test command), golden files for a small stack, the
//! routes equal to the proxy's table, no secret outside a Secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use difyctl::export::{self, IngressKind, Options};
use difyctl::proxy::{RouteTable, Upstream, Upstreams};
use difyctl::stack::compose::{LoadOptions, Project, REPLACED_SERVICES};
use difyctl::stack::model::Stack;
use serde_json::Value;

use crate::cli::{difyctl, Scratch};

/// The Kubernetes release the objects are checked against.
const KUBERNETES: &str = "1.34.0";

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    let found: Vec<PathBuf> = ["1.13.3", "1.15.0", "1.16.0"]
        .iter()
        .map(|v| root.join(format!("dify-{v}")))
        .filter(|d| d.join("docker-compose.yaml").exists())
        .collect();
    if found.is_empty() {
        eprintln!("SKIPPED: no Dify fixture at {}", root.display());
    }
    found
}

/// The fixture's stack as a user gets it: a copy with .env = .env.example.
fn stack_of(fixture: &Path, scratch: &Scratch) -> Stack {
    let dir = scratch.path(fixture.file_name().unwrap().to_str().unwrap());
    copy_dir(fixture, &dir);
    std::fs::copy(fixture.join(".env.example"), dir.join(".env")).unwrap();
    let project = Project::load(&LoadOptions {
        compose_file: dir.join("docker-compose.yaml"),
        env_files: vec![dir.join(".env")],
        project_name: Some("dify".into()),
        profiles: Vec::new(),
        process_env: Default::default(),
        overrides: Vec::new(),
    })
    .unwrap();
    Stack::from_project(&project, &REPLACED_SERVICES).unwrap()
}

fn options(ingress: IngressKind) -> Options {
    Options {
        namespace: "dify".into(),
        storage_class: None,
        replicas: vec![("api".into(), 2)],
        ingress,
        class: "example".into(),
        domains: vec!["dify.example.com".into()],
        email: Some("ops@example.com".into()),
        acme_directory: difyctl::config::LETSENCRYPT.into(),
    }
}

/// `kubernetes-validate --strict` on every file: schema errors fail; kinds it has no schema
/// for (Gateway API, cert-manager, Kustomization) are only those.
fn validate(dir: &Path) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    // Through the interpreter: a console script pip just installed may not be on PATH yet
    // (pyenv's shims).
    let out = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES,
        ])
        .args(&files)
        .output()
        .expect("kubernetes-validate is missing: run scripts/install-test-deps.sh");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let allowed = [
        "kind Issuer",
        "kind Certificate",
        "kind Kustomization",
        "kind Gateway ",
        "kind HTTPRoute",
    ];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("WARN")
                && line.contains("Couldn't find schema")
                && allowed.iter().any(|k| line.contains(k)),
            "{}: {line}\n{text}",
            dir.display()
        );
    }
    assert!(out.status.success(), "{text}");
}

fn export_cli(dir: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let run = difyctl()
        .current_dir(dir)
        .args([
            "export",
            "kubernetes",
            "--out",
            &out.display().to_string(),
            "--domain",
            "dify.example.com",
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn dify_fixtures_and_the_default_stack_export_to_valid_objects() {
    let scratch = Scratch::new("export-valid");
    let mut dirs = Vec::new();
    for fixture in fixtures() {
        // A copy with .env = .env.example, as a user starts.
        let copy = scratch.path(fixture.file_name().unwrap().to_str().unwrap());
        copy_dir(&fixture, &copy);
        std::fs::copy(fixture.join(".env.example"), copy.join(".env")).unwrap();
        dirs.push(copy);
    }
    let default = scratch.path("default");
    let init = difyctl()
        .args(["init", "--dir", &default.display().to_string()])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    dirs.push(default);
    for dir in &dirs {
        for ingress in ["gateway", "ingress"] {
            let out = dir.join(format!("k8s-{ingress}"));
            let (code, stderr) =
                export_cli(dir, &out, &["--ingress", ingress, "--replicas", "api=2"]);
            assert_eq!(code, 0, "{}: {stderr}", dir.display());
            validate(&out);
            let kustomization = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
            for entry in std::fs::read_dir(&out).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".yaml") && name != "kustomization.yaml" {
                    assert!(
                        kustomization.contains(&name),
                        "{name} not in kustomization.yaml"
                    );
                }
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every object of every export, as JSON values.
fn all_docs(exported: &export::Export) -> Vec<&Value> {
    exported
        .files
        .iter()
        .flat_map(|(_, docs)| docs.iter())
        .collect()
}

#[test]
fn no_secret_value_appears_outside_a_secret() {
    let scratch = Scratch::new("export-secrets");
    for fixture in fixtures() {
        let stack = stack_of(&fixture, &scratch);
        let exported = export::kubernetes(&stack, &options(IngressKind::Gateway)).unwrap();
        let docs = all_docs(&exported);
        let secrets: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "Secret")
            .flat_map(|d| d["stringData"].as_object().unwrap().values())
            .filter_map(|v| v.as_str())
            .filter(|v| v.len() >= 6)
            .map(String::from)
            .collect();
        assert!(
            secrets.iter().any(|s| s.contains("difyai123456")),
            "the database password is a secret"
        );
        for d in docs.iter().filter(|d| d["kind"] != "Secret") {
            // Image names are not secrets (Dify's public sandbox key is `dify-sandbox`, as is
            // its image's name).
            let text = without_images((*d).clone()).to_string();
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{}: a secret value in {} {}",
                    fixture.display(),
                    d["kind"],
                    d["metadata"]["name"]
                );
            }
        }
    }
}

fn without_images(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            map.remove("image");
            for child in map.values_mut() {
                *child = without_images(child.take());
            }
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                *child = without_images(child.take());
            }
        }
        _ => {}
    }
    v
}

#[test]
fn the_http_route_is_the_proxy_route_table() {
    let scratch = Scratch::new("export-routes");
    for fixture in fixtures() {
        let stack = stack_of(&fixture, &scratch);
        let exported = export::kubernetes(&stack, &options(IngressKind::Gateway)).unwrap();
        let route = all_docs(&exported)
            .into_iter()
            .find(|d| d["kind"] == "HTTPRoute" && d["metadata"]["name"] == "dify")
            .unwrap()
            .clone();
        // The proxy's table for the same stack: each service at a distinct address.
        let up = |name: &str, port: u16| {
            stack.service(name).map(|_| {
                Upstream::parse(name, &format!("{}:{port}", name.replace('_', "-"))).unwrap()
            })
        };
        let ports = difyctl::upstreams::Ports::of(&stack);
        let p = |s: &str| ports.get(s).unwrap();
        let table = RouteTable::dify(&Upstreams {
            web: up("web", p("web")),
            api: up("api", p("api")),
            plugin: up("plugin_daemon", p("plugin_daemon")),
            socket: up("api_websocket", p("api_websocket")),
        });
        let rules = route["spec"]["rules"].as_array().unwrap();
        let mut prefixes = Vec::new();
        for rule in rules {
            let prefix = rule["matches"][0]["path"]["value"].as_str().unwrap();
            let backend = &rule["backendRefs"][0];
            let proxy = table
                .lookup(prefix)
                .upstream
                .as_ref()
                .expect("the proxy routes it");
            assert_eq!(
                format!("{}:{}", backend["name"].as_str().unwrap(), backend["port"]),
                proxy.authority.to_string(),
                "{prefix}"
            );
            assert_eq!(
                rule.get("filters").is_some(),
                table.lookup(prefix).hook_url,
                "{prefix}: Dify-Hook-Url"
            );
            prefixes.push(prefix.to_string());
        }
        let expected: Vec<String> = difyctl::dify::LOCATIONS
            .iter()
            .filter(|l| table.lookup(l.prefix).upstream.is_some())
            .map(|l| l.prefix.to_string())
            .collect();
        assert_eq!(prefixes, expected, "{}", fixture.display());
    }
}

/// A small stack with one of everything the export maps, compared with tests/golden/k8s-small
/// (`UPDATE_GOLDEN=1` rewrites them).
const SMALL: &str = r#"services:
  init_permissions:
    image: busybox:1.36
    command: ["sh", "-c", "chown -R 1001 /data"]
    volumes: ["./volumes/app:/data"]
    restart: "no"
  api:
    image: example/api:1
    environment:
      DB_HOST: db
      DB_PASSWORD: ${DB_PASSWORD}
      BROKER_URL: redis://:${DB_PASSWORD}@db:6379/1
      CODE_EXECUTION_ENDPOINT: http://code_sandbox:8194
    volumes: ["./volumes/app:/app/storage"]
    mem_limit: 512m
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:5001/health"]
      interval: 10s
      retries: 5
    depends_on:
      init_permissions: {condition: service_completed_successfully}
      db: {condition: service_healthy}
    networks: [default, sandboxed]
  web:
    image: example/web:1
    ports: ["3000:3000"]
  db:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD}
    volumes: ["dbdata:/var/lib/postgresql/data", "./db.conf:/etc/db.conf:ro"]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready"]
  code_sandbox:
    image: example/sandbox:1
    networks: [sandboxed]
  tool:
    image: example/tool:1
    network_mode: host
networks:
  sandboxed:
    internal: true
volumes:
  dbdata:
"#;

#[test]
fn a_small_stack_exports_as_its_golden_files() {
    let scratch = Scratch::new("export-golden");
    let dir = scratch.path("small");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yaml"), SMALL).unwrap();
    std::fs::write(dir.join(".env"), "DB_PASSWORD=s3cret-Passw0rd\n").unwrap();
    std::fs::write(dir.join("db.conf"), "max_connections = 100\n").unwrap();
    let out = dir.join("k8s");
    let (code, stderr) = export_cli(
        &dir,
        &out,
        &["--replicas", "api=3", "--email", "ops@example.com"],
    );
    assert_eq!(code, 0, "{stderr}");
    validate(&out);
    let report = std::fs::read_to_string(out.join("UNMAPPED.txt")).unwrap();
    assert!(report.contains("services.tool.network_mode:"), "{report}");
    assert!(
        report.contains("services.web.ports[0]: host port 3000"),
        "{report}"
    );
    assert!(
        stderr.contains("services.tool.network_mode:"),
        "said on stderr too: {stderr}"
    );
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/k8s-small");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for name in &names {
        let got = std::fs::read_to_string(out.join(name)).unwrap();
        if update {
            std::fs::write(golden.join(name), &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(golden.join(name))
            .unwrap_or_else(|_| panic!("no golden {name}: UPDATE_GOLDEN=1"));
        assert_eq!(
            got, want,
            "{name} differs from tests/golden/k8s-small/{name} (UPDATE_GOLDEN=1 rewrites)"
        );
    }
    let golden_names = std::fs::read_dir(&golden).unwrap().count();
    assert_eq!(golden_names, names.len(), "files written: {names:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("secrets.yaml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "secrets.yaml is the owner's only");
}

#[test]
fn replicas_of_a_service_that_does_not_scale_are_refused() {
    let scratch = Scratch::new("export-replicas");
    std::fs::write(scratch.path("docker-compose.yaml"), SMALL).unwrap();
    std::fs::write(scratch.path(".env"), "DB_PASSWORD=x\n").unwrap();
    let (code, stderr) = export_cli(&scratch.0, &scratch.path("k8s"), &["--replicas", "db=2"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--replicas db=2: only api, worker, web scale"),
        "{stderr}"
    );
    // And a folder with other files is not written into.
    std::fs::create_dir_all(scratch.path("busy")).unwrap();
    std::fs::write(scratch.path("busy/notes.txt"), "mine").unwrap();
    let (code, stderr) = export_cli(&scratch.0, &scratch.path("busy"), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds other files"), "{stderr}");
}

/// Regression (rough edges #1): the export left the URL settings empty or on localhost where
/// `up` (and `config`) derive them from the domain: the cluster ran Dify with broken links.
#[test]
fn export_carries_the_url_settings_up_derives_from_the_domain() {
    let Some(fixture) = fixtures().into_iter().find(|f| f.ends_with("dify-1.16.0")) else {
        return;
    };
    let scratch = Scratch::new("export-urls");
    let dir = scratch.path("dify");
    copy_dir(&fixture, &dir);
    std::fs::copy(fixture.join(".env.example"), dir.join(".env")).unwrap();
    let out = scratch.path("k8s");
    let (code, stderr) = export_cli(&dir, &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut all = String::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    for expected in [
        "CONSOLE_API_URL: https://dify.example.com",
        "FILES_URL: https://dify.example.com",
        "ENDPOINT_URL_TEMPLATE: https://dify.example.com/e/{hook_id}",
        "NEXT_PUBLIC_SOCKET_URL: wss://dify.example.com",
    ] {
        assert!(all.contains(expected), "{expected} missing");
    }
    assert!(!all.contains("ws://localhost") && !all.contains("http://localhost/e/"));
}
