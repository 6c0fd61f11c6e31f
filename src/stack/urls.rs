//! Dify's public URL settings, derived from the domain difyctl serves. Left at their defaults,
//! Dify behind HTTPS produces `http://localhost` links, unreachable uploaded files, plugin
//! endpoints on localhost and a WebSocket that fails (mixed content). When a domain is
//! configured, every service that reads one of these variables gets the HTTPS value, unless the
//! user gave it a value of their own (an empty value or Dify's default counts as none).

use super::model::Stack;

use crate::dify::urls::{Derive, SETTINGS};

/// Sets the URL variables from `domain` (served on `https_port`) in every service that reads
/// them and has no value of its own. Returns one line per variable set, naming the services.
pub fn apply_public_urls(stack: &mut Stack, domain: &str, https_port: u16) -> Vec<String> {
    let host = if https_port == 443 {
        domain.to_string()
    } else {
        format!("{domain}:{https_port}")
    };
    let mut notes = Vec::new();
    for (key, defaults, derive) in SETTINGS {
        let value = match derive {
            Derive::Base => format!("https://{host}"),
            Derive::Endpoint => format!("https://{host}/e/{{hook_id}}"),
            Derive::Socket => format!("wss://{host}"),
            Derive::True => "true".to_string(),
        };
        let mut set_in = Vec::new();
        for spec in &mut stack.services {
            if let Some(current) = spec.environment.get_mut(*key) {
                if defaults.contains(&current.as_str()) {
                    *current = value.clone();
                    set_in.push(spec.name.clone());
                }
            }
        }
        if !set_in.is_empty() {
            notes.push((format!("{key}={value}"), set_in));
        }
    }
    if notes.is_empty() {
        return Vec::new();
    }
    let mut services: Vec<String> = notes.iter().flat_map(|(_, s)| s.clone()).collect();
    services.sort();
    services.dedup();
    let mut lines = vec![format!(
        "Dify's URL settings derived from the domain {domain} for {} (values of your own in .env are kept):",
        services.join(", ")
    )];
    lines.extend(notes.into_iter().map(|(kv, _)| format!("  {kv}")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, Project};

    #[test]
    fn defaults_are_replaced_and_user_values_kept() {
        let dir = std::env::temp_dir().join(format!("difyctl-urls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("docker-compose.yaml"),
            "services:\n  api:\n    image: x\n    environment:\n      CONSOLE_API_URL: ${CONSOLE_API_URL:-}\n      FILES_URL: https://files.example.com\n      NEXT_PUBLIC_SOCKET_URL: ws://localhost\n  db:\n    image: y\n",
        )
        .unwrap();
        let project = Project::load(&LoadOptions {
            compose_file: dir.join("docker-compose.yaml"),
            ..LoadOptions::default()
        })
        .unwrap();
        let mut stack = Stack::from_project(&project, &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let notes = apply_public_urls(&mut stack, "dify.example.com", 443);
        let api = stack.service("api").unwrap();
        assert_eq!(
            api.environment["CONSOLE_API_URL"],
            "https://dify.example.com"
        );
        assert_eq!(
            api.environment["FILES_URL"], "https://files.example.com",
            "the user's own"
        );
        assert_eq!(
            api.environment["NEXT_PUBLIC_SOCKET_URL"],
            "wss://dify.example.com"
        );
        assert!(!stack
            .service("db")
            .unwrap()
            .environment
            .contains_key("CONSOLE_API_URL"));
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[0].contains("from the domain dify.example.com for api "),
            "{notes:?}"
        );
        assert_eq!(notes[1], "  CONSOLE_API_URL=https://dify.example.com");
    }
}
