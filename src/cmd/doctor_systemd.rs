//! `doctor`'s checks of what the systemd unit allows: under `ProtectSystem=strict` only the
//! unit's `ReadWritePaths` (and its state directory) can be written, so a `[backup] dir` on
//! another disk fails at 03:30 unless it is listed; `ProtectHome=true` hides /home and /root,
//! where a backup hook's `~/.ssh` key lives. Read from the installed unit file, when there is
//! one.

use std::path::{Path, PathBuf};

use super::doctor::{finding, Finding, Status};

/// The installed unit (drop-ins of `systemctl edit` included), if any.
fn unit_text() -> Option<String> {
    let main = std::fs::read_to_string("/etc/systemd/system/difyctl.service").ok()?;
    let mut text = main;
    let dropins = Path::new("/etc/systemd/system/difyctl.service.d");
    for e in std::fs::read_dir(dropins).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "conf") {
            text.push('\n');
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    Some(text)
}

/// `KEY=...` values of the unit, in order (an empty value resets the list, as systemd does).
fn values(unit: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) else {
            continue;
        };
        if v.trim().is_empty() {
            out.clear();
        }
        out.extend(
            v.split_whitespace()
                .map(|p| p.trim_start_matches(['-', '+']).to_string()),
        );
    }
    out
}

/// Findings for the backup folder and hook under the unit (none without a unit).
pub fn checks(backup_dir: &Path, hook: Option<&str>, state_dir: &Path) -> Vec<Finding> {
    let Some(unit) = unit_text() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let strict = values(&unit, "ProtectSystem")
        .last()
        .is_some_and(|v| v == "strict");
    let writable: Vec<PathBuf> = values(&unit, "ReadWritePaths")
        .into_iter()
        .map(PathBuf::from)
        .chain(std::iter::once(state_dir.to_path_buf()))
        .collect();
    if strict && !writable.iter().any(|w| backup_dir.starts_with(w)) {
        out.push(finding(
            "systemd",
            Status::Warn,
            format!(
                "the unit runs with ProtectSystem=strict and {} is not in its ReadWritePaths: scheduled backups there fail",
                backup_dir.display()
            ),
            &format!("`systemctl edit difyctl`: [Service] ReadWritePaths={}", backup_dir.display()),
        ));
    }
    let protect_home = values(&unit, "ProtectHome")
        .last()
        .is_some_and(|v| v == "true" || v == "yes" || v == "read-only" || v == "tmpfs");
    let homes = ["~", "/home/", "/root", "$HOME"];
    if let Some(hook) = hook.filter(|h| protect_home && homes.iter().any(|x| h.contains(x))) {
        out.push(finding(
            "systemd",
            Status::Warn,
            format!("the unit hides /home and /root (ProtectHome), which the backup hook uses: `{hook}`"),
            "keep the hook's key and script elsewhere (/etc/difyctl), or `systemctl edit difyctl`: ProtectHome=read-only",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_values_accumulate_and_reset_as_systemd_reads_them() {
        let unit = "ReadWritePaths=/var/lib/difyctl -/opt/dify\nReadWritePaths=/srv/backup\nProtectHome=true\n";
        assert_eq!(
            super::values(unit, "ReadWritePaths"),
            ["/var/lib/difyctl", "/opt/dify", "/srv/backup"]
        );
        assert_eq!(
            super::values(&format!("{unit}ReadWritePaths=\n"), "ReadWritePaths"),
            Vec::<String>::new()
        );
    }
}
