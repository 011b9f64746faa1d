//! Named volumes: directories under `<store root>/volumes/NAME`, kept across runs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The named volumes of one store.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// One volume as `hoist volume ls|inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// Host directory that is bind-mounted.
    pub mountpoint: PathBuf,
}

impl Volumes {
    /// Volumes kept under `store_root/volumes`.
    pub fn new(store_root: &Path) -> Self {
        Volumes {
            dir: store_root.join("volumes"),
        }
    }

    /// Checks a volume name the way Docker does: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    pub fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
            && name.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if !Self::valid_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
            ));
        }
        Ok(self.dir.join(name))
    }

    /// Creates `name` if missing (idempotent, like `docker volume create`).
    pub fn create(&self, name: &str) -> io::Result<Volume> {
        let path = self.path(name)?;
        self.private_parent()?;
        fs::create_dir_all(&path)?;
        Ok(Volume {
            name: name.to_string(),
            mountpoint: path,
        })
    }

    /// Makes the directory holding the volumes owner-only (created so, or tightened when an older
    /// hoist left it open): what containers write in volumes is no other local user's to read.
    fn private_parent(&self) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mode = fs::metadata(&self.dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(mode & 0o7700))?;
        }
        Ok(())
    }

    /// The volume `name`, if it exists.
    pub fn get(&self, name: &str) -> io::Result<Option<Volume>> {
        let path = self.path(name)?;
        Ok(path.is_dir().then(|| Volume {
            name: name.to_string(),
            mountpoint: path,
        }))
    }

    /// All volumes, sorted by name.
    pub fn list(&self) -> io::Result<Vec<Volume>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() && Self::valid_name(&name) {
                out.push(Volume {
                    name,
                    mountpoint: entry.path(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes `name` and its contents. Errors with NotFound if it does not exist.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        if !path.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such volume: {name}"),
            ));
        }
        fs::remove_dir_all(path)
    }
}
