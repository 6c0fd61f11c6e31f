//! The user's hook commands (`[acme] hook`, `[backup] hook`): run through `sh -c` after each
//! certificate attempt or backup, with the outcome in `DIFYCTL_*` variables, for at most 60 s.
//! A failing hook is logged; it never changes the outcome it reports.

use std::time::Duration;

/// Runs `hook` (nothing when empty) with `env` set; `what` names it in log lines.
pub async fn run(hook: Option<&str>, env: &[(&str, String)], what: &str) {
    let Some(hook) = hook.filter(|h| !h.trim().is_empty()) else {
        return;
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(hook).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match tokio::time::timeout(Duration::from_secs(60), cmd.status()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => tracing::warn!(hook, %status, "{what} hook failed"),
        Ok(Err(e)) => tracing::warn!(hook, "{what} hook could not run: {e}"),
        Err(_) => tracing::warn!(hook, "{what} hook still running after 60 s: stopped"),
    }
}
