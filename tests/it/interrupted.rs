//! A difyctl killed at the worst moment, on a real Docker engine: at each step of `up
//! --no-proxy` while a serving `up` runs, while a backup holds services paused, at each step of
//! an upgrade; its output pipe closed mid-reconcile; `up` meeting a backup's pause. The stack
//! heals: nothing is left removed, paused or half written. `DIFYCTL_FAILPOINT` stops the
//! process at the named step so it is killed exactly there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{docker, inspect, TestStack};

/// difyctl in the stack's folder with `DIFYCTL_FAILPOINT=step`, returned once it stopped there.
#[allow(clippy::zombie_processes)]
fn stopped_at(stack: &TestStack, step: &str, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .current_dir(&stack.dir)
        .env_remove("RUST_LOG")
        .env("DIFYCTL_FAILPOINT", step)
        .args(["-p", &stack.project, "--state-dir", "state"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                if line.contains(&format!("failpoint {step}")) {
                    return child;
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("difyctl never reached {step}:\n{seen}");
            }
        }
    }
}

fn kill9(mut child: Child) {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

async fn running(name: &str) -> bool {
    docker()
        .await
        .inspect_container(name, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .is_some_and(|s| s.running == Some(true) && s.paused != Some(true))
}

async fn within(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{what} within {secs}s");
}

fn small_stack(tag: &str) -> TestStack {
    let compose = r#"services:
  api:
    image: ${IMAGE}
    command: ["api=0.0.0.0:5001"]
    environment:
      GENERATION: ${GENERATION:-1}
    healthcheck: {test: ["CMD", "/testserver", "probe", "http://127.0.0.1:5001/health"], interval: 1s, retries: 30}
    restart: always
  web:
    image: ${IMAGE}
    command: ["web=0.0.0.0:3000"]
    restart: always
"#;
    TestStack::new(tag, compose, "")
}

/// `up --no-proxy` killed after removing api's container, after creating the new one, and
/// while waiting for its health: the serving `up` (or the journal's next reader) makes sure
/// api runs again within seconds, and requests through the proxy are answered.
#[tokio::test]
async fn up_killed_at_each_step_leaves_no_service_down() {
    let stack = small_stack("killup");
    stack.up(&[]);
    let serving = stack.serve(60);
    let api = format!("{}-api-1", stack.project);
    for (n, step) in [
        "reconcile:removed:api",
        "reconcile:created:api",
        "reconcile:health:api",
    ]
    .into_iter()
    .enumerate()
    {
        // A change that recreates api.
        stack.set_env(&format!("GENERATION={}\n", n + 2));
        let child = stopped_at(&stack, step, &["up", "--no-proxy", "--wait-timeout", "30"]);
        kill9(child);
        let journal = stack
            .dir
            .join(format!("state/journal/{}.reconcile.json", stack.project));
        within(
            30,
            &format!("{step}: api running again, the journal finished"),
            async || running(&api).await && !journal.exists(),
        )
        .await;
        let root = serving.root.clone();
        let addr = serving.addr;
        within(30, &format!("{step}: api answering through the proxy"), async || {
            let Ok(Ok(mut io)) = tokio::time::timeout(
                Duration::from_secs(5),
                crate::support::tls_connect(addr, std::slice::from_ref(&root), &[b"http/1.1"]),
            )
            .await
            else {
                return false;
            };
            use tokio::io::AsyncWriteExt;
            let _ = io
                .write_all(b"GET /console/api/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            matches!(
                tokio::time::timeout(Duration::from_secs(10), crate::support::read_response(&mut io)).await,
                Ok(Ok(r)) if r.status == 200
            )
        })
        .await;
    }
    let (code, out, err) = stack.difyctl(&["--state-dir", "state", "ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("pending:"), "nothing left pending: {out}");
    drop(serving);
}

/// A backup killed while it holds the api paused: the serving `up` unpauses it within
/// seconds; without one, the next command does.
#[tokio::test]
async fn a_backup_killed_during_its_pause_leaves_nothing_paused() {
    let stack = TestStack::with_image(
        "killbackup",
        &crate::backup::stand_in(),
        "DB_PASSWORD=pw-kill\nREDIS_PASSWORD=redis-kill\n",
        crate::images::app_image(),
    );
    stack.up(&[]);
    let api = format!("{}-api-1", stack.project);
    let backups = stack.dir.join("backups");
    let to = backups.to_str().unwrap();

    let serving = stack.serve(60);
    kill9(stopped_at(&stack, "backup:paused", &["backup", "--to", to]));
    assert!(!running(&api).await, "the failpoint holds api paused");
    within(20, "the serving up unpaused api", async || {
        running(&api).await
    })
    .await;
    drop(serving);

    kill9(stopped_at(&stack, "backup:paused", &["backup", "--to", to]));
    assert!(!running(&api).await);
    let (code, _, err) = stack.difyctl(&["--state-dir", "state", "ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unpaused") && err.contains("killed"), "{err}");
    assert!(running(&api).await, "ps unpaused it");
    let partials: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
        .collect();
    assert!(
        partials.is_empty(),
        "no archive that looks complete: {partials:?}"
    );
}

/// `up --no-proxy` while a live backup holds a service paused waits for it, for at most
/// --wait-timeout, and then names the backup; once the backup is gone, `up` goes on.
#[tokio::test]
async fn up_during_a_backup_pause_waits_then_names_the_backup() {
    let stack = TestStack::with_image(
        "pauseup",
        &crate::backup::stand_in(),
        "DB_PASSWORD=pw-pause\nREDIS_PASSWORD=redis-pause\n",
        crate::images::app_image(),
    );
    stack.up(&[]);
    let backups = stack.dir.join("backups");
    let backup = stopped_at(
        &stack,
        "backup:paused",
        &["backup", "--to", backups.to_str().unwrap()],
    );
    let (code, _, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "up",
        "--no-proxy",
        "--wait-timeout",
        "3",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("waiting for the backup")
            && err.contains(&format!("pid {}", backup.id()))
            && err.contains("paused for more than 3s"),
        "{err}"
    );
    kill9(backup);
    let (code, _, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "up",
        "--no-proxy",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(running(&format!("{}-api-1", stack.project)).await);
}

/// A closed pipe on stdout and stderr (`up | head -1`) ends the printing, not the reconcile:
/// it finishes and exits 0, every service up.
#[tokio::test]
async fn a_closed_output_pipe_mid_reconcile_finishes_the_reconcile() {
    let stack = small_stack("pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .current_dir(&stack.dir)
        .env_remove("RUST_LOG")
        .args([
            "-p",
            &stack.project,
            "up",
            "--no-proxy",
            "--wait-timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader reads one line and goes away, as `head -1` does.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    let _ = err.read_line(&mut first);
    drop(err);
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "after {first:?}");
    for s in ["api", "web"] {
        assert!(
            running(&format!("{}-{s}-1", stack.project)).await,
            "{s} is up"
        );
    }
}

/// An upgrade killed while writing its files, then any command: the previous files entirely;
/// killed after writing them: the new release entirely (rolled forward), which `--undo` takes
/// back with the data of before.
#[tokio::test]
async fn an_upgrade_killed_at_each_step_leaves_one_release_or_the_other() {
    use crate::upgrade::{psql, release, tag_app};
    tag_app("v1").await;
    tag_app("v2").await;
    let root = crate::cli::Scratch::new(&format!("killupgrade-{}", std::process::id()));
    let v1 = release(&root.0, "v1", "v1", "1", false);
    let v2 = release(&root.0, "v2", "v2", "2", false);
    let v1_compose = std::fs::read_to_string(v1.join("docker-compose.yaml")).unwrap();
    let v2_compose = std::fs::read_to_string(v2.join("docker-compose.yaml")).unwrap();
    let stack = TestStack::with_image(
        "killupg",
        &v1_compose,
        "DB_PASSWORD=users-own\nREDIS_PASSWORD=redis-own\n",
        crate::images::app_image(),
    );
    stack.up(&[]);
    let env_before = std::fs::read_to_string(stack.dir.join(".env")).unwrap();
    let upgrade = [
        "upgrade",
        "--from",
        v2.to_str().unwrap(),
        "--yes",
        "--wait-timeout",
        "60",
    ];
    let compose = || std::fs::read_to_string(stack.dir.join("docker-compose.yaml")).unwrap();

    kill9(stopped_at(&stack, "upgrade:wrote-one", &upgrade));
    let (code, _, err) = stack.difyctl(&["--state-dir", "state", "ps"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(
        compose(),
        v1_compose,
        "the previous release's files, all of them"
    );
    assert_eq!(
        std::fs::read_to_string(stack.dir.join(".env")).unwrap(),
        env_before
    );

    kill9(stopped_at(&stack, "upgrade:switching", &upgrade));
    let (code, _, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "up",
        "--no-proxy",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rolled forward"), "{err}");
    assert_eq!(
        compose(),
        v2_compose,
        "the new release's files, all of them"
    );
    assert_eq!(
        psql(&stack.project, "SELECT version_num FROM alembic_version").await,
        "2"
    );

    let (code, out, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "upgrade",
        "--undo",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(compose(), v1_compose);
    assert_eq!(
        psql(&stack.project, "SELECT version_num FROM alembic_version").await,
        "1"
    );
    assert_eq!(
        inspect(&format!("{}-api-1", stack.project))
            .await
            .config
            .unwrap()
            .image
            .unwrap(),
        "difyctl-testapp:v1"
    );
    let _ = Path::new("");
}
