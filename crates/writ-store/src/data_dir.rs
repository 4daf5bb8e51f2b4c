//! The data directory (`./writ-data/` by default): database file and key files.
//!
//! Key files are created with mode 0600 in a 0700 directory, with `create_new` so two
//! processes starting at once agree on one key. Only a directory opened with
//! [`DataDir::open_or_create`] (by `writ serve`) creates keys; one opened with
//! [`DataDir::open_existing`] (every other command) reads them and refuses when they are
//! missing, so a command run in the wrong place never forks a second root key.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use writ_token::{KeyId, PublicKey, RootKeyPair, RootKeys, public_key_from_hex, public_key_hex};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// The on-disk home of one gateway's state.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// Whether missing keys are generated (the gateway's own start) or refused.
    create: bool,
}

/// The root signing key and every root key trusted for verification.
#[derive(Debug)]
pub struct RootKeyFiles {
    /// The key new writs are signed with (the highest key id).
    pub signing: RootKeyPair,
    /// Every trusted key, the signing key included.
    pub trusted: RootKeys,
}

/// The key that wraps per-record data keys of stored credentials. Never printed.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl DataDir {
    /// Opens `root`, creating it (mode 0700) and its `keys/` directory if absent.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [root.clone(), root.join("keys")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| StoreError::Io {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(Self { root, create: true })
    }

    /// Opens the existing gateway state at `root` without creating anything: the
    /// directory and its `keys/` must exist ([`StoreError::NoDataDir`] otherwise), and a
    /// missing key is an error ([`StoreError::MissingKey`]) instead of being generated.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        if !root.join("keys").is_dir() {
            let path = std::path::absolute(&root).unwrap_or(root);
            return Err(StoreError::NoDataDir { path });
        }
        Ok(Self {
            root,
            create: false,
        })
    }

    /// Fails with [`StoreError::MissingKey`] unless this directory may create keys.
    fn may_create(&self, what: &'static str, path: &Path) -> Result<(), StoreError> {
        if self.create {
            Ok(())
        } else {
            Err(StoreError::MissingKey {
                what,
                path: path.to_path_buf(),
            })
        }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.root.join("writ.db")
    }

    fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Loads the root keys (`keys/root-<kid>.key`), generating key id 1 if there is none.
    pub fn root_keys(&self) -> Result<RootKeyFiles, StoreError> {
        let mut found = self.read_root_keys()?;
        if found.is_empty() {
            self.may_create("root key", &self.keys_dir())?;
            let key = RootKeyPair::generate(KeyId(1));
            let path = self.keys_dir().join("root-1.key");
            write_new_secret(&path, key.private_hex().as_bytes())?;
            // Another process may have won the race; read back whatever is on disk.
            found = self.read_root_keys()?;
        }
        let mut trusted = RootKeys::new();
        for key in &found {
            trusted.insert(key.kid(), key.public());
        }
        let signing = found.pop().ok_or_else(|| StoreError::InvalidKeyFile {
            path: self.keys_dir(),
        })?;
        Ok(RootKeyFiles { signing, trusted })
    }

    /// Adds a root key with the next key id; it becomes the signing key. Older keys stay
    /// trusted, so writs they signed keep working until they expire or the key is retired.
    pub fn rotate_root_key(&self) -> Result<KeyId, StoreError> {
        let keys = self.read_root_keys()?;
        if keys.is_empty() {
            // Rotating from nothing would make a first root key outside `writ serve`.
            self.may_create("root key", &self.keys_dir())?;
        }
        let retired = self.retired_key_ids()?;
        let next = keys
            .iter()
            .map(|k| k.kid().0)
            .chain(retired)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidKeyFile {
                path: self.keys_dir(),
            })?;
        let key = RootKeyPair::generate(KeyId(next));
        write_new_secret(
            &self.keys_dir().join(format!("root-{next}.key")),
            key.private_hex().as_bytes(),
        )?;
        Ok(KeyId(next))
    }

    /// Stops trusting root key `kid`: writs it signed are refused from now on. The signing
    /// key (the newest) cannot be retired; rotate first. The private half is deleted (its
    /// file overwritten, then removed): nothing can sign with a retired key again. The public
    /// half is kept as `keys/retired-root-<kid>.pub`, so what the key signed can still be
    /// told apart from forgeries ([`DataDir::retired_root_keys`]).
    pub fn retire_root_key(&self, kid: KeyId) -> Result<(), StoreError> {
        let keys = self.read_root_keys()?;
        let newest = keys.last().map(|k| k.kid());
        let from = self.keys_dir().join(format!("root-{}.key", kid.0));
        let Some(key) = keys.iter().find(|k| k.kid() == kid) else {
            return Err(not_retirable(from));
        };
        if newest == Some(kid) {
            return Err(not_retirable(from));
        }
        let public = self.keys_dir().join(format!("retired-root-{}.pub", kid.0));
        write_new_secret(&public, public_key_hex(&key.public()).as_bytes())?;
        // Overwrite the private bytes before unlinking, so they do not linger in the file's
        // old blocks for anyone reading the disk later (best effort on copy-on-write systems).
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let len = fs::metadata(&from).map_err(io(&from))?.len();
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
        fs::write(&from, &zeros)
            .and_then(|()| fs::File::open(&from)?.sync_all())
            .map_err(io(&from))?;
        fs::remove_file(&from).map_err(io(&from))
    }

    /// The retired root keys' public halves, by key id (retired before they were kept:
    /// none).
    pub fn retired_root_keys(&self) -> Result<Vec<(KeyId, PublicKey)>, StoreError> {
        let mut out = Vec::new();
        for kid in self.retired_key_ids()? {
            let path = self.keys_dir().join(format!("retired-root-{kid}.pub"));
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let key = public_key_from_hex(&text)
                .map_err(|_| StoreError::InvalidKeyFile { path: path.clone() })?;
            out.push((KeyId(kid), key));
        }
        out.sort_by_key(|(kid, _)| *kid);
        out.dedup_by_key(|(kid, _)| *kid);
        Ok(out)
    }

    fn retired_key_ids(&self) -> Result<Vec<u32>, StoreError> {
        let dir = self.keys_dir();
        let entries = fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("retired-root-"))
                    .and_then(|n| n.strip_suffix(".pub").or_else(|| n.strip_suffix(".key")))
                    .and_then(|n| n.parse().ok())
            })
            .collect())
    }

    /// Every root key on disk, sorted by key id.
    fn read_root_keys(&self) -> Result<Vec<RootKeyPair>, StoreError> {
        let dir = self.keys_dir();
        let entries = fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(kid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("root-"))
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let hex = read_secret(&path)?;
            let text = std::str::from_utf8(&hex)
                .map_err(|_| StoreError::InvalidKeyFile { path: path.clone() })?;
            let key = RootKeyPair::from_private_hex(KeyId(kid), text)
                .map_err(|_| StoreError::InvalidKeyFile { path: path.clone() })?;
            keys.push(key);
        }
        keys.sort_by_key(|k| k.kid());
        Ok(keys)
    }

    /// Loads `keys/master.key`, generating 32 random bytes if absent.
    pub fn master_key(&self) -> Result<MasterKey, StoreError> {
        let path = self.keys_dir().join("master.key");
        if !path.exists() {
            self.may_create("master key", &path)?;
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            let hex = Zeroizing::new(hex::encode(bytes.as_ref()));
            write_new_secret(&path, hex.as_bytes())?;
        }
        let text = read_secret(&path)?;
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim_ascii(), key.as_mut())
            .map_err(|_| StoreError::InvalidKeyFile { path })?;
        Ok(MasterKey(key))
    }
}

