//! The local backend: the state as a JSON file, written atomically (temporary file in the same
//! folder, fsync, rename, fsync of the folder), locked by a lock file created exclusively next
//! to it.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::format::{parse, to_bytes};
use super::lock::{LockGuard, LockInfo};
use super::{State, StateError, StateStore};

#[derive(Debug, Clone)]
pub struct LocalStore {
    path: PathBuf,
    /// Where an older rule put the state (relative to the working folder): read while the state
    /// is not at `path` yet, and moved to `path` under the lock.
    legacy: Option<PathBuf>,
    stack: String,
    stack_file: String,
}

impl LocalStore {
    /// The store of `stack`, whose spec is `stack_file` (named in lock messages).
    pub fn new(path: impl Into<PathBuf>, stack: &str, stack_file: &str) -> Self {
        LocalStore {
            path: path.into(),
            legacy: None,
            stack: stack.to_string(),
            stack_file: stack_file.to_string(),
        }
    }

    /// The same store, also looking for the state at `legacy` (docs/state.md).
    pub fn with_legacy(mut self, legacy: impl Into<PathBuf>) -> Self {
        self.legacy = Some(legacy.into());
        self
    }

    /// Writes `bytes` as the state file: a temporary file in the same folder, fsync, rename,
    /// fsync of the folder.
    fn write(&self, bytes: &[u8]) -> Result<(), StateError> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(self.io("create the folder of", &self.path))?;
        let file_name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is durable once the folder is synced.
            File::open(&dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("write", &self.path)(e));
        }
        Ok(())
    }

    /// The state at the legacy place, when there is one of this stack and none at `path`; a
    /// state there of another stack is not this one's, and is left alone.
    fn legacy_state(&self) -> Result<Option<(&Path, State)>, StateError> {
        let Some(legacy) = self.legacy.as_deref() else {
            return Ok(None);
        };
        if self.path.exists() {
            return Ok(None);
        }
        match fs::read_to_string(legacy) {
            Ok(text) => Ok(parse(legacy, &text, &self.stack)
                .ok()
                .map(|state| (legacy, state))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", legacy)(e)),
        }
    }

    /// Moves the legacy state to `path`, unless a run of an older mlops holds it locked.
    fn move_legacy(&self, legacy: &Path) -> Result<String, StateError> {
        if let Some(holder) = self.read_lock_of(legacy)? {
            return Err(StateError::Locked {
                path: legacy.to_path_buf(),
                holder: Box::new(holder),
            });
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(self.io("create the folder of", &self.path))?;
        }
        // A rename is atomic; across file systems, a copy that lands whole, then the removal.
        if fs::rename(legacy, &self.path).is_err() {
            let bytes = fs::read(legacy).map_err(self.io("read", legacy))?;
            self.write(&bytes)?;
            fs::remove_file(legacy).map_err(self.io("remove", legacy))?;
        }
        Ok(format!(
            "moved the state of stack `{}` from `{}` to `{}`: a local state is now found from the stack file's folder, whatever the working folder (docs/state.md)",
            self.stack,
            legacy.display(),
            self.path.display()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        lock_path_of(&self.path)
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }

    fn read_lock(&self) -> Result<Option<LockInfo>, StateError> {
        self.read_lock_of(&self.path)
    }

    /// The lock of the state file `state`, if one is held.
    fn read_lock_of(&self, state: &Path) -> Result<Option<LockInfo>, StateError> {
        let path = lock_path_of(state);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(LockInfo::parse_or_unreadable(
                &bytes,
                &self.stack,
                &self.stack_file,
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read the lock of", &path)(e)),
        }
    }
}

/// The lock file of the state file `path`: next to it, with `.lock` appended.
fn lock_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[async_trait]
impl StateStore for LocalStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => parse(&self.path, &text, &self.stack).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Ok(self.legacy_state()?.map(|(_, state)| state))
            }
            Err(e) => Err(self.io("read", &self.path)(e)),
        }
    }

    async fn relocate(&self, _lock: &LockGuard) -> Result<Option<String>, StateError> {
        match self.legacy_state()? {
            Some((legacy, _)) => self.move_legacy(legacy).map(Some),
            None => Ok(None),
        }
    }

    async fn save(&self, state: &mut State) -> Result<(), StateError> {
        let mut next = state.clone();
        next.serial += 1;
        self.write(&to_bytes(&next))?;
        *state = next;
        Ok(())
    }

    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        let path = self.lock_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(self.io("create the folder of", &self.path))?;
        }
        let info = LockInfo::for_this_process(&self.stack, &self.stack_file, operation);
        // The lock appears with its content or not at all: written aside, then linked into
        // place, which fails if a lock exists. No run ever reads a half-written lock.
        let mut pending = path.as_os_str().to_owned();
        pending.push(format!(".{}.tmp", std::process::id()));
        let pending = PathBuf::from(pending);
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&pending)?;
            file.write_all(&serde_json::to_vec_pretty(&info).expect("lock info serializes"))?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&pending);
            return Err(self.io("write the lock of", &self.path)(e));
        }
        let linked = fs::hard_link(&pending, &path);
        let _ = fs::remove_file(&pending);
        match linked {
            Ok(()) => Ok(LockGuard::new(
                info.clone(),
                None,
                LockFile { path, id: info.id },
            )),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let holder = self.read_lock()?.ok_or_else(|| StateError::Io {
                    action: "lock",
                    path: self.path.clone(),
                    source: std::io::Error::other("the lock vanished while being read; try again"),
                })?;
                if holder.is_stale_here() && self.set_aside(&holder) {
                    // Its holder is verifiably dead: take the lock over, once.
                    let guard = Box::pin(self.lock(operation)).await?;
                    return Ok(LockGuard::new(guard.info().clone(), Some(holder), guard));
                }
                Err(StateError::Locked {
                    path: self.path.clone(),
                    holder: Box::new(holder),
                })
            }
            Err(e) => Err(self.io("lock", &self.path)(e)),
        }
    }

    async fn lock_status(&self) -> Result<Option<LockInfo>, StateError> {
        self.read_lock()
    }

    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        let Some(holder) = self.read_lock()? else {
            return Err(StateError::NotLocked {
                path: self.path.clone(),
            });
        };
        if holder.id != id {
            return Err(StateError::LockIdMismatch {
                path: self.path.clone(),
                given: id.to_string(),
                holder: Box::new(holder),
            });
        }
        let lock_path = self.lock_path();
        fs::remove_file(&lock_path).map_err(self.io("unlock", &self.path))?;
        Ok(holder)
    }
}

