//! Dify's `.env.example` ships public secrets (the same on every install that kept them).
//! `up` finds them in the services' final environment and says so loudly.

use std::collections::BTreeSet;

use super::model::Stack;

/// Values published in Dify's `.env.example` files, with what they are.
const PUBLIC: &[(&str, &str)] = &[
    ("difyai123456", "the database / Redis password"),
    (
        "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",
        "SECRET_KEY",
    ),
    ("dify-sandbox", "the sandbox API key"),
    (
        "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
        "PLUGIN_DAEMON_KEY",
    ),
    (
        "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
        "PLUGIN_DIFY_INNER_API_KEY",
    ),
    (
        "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",
        "the Weaviate API key",
    ),
    (
        "replace-with-base64url-32-byte-secret",
        "DIFY_AGENT_SERVER_SECRET_KEY",
    ),
];

/// One line per public secret in use: what it is and the variables (with services) holding it.
pub fn public_defaults(stack: &Stack) -> Vec<String> {
    let mut found = Vec::new();
    for (value, what) in PUBLIC {
        let mut holders = BTreeSet::new();
        for s in &stack.services {
            for (k, v) in &s.environment {
                // Whole value, or embedded in a URL (CELERY_BROKER_URL=redis://:PASS@redis...).
                if v == value || v.contains(&format!(":{value}@")) {
                    holders.insert(k.clone());
                }
            }
            if s.command.iter().flatten().any(|a| a == value) {
                holders.insert(format!("{}'s command", s.name));
            }
        }
        if !holders.is_empty() {
            found.push(format!(
                "{what} is Dify's public default ({})",
                holders.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    found
}
