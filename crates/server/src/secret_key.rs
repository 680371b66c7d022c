//! The key that seals accounts' secrets in the database: `WAGATE_SECRET_KEY`, or else a key file
//! (`secret.key` in the data directory unless `secret_key_file` names another), created on first
//! start; and its rotation.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use wagate_domain::sealed::{Cipher, KeyId, SecretKey};

use crate::config::Config;

pub const ENV_VAR: &str = "WAGATE_SECRET_KEY";
pub const FILE_NAME: &str = "secret.key";

/// Where the key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment => f.write_str(ENV_VAR),
            Self::File(path) => write!(f, "the key file {}", path.display()),
        }
    }
}

pub struct LoadedKey {
    pub key: SecretKey,
    pub source: KeySource,
}

impl LoadedKey {
    pub fn cipher(&self) -> Cipher {
        Cipher::new(&self.key)
    }
}

pub fn key_file(config: &Config) -> PathBuf {
    config.secret_key_file.clone().unwrap_or_else(|| config.data_dir.join(FILE_NAME))
}

/// The key from `WAGATE_SECRET_KEY`, else from the key file, which is created when missing.
pub fn load_or_create(config: &Config) -> anyhow::Result<LoadedKey> {
    if let Some(loaded) = load(config)? {
        return Ok(loaded);
    }
    let path = key_file(config);
    let key = create_key_file(&path)?;
    Ok(LoadedKey { key, source: KeySource::File(path) })
}

/// The key from `WAGATE_SECRET_KEY`, else from the key file; `None` when there is neither.
pub fn load(config: &Config) -> anyhow::Result<Option<LoadedKey>> {
    if let Some(text) = &config.secret_key {
        let key = SecretKey::from_base64(text.expose()).map_err(|e| anyhow!("{ENV_VAR} {e}"))?;
        return Ok(Some(LoadedKey { key, source: KeySource::Environment }));
    }
    let path = key_file(config);
    Ok(read_key_file(&path)?.map(|key| LoadedKey { key, source: KeySource::File(path) }))
}

/// The key a file holds; `None` when there is no such file.
pub fn read_key_file(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the secret key file {}", path.display())),
    };
    SecretKey::from_base64(&text).map(Some).map_err(|e| anyhow!("the secret key file {} {e}", path.display()))
}

/// The key of a rotation that stopped after writing its new key (see [`rotate`]).
pub fn interrupted_rotation(config: &Config) -> Option<KeyId> {
    if config.secret_key.is_some() {
        return None;
    }
    read_key_file(&pending_file(&key_file(config))).ok().flatten().map(|k| k.id())
}

/// Creates the key file with a new key, readable by this user only, without ever replacing one:
/// written whole under a name of its own, then linked into place, so that instances starting
/// together all take the first one's key.
fn create_key_file(path: &Path) -> anyhow::Result<SecretKey> {
    let cannot = || format!("cannot create the secret key file {} (or set {ENV_VAR})", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir_builder().create(dir).with_context(cannot)?;
    }
    let key = SecretKey::generate();
    let tmp = beside(path, &format!(".{}.tmp", wagate_domain::id::new_id("k")));
    write_key(&tmp, &key).with_context(cannot)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path).with_context(cannot)?;
            tracing::info!(
                path = %path.display(),
                key = %key.id(),
                "created the secret key file; back it up with the database: the accounts' secrets cannot be read without it"
            );
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key_file(path)?.with_context(cannot),
        Err(e) => Err(e).with_context(cannot),
    }
}

/// What [`rotate`] did.
pub struct Rotation {
    pub from: KeyId,
    pub to: KeyId,
    pub source: KeySource,
    pub accounts: usize,
}

