//! Opening the database as every command does: in a data directory only this user can read, with
//! the secret key that seals the accounts' secrets.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use wagate_domain::sealed::OpenError;
use wagate_storage::{StorageError, Store};

use crate::api::ApiViews;
use crate::config::Config;
use crate::secret_key::{self, ENV_VAR};

/// The data directory made private, the secret key loaded (the key file created on first start),
/// the database opened with it, its events showing resources as the native API does.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    prepare_data_dir(&config.data_dir)?;
    let loaded = secret_key::load_or_create(config)?;
    match wagate_storage::connect_with_views(
        config.database_url.as_deref(),
        &config.data_dir,
        loaded.cipher(),
        Arc::new(ApiViews),
    )
    .await
    {
        Ok(store) => {
            tracing::info!(key = %loaded.key.id(), source = %loaded.source, "secrets sealed with this key");
            Ok(store)
        }
        Err(StorageError::Unsealable { account, source: OpenError::OtherKey { sealed_by, key }, .. }) => {
            let interrupted = match secret_key::interrupted_rotation(config) {
                Some(id) if id.as_str() == sealed_by => {
                    format!(" A rotation to key {id} was interrupted: run `wagate secrets rotate` to finish it.")
                }
                _ => String::new(),
            };
            Err(anyhow!(
                "the database holds secrets sealed by key {sealed_by} (account {account}), but this instance's key \
                 is {key}, from {source}. Every instance sharing a database needs the same key: set {ENV_VAR} to \
                 the same value on each.{interrupted}",
                source = loaded.source
            ))
        }
        Err(e) => Err(e).context("cannot open the database"),
    }
}

/// Creates the data directory 0700, or narrows an existing one to 0700 when it is this user's and
/// not a shared directory (sticky, as /tmp is): it holds the database, the key file and the media
/// customers sent.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    secret_key::private_dir_builder()
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        const STICKY: u32 = 0o1000;
        let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 && mode & STICKY == 0 && meta.uid() == rustix::process::geteuid().as_raw() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make the data directory {} private (0700)", dir.display()))?;
            tracing::info!(dir = %dir.display(), was = format!("{:o}", mode & 0o777), "data directory narrowed to 0700");
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_data_dir_is_made_or_narrowed_to_0700_unless_shared() {
        let root = tempfile::tempdir().unwrap();
        let made = root.path().join("a").join("data");
        prepare_data_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);

        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_data_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_data_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o1777, "a shared directory like /tmp is left alone");
    }
}
