//! HTTP-01 challenge tokens: the certificate manager puts `token -> key authorization` here and
//! the :80 listener answers `/.well-known/acme-challenge/<token>` from it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Default)]
pub struct ChallengeTokens(Arc<RwLock<HashMap<String, String>>>);

pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

impl ChallengeTokens {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, key_authorization);
    }

    pub fn remove(&self, token: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    pub fn get(&self, token: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}