/// Re-seals every stored secret under `new` (with a key file and no `new`, a new random key) in
/// one transaction. With a key file, the new key then replaces it and the old key is kept as
/// `<file>.old`, both 0600. The new key is written as `<file>.new` before the database changes:
/// a rotation that stops half-way is finished by running it again.
pub async fn rotate(config: &Config, new: Option<SecretKey>) -> anyhow::Result<Rotation> {
    let current = load(config)?.ok_or_else(|| {
        anyhow!(
            "there is no key to rotate: {ENV_VAR} is not set and {} does not exist (`wagate serve` creates it on first start)",
            key_file(config).display()
        )
    })?;
    let (new, pending) = match &current.source {
        KeySource::Environment => {
            let new = new.ok_or_else(|| {
                anyhow!("the key comes from {ENV_VAR}: give the new one with --new-key-env VAR or --new-key-file PATH")
            })?;
            (new, None)
        }
        KeySource::File(path) => {
            let pending = pending_file(path);
            match (read_key_file(&pending)?, new) {
                (Some(left), None) => (left, Some(pending)),
                (Some(left), Some(given)) if left == given => (left, Some(pending)),
                (Some(left), Some(_)) => bail!(
                    "a rotation to key {} was interrupted ({} exists): run `wagate secrets rotate` without a new key to finish it first",
                    left.id(),
                    pending.display()
                ),
                (None, given) => {
                    let new = given.unwrap_or_else(SecretKey::generate);
                    if new != current.key {
                        write_key(&pending, &new)
                            .with_context(|| format!("cannot write the new key to {}", pending.display()))?;
                    }
                    (new, Some(pending))
                }
            }
        }
    };
    if new == current.key {
        bail!("the new key is the current key ({})", new.id());
    }
    let cipher = Cipher::new(&new).opening_previous([&current.key]);
    let store = wagate_storage::connect(config.database_url.as_deref(), &config.data_dir, cipher)
        .await
        .context("cannot re-seal the database's secrets")?;
    let accounts = store.list_accounts().await.map(|a| a.len());
    store.close().await;
    let accounts = accounts?;
    if let (KeySource::File(path), Some(pending)) = (&current.source, pending) {
        let old = beside(path, ".old");
        let tmp = beside(path, &format!(".{}.tmp", wagate_domain::id::new_id("k")));
        write_key(&tmp, &current.key).and_then(|()| fs::rename(&tmp, &old)).with_context(|| {
            format!(
                "the secrets are sealed by key {}, kept in {}, but saving the old key as {} failed",
                new.id(),
                pending.display(),
                old.display()
            )
        })?;
        fs::rename(&pending, path).and_then(|()| sync_dir(path)).with_context(|| {
            format!(
                "the secrets are sealed by key {}, kept in {}, but moving it to {} failed",
                new.id(),
                pending.display(),
                path.display()
            )
        })?;
    }
    Ok(Rotation { from: current.key.id(), to: new.id(), source: current.source, accounts })
}

fn pending_file(key_file: &Path) -> PathBuf {
    beside(key_file, ".new")
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A new file (0600) holding `key`, on disk before this returns.
fn write_key(path: &Path, key: &SecretKey) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", key.to_base64().expose()).as_bytes())?;
    file.sync_all()
}

/// Makes a file's creation or renaming durable.
fn sync_dir(file: &Path) -> io::Result<()> {
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Creates missing directories readable by this user only.
pub(crate) fn private_dir_builder() -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config { data_dir: dir.join("data"), ..Config::default() }
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        assert!(load(&config).unwrap().is_none());
        let first = load_or_create(&config).unwrap();
        assert_eq!(first.source, KeySource::File(config.data_dir.join(FILE_NAME)));
        let again = load_or_create(&config).unwrap();
        assert_eq!(again.key, first.key, "an existing key file is read, never replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(config.data_dir.join(FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(&config.data_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [FILE_NAME], "no temporary file is left behind");
    }

    #[test]
    fn instances_starting_together_take_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let keys: Vec<SecretKey> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8).map(|_| s.spawn(|| load_or_create(&config).unwrap().key)).collect();
            starts.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    }

    #[test]
    fn the_environment_key_wins_and_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        let key = SecretKey::generate();
        config.secret_key = Some(key.to_base64());
        let loaded = load_or_create(&config).unwrap();
        assert_eq!((loaded.key, loaded.source), (key, KeySource::Environment));
        assert!(!config.data_dir.join(FILE_NAME).exists(), "no key file is made when the variable is set");
        for bad in ["", "c2hvcnQ=", "not base64!"] {
            config.secret_key = Some(wagate_domain::secret::Secret::new(bad));
            let e = load_or_create(&config).err().expect("refused").to_string();
            assert!(e.starts_with(ENV_VAR) && e.contains("32"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_damaged_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        let path = dir.path().join("elsewhere.key");
        fs::write(&path, "not a key").unwrap();
        config.secret_key_file = Some(path.clone());
        let e = load_or_create(&config).err().expect("refused").to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
