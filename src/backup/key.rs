//! The install's backup key: Ed25519, made by `init` or the first backup, kept in the state
//! dir (`backup-key`, PKCS#8, 0600) and never put in an archive (whoever can read a backup
//! could otherwise sign forged ones). Every archive carries a signature over its manifest,
//! which holds each member's SHA-256: so the whole archive is signed. `restore` believes an
//! archive signed by this key or by a key given with `--trust`; the public half is what a
//! person keeps off the machine (`difyctl backup key` prints it).

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The private key's file in the state dir.
pub const FILE: &str = "backup-key";
/// How a public key is written (`difyctl-ed25519:` and 32 bytes, base64url).
const PREFIX: &str = "difyctl-ed25519:";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a backup key difyctl made (it does not parse as an Ed25519 PKCS#8 key)", .0.display())]
    Damaged(PathBuf),
    #[error("{}: readable by others (mode {mode:o}): the backup key must be 0600", path.display())]
    Exposed { path: PathBuf, mode: u32 },
    #[error("`{0}` is not a difyctl backup key (`difyctl backup key` prints one: {PREFIX}...)")]
    BadPublic(String),
    #[error("the system random generator failed")]
    Random,
}

/// A public backup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0);
        write!(f, "{PREFIX}{b64}")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        let bad = || KeyError::BadPublic(s.chars().take(80).collect());
        let b64 = s.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| bad())?;
        Ok(PublicKey(bytes.try_into().map_err(|_| bad())?))
    }
}

impl PublicKey {
    /// `--trust KEY`: the key itself, or a file holding it.
    pub fn parse_arg(arg: &str) -> Result<PublicKey, KeyError> {
        if arg.trim().starts_with(PREFIX) {
            return arg.parse();
        }
        let path = Path::new(arg);
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            action: "cannot read the key (give the key itself, or a file holding it)".into(),
            source,
        })?;
        text.trim().parse()
    }

    /// Whether `sig` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ED25519, self.0)
            .verify(message, sig)
            .is_ok()
    }
}

/// The signature member of an archive (`manifest.sig`, after `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub algorithm: String,
    pub key: String,
    /// Of the manifest's exact bytes, base64url.
    pub signature: String,
}

pub struct BackupKey {
    pair: Ed25519KeyPair,
    pub path: PathBuf,
}

impl BackupKey {
    pub fn public(&self) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(out)
    }

    pub fn sign(&self, manifest: &[u8]) -> Signature {
        let sig = self.pair.sign(manifest);
        Signature {
            algorithm: "ed25519".into(),
            key: self.public().to_string(),
            signature: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref()),
        }
    }

    /// The key of this state dir, if there is one.
    pub fn load(state_dir: &Path) -> Result<Option<BackupKey>, KeyError> {
        let path = state_dir.join(FILE);
        let der = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    path,
                    action: "cannot read the backup key".into(),
                    source,
                })
            }
        };
        let mode = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o600);
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path, mode });
        }
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| KeyError::Damaged(path.clone()))?;
        Ok(Some(BackupKey { pair, path }))
    }

    /// The key of this state dir, made (0600) when there is none.
    pub fn load_or_create(state_dir: &Path) -> Result<BackupKey, KeyError> {
        if let Some(k) = BackupKey::load(state_dir)? {
            return Ok(k);
        }
        let path = state_dir.join(FILE);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        crate::fsutil::create_private_dir(state_dir).map_err(|source| KeyError::Io {
            path: state_dir.to_path_buf(),
            action: "cannot create the state directory".into(),
            source,
        })?;
        crate::fsutil::write_atomic(&path, doc.as_ref(), 0o600).map_err(|source| KeyError::Io {
            path: path.clone(),
            action: "cannot write the backup key".into(),
            source,
        })?;
        BackupKey::load(state_dir)?.ok_or(KeyError::Damaged(path))
    }
}

/// The signature's key and whether it signs `manifest`.
pub fn check(manifest: &[u8], sig: &Signature) -> Option<(PublicKey, bool)> {
    let key: PublicKey = sig.key.parse().ok()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&sig.signature)
        .ok()?;
    let valid = sig.algorithm == "ed25519" && key.verifies(manifest, &bytes);
    Some((key, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_and_bytes() {
        let dir = std::env::temp_dir().join(format!("difyctl-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = BackupKey::load_or_create(&dir).unwrap();
        let again = BackupKey::load_or_create(&dir).unwrap();
        assert_eq!(key.public(), again.public(), "made once, then kept");
        let sig = key.sign(b"manifest");
        assert_eq!(check(b"manifest", &sig), Some((key.public(), true)));
        assert_eq!(check(b"manifest!", &sig).map(|c| c.1), Some(false));
        let printed = key.public().to_string();
        assert_eq!(printed.parse::<PublicKey>().unwrap(), key.public());
        assert!("difyctl-ed25519:abc".parse::<PublicKey>().is_err());
        let mode = std::fs::metadata(dir.join(FILE)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