impl DataDir {
    /// Loads the secret `keys/<name>`, creating it (mode 0600) with `generate()`'s text
    /// if absent. Leading and trailing whitespace is trimmed.
    pub fn secret(
        &self,
        name: &str,
        generate: impl FnOnce() -> Zeroizing<String>,
    ) -> Result<Zeroizing<String>, StoreError> {
        let path = self.keys_dir().join(name);
        if !path.exists() {
            self.may_create("key file", &path)?;
            write_new_secret(&path, generate().as_bytes())?;
        }
        let text = read_secret(&path)?;
        let text = std::str::from_utf8(text.trim_ascii())
            .map_err(|_| StoreError::InvalidKeyFile { path: path.clone() })?;
        Ok(Zeroizing::new(text.to_string()))
    }
}

/// Creates `path` with mode 0600 and writes `bytes`; an existing file is left alone.
/// The error for a key id that is unknown or names the signing key.
fn not_retirable(path: PathBuf) -> StoreError {
    StoreError::Io {
        path,
        source: std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a retirable key: it is unknown, or it is the signing key (rotate first)",
        ),
    }
}

fn write_new_secret(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(bytes).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Reads a key file, refusing one that others can read.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyFileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(Zeroizing::new(fs::read(path).map_err(io)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_keys_once_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(tmp.path().join("writ-data")).unwrap();
        let first = dir.root_keys().unwrap();
        let again = dir.root_keys().unwrap();
        assert_eq!(first.signing.kid(), KeyId(1));
        assert_eq!(first.signing.public(), again.signing.public());
        let k1 = dir.master_key().unwrap();
        let k2 = dir.master_key().unwrap();
        assert_eq!(k1.expose(), k2.expose());
        for file in ["keys/root-1.key", "keys/master.key"] {
            let mode = fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(format!("{k1:?}"), "MasterKey(..)");
    }

    #[test]
    fn rotation_adds_a_signing_key_and_retirement_removes_trust() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(tmp.path()).unwrap();
        let first = dir.root_keys().unwrap();
        assert_eq!(dir.rotate_root_key().unwrap(), KeyId(2));
        let after = dir.root_keys().unwrap();
        assert_eq!(after.signing.kid(), KeyId(2));
        assert_eq!(after.trusted.iter().count(), 2);
        assert!(
            dir.retire_root_key(KeyId(2)).is_err(),
            "the signing key cannot be retired"
        );
        dir.retire_root_key(KeyId(1)).unwrap();
        let retired = dir.root_keys().unwrap();
        assert_eq!(
            retired.trusted.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec![KeyId(2)]
        );
        assert!(
            retired
                .trusted
                .iter()
                .all(|(_, k)| *k != first.signing.public())
        );
        // The private half is gone from the disk; the public half is kept.
        let keys = tmp.path().join("keys");
        assert!(!keys.join("root-1.key").exists());
        let names: Vec<String> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains("-1.key")),
            "no private file of key 1 remains: {names:?}"
        );
        let kept = dir.retired_root_keys().unwrap();
        assert_eq!(kept, vec![(KeyId(1), first.signing.public())]);
        assert!(dir.retire_root_key(KeyId(1)).is_err(), "retired once");
        // Key ids are never reused, even after retirement.
        assert_eq!(dir.rotate_root_key().unwrap(), KeyId(3));
    }

    #[test]
    fn open_existing_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("writ-data");
        let err = DataDir::open_existing(&missing).unwrap_err();
        assert!(matches!(err, StoreError::NoDataDir { .. }), "{err}");
        assert!(err.to_string().contains("pass --data-dir"), "{err}");
        assert!(!missing.exists());
        // A directory without keys: nothing is generated on read.
        fs::create_dir_all(missing.join("keys")).unwrap();
        let dir = DataDir::open_existing(&missing).unwrap();
        assert!(matches!(
            dir.root_keys(),
            Err(StoreError::MissingKey { .. })
        ));
        assert!(matches!(
            dir.master_key(),
            Err(StoreError::MissingKey { .. })
        ));
        let generated = || Zeroizing::new("x".to_string());
        assert!(matches!(
            dir.secret("audit.key", generated),
            Err(StoreError::MissingKey { .. })
        ));
        assert_eq!(fs::read_dir(missing.join("keys")).unwrap().count(), 0);
        // Keys a gateway created are read as usual.
        let created = DataDir::open_or_create(&missing)
            .unwrap()
            .root_keys()
            .unwrap();
        let read = dir.root_keys().unwrap();
        assert_eq!(created.signing.public(), read.signing.public());
    }

    #[test]
    fn refuses_world_readable_or_garbage_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open_or_create(tmp.path()).unwrap();
        dir.root_keys().unwrap();
        let path = dir.path().join("keys/root-1.key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            dir.root_keys(),
            Err(StoreError::KeyFileMode { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "zz-not-hex").unwrap();
        assert!(matches!(
            dir.root_keys(),
            Err(StoreError::InvalidKeyFile { .. })
        ));
    }
}