impl LocalStore {
    /// Removes the lock of `stale`, a holder that is dead, when the lock is still its own: the
    /// lock is first moved aside (atomic), so that of two runs doing this at once only one
    /// removes it, and a fresh lock moved aside by mistake is put back.
    fn set_aside(&self, stale: &LockInfo) -> bool {
        let path = self.lock_path();
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".{}.stale", std::process::id()));
        let aside = PathBuf::from(aside);
        if fs::rename(&path, &aside).is_err() {
            return false;
        }
        let moved = fs::read(&aside)
            .ok()
            .map(|b| LockInfo::parse_or_unreadable(&b, &self.stack, &self.stack_file));
        if moved.is_some_and(|m| m.id == stale.id) {
            let _ = fs::remove_file(&aside);
            true
        } else {
            let _ = fs::hard_link(&aside, &path);
            let _ = fs::remove_file(&aside);
            false
        }
    }
}

/// The lock file of this run: removed when dropped, if it still holds this run's lock.
struct LockFile {
    path: PathBuf,
    id: String,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let still_ours = fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
            .is_some_and(|held| held.id == self.id);
        if still_ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn save_is_atomic_and_bumps_the_serial() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("s/t.json"), "t", "t.toml");
        assert_eq!(store.load().await.unwrap(), None);
        let mut state = State::new("t");
        store.save(&mut state).await.unwrap();
        store.save(&mut state).await.unwrap();
        assert_eq!(state.serial, 2);
        assert_eq!(store.load().await.unwrap(), Some(state));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["t.json"]);
    }

    /// A lock left by a run killed on this host (its pid gone, or reused by a process that
    /// started later) is taken over, naming whose it was; a live holder's is not.
    #[tokio::test]
    async fn a_lock_whose_holder_is_dead_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("t.json"), "t", "t.toml");
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        let mut gone = LockInfo::for_this_process("t", "t.toml", "apply");
        gone.pid = dead.id();
        let mut reused = LockInfo::for_this_process("t", "t.toml", "apply");
        reused.pid_started = reused.pid_started.map(|s| s + 1);
        for holder in [gone, reused] {
            fs::write(store.lock_path(), serde_json::to_vec(&holder).unwrap()).unwrap();
            let guard = store.lock("plan").await.unwrap();
            assert_eq!(guard.taken_over().map(|h| &h.id), Some(&holder.id));
            assert_eq!(
                store.lock_status().await.unwrap().unwrap().id,
                guard.info().id
            );
            drop(guard);
            assert_eq!(store.lock_status().await.unwrap(), None);
        }
        let live = LockInfo::for_this_process("t", "t.toml", "apply");
        fs::write(store.lock_path(), serde_json::to_vec(&live).unwrap()).unwrap();
        assert!(matches!(
            store.lock("plan").await,
            Err(StateError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn a_second_lock_names_the_holder_and_force_unlock_needs_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("t.json"), "t", "t.toml");
        let guard = store.lock("apply").await.unwrap();
        let Err(StateError::Locked { holder, .. }) = store.lock("plan").await else {
            panic!("a second lock must fail");
        };
        assert_eq!(holder.id, guard.info().id);
        assert_eq!(holder.operation, "apply");
        assert!(matches!(
            store.force_unlock("wrong").await,
            Err(StateError::LockIdMismatch { .. })
        ));
        let id = guard.info().id.clone();
        store.force_unlock(&id).await.unwrap();
        // The old guard must not remove a lock that another run took after the force-unlock.
        let second = store.lock("plan").await.unwrap();
        drop(guard);
        assert!(store.lock("apply").await.is_err());
        drop(second);
        assert!(store.lock("apply").await.is_ok());
    }
}
