//! The first admin outside dev mode. A fresh store has no principal, and every admin call needs
//! a token, so on a store that never had a principal kagid creates `bootstrap-admin` and writes
//! its token to a file readable by kagid's user only. The operator creates named admins with
//! it, then revokes it (catalogue A1: no shared or default accounts stay in use). A store whose
//! admins were all revoked gets no new one: that would hand admin rights to whoever can read
//! the data directory.

use std::path::{Path, PathBuf};

use crate::dev::{DevError, write_private};
use crate::engine::{Engine, EngineError};
use crate::model::Role;

/// Principal name of the bootstrap admin.
pub const NAME: &str = "bootstrap-admin";
/// File name of its token, in the data directory.
pub const TOKEN_FILE: &str = "bootstrap-admin.token";

/// Creates the bootstrap admin on a store that never had a principal; returns the token file's
/// path when one was written.
pub async fn ensure_admin(engine: &Engine, data_dir: &Path) -> Result<Option<PathBuf>, DevError> {
    if engine
        .store()
        .has_principals()
        .await
        .map_err(EngineError::from)?
    {
        return Ok(None);
    }
    let (_, token) = match engine.create_principal(NAME, Role::Admin, None).await {
        Ok(created) => created,
        // Another kagid node on the same database made it first.
        Err(EngineError::AlreadyExists(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let path = data_dir.join(TOKEN_FILE);
    write_private(&path, &format!("{}\n", token.expose()))?;
    Ok(Some(path))
}
