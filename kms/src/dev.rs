//! Dev mode: a local root key file and an admin token kept in the data directory.
//!
//! Both files are written with mode 0600. Dev mode is for a laptop: the root key sits beside
//! the data it protects, so anyone who can read the directory can read every key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::auth::token::Token;
use crate::crypto::SecretKey;
use crate::engine::{Engine, EngineError};
use crate::model::Role;

/// File name of the dev root key.
pub const ROOT_FILE: &str = "INSECURE-dev-root.key";
/// File name of the dev admin token.
pub const TOKEN_FILE: &str = "dev-admin.token";

const ROOT_BANNER: &str = "# Kagi DEV MODE root key. INSECURE: never use dev mode for real data.\n";

/// Why dev-mode set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file in the data directory has unexpected contents.
    #[error("{0} is damaged; delete the dev data directory to start over")]
    Damaged(PathBuf),
    /// The admin principal could not be created.
    #[error("creating the dev admin failed: {0}")]
    Engine(#[from] EngineError),
}

/// Reads the dev root key from `dir`, creating it on first start.
pub fn load_or_create_root(dir: &Path) -> Result<SecretKey, DevError> {
    let path = dir.join(ROOT_FILE);
    if path.exists() {
        let text = zeroize::Zeroizing::new(read(&path)?);
        let hex_line = text.lines().find(|l| !l.starts_with('#')).unwrap_or("");
        let bytes = zeroize::Zeroizing::new(
            hex::decode(hex_line.trim()).map_err(|_| DevError::Damaged(path.clone()))?,
        );
        return SecretKey::from_slice(&bytes).ok_or(DevError::Damaged(path));
    }
    let root = SecretKey::generate().map_err(EngineError::from)?;
    let text = zeroize::Zeroizing::new(format!("{ROOT_BANNER}{}\n", hex::encode(root.expose())));
    write_private(&path, &text)?;
    Ok(root)
}

/// The dev admin's token: the stored one while its principal is active, else a new admin.
pub async fn admin_token(engine: &Engine, dir: &Path) -> Result<Token, DevError> {
    let path = dir.join(TOKEN_FILE);
    if path.exists() {
        let text = zeroize::Zeroizing::new(read(&path)?);
        if let Some(token) = Token::parse(text.trim())
            && crate::auth::authenticate(engine.store(), Some(token.expose()))
                .await
                .is_ok()
        {
            return Ok(token);
        }
    }
    let name = format!(
        "dev-admin-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (_, token) = engine.create_principal(&name, Role::Admin, None).await?;
    write_private(&path, &format!("{}\n", token.expose()))?;
    Ok(token)
}

fn read(path: &Path) -> Result<String, DevError> {
    fs::read_to_string(path).map_err(|source| DevError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file readable by its owner only, replacing any old one.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), DevError> {
    let io = |source| DevError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}
