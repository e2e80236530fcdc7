//! Where manifest files come from, and the digest check that every one of them passes.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::catalogue::{ManifestFile, Release};
use crate::manifest::ManifestError;

/// Replaces the download host of the catalogue's URLs (an internal mirror, or a test server).
pub const MIRROR_ENV: &str = "MLOPS_ADDONS_MIRROR";
const UPSTREAM: &str = "https://raw.githubusercontent.com/kubeflow/manifests";

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("`{}` has no `{file}` for {addon} {version}", dir.display())]
    NotInBundle {
        dir: PathBuf,
        addon: &'static str,
        version: &'static str,
        file: &'static str,
    },
    #[error("the manifest `{file}` of {addon} {version} from `{origin}` has the SHA-256 digest {found}, not {expected}")]
    DigestMismatch {
        addon: &'static str,
        version: &'static str,
        file: &'static str,
        origin: String,
        expected: &'static str,
        found: String,
    },
    #[error("cannot download `{url}`: {reason}")]
    Download { url: String, reason: String },
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

impl AddonError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AddonError::NotInBundle { .. } => Some(
                "make a bundle with `mlops addons fetch --out DIR` on a machine with network access"
                    .into(),
            ),
            AddonError::DigestMismatch { .. } => Some(
                "the file is not the release mlops knows: restore it, or fetch it again".into(),
            ),
            AddonError::Download { .. } => Some(format!(
                "without network access, pass a bundle with `--manifests-dir` (or set {MIRROR_ENV} to a mirror)"
            )),
            AddonError::Io { .. } | AddonError::Manifest(_) => None,
        }
    }
}

/// Where manifests are read from.
#[derive(Debug, Clone)]
pub enum ManifestSource {
    /// A folder in the catalogue's layout: `<add-on>/<version>/<file>`. Never downloads.
    Bundle(PathBuf),
    /// A cache in the same layout, filled from the catalogue's URLs on first use.
    Cache(PathBuf),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AddonError {
    let path = path.to_path_buf();
    move |source| AddonError::Io {
        action,
        path,
        source,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check(
    release: &Release,
    file: &ManifestFile,
    bytes: &[u8],
    origin: String,
) -> Result<(), AddonError> {
    let found = sha256_hex(bytes);
    if found == file.sha256 {
        Ok(())
    } else {
        Err(AddonError::DigestMismatch {
            addon: release.addon.name(),
            version: release.version,
            file: file.name,
            origin,
            expected: file.sha256,
            found,
        })
    }
}

/// The file's place in a bundle or cache.
pub fn layout_path(root: &Path, release: &Release, file: &ManifestFile) -> PathBuf {
    root.join(release.addon.name())
        .join(release.version)
        .join(file.name)
}

/// Writes `bytes` to `path` atomically, creating its folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AddonError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    fs::write(&tmp, bytes).map_err(io("write", path))?;
    fs::rename(&tmp, path).map_err(io("write", path))
}

impl ManifestSource {
    /// The bundle if one is given, else the user's cache folder.
    pub fn new(bundle: Option<PathBuf>) -> Self {
        match bundle {
            Some(dir) => ManifestSource::Bundle(dir),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(std::env::temp_dir);
                ManifestSource::Cache(base.join("mlops/manifests"))
            }
        }
    }

    /// The verified bytes of one manifest file.
    pub fn read(&self, release: &Release, file: &ManifestFile) -> Result<Vec<u8>, AddonError> {
        match self {
            ManifestSource::Bundle(dir) => {
                let path = layout_path(dir, release, file);
                let bytes = fs::read(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => AddonError::NotInBundle {
                        dir: dir.clone(),
                        addon: release.addon.name(),
                        version: release.version,
                        file: file.name,
                    },
                    _ => io("read", &path)(e),
                })?;
                check(release, file, &bytes, path.display().to_string())?;
                Ok(bytes)
            }
            ManifestSource::Cache(dir) => {
                let path = layout_path(dir, release, file);
                if let Ok(bytes) = fs::read(&path) {
                    // A cached file that no longer matches is fetched again.
                    if sha256_hex(&bytes) == file.sha256 {
                        return Ok(bytes);
                    }
                }
                let url = download_url(file);
                let bytes = download(&url)?;
                check(release, file, &bytes, url)?;
                write_atomically(&path, &bytes)?;
                Ok(bytes)
            }
        }
    }

    /// Copies the verified files of `releases` into a bundle at `out`; returns how many.
    pub fn fetch_into(&self, releases: &[&Release], out: &Path) -> Result<usize, AddonError> {
        let mut count = 0;
        for release in releases {
            for file in release.files {
                let bytes = self.read(release, file)?;
                write_atomically(&layout_path(out, release, file), &bytes)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// The catalogue URL, or the same path under the mirror named by `MLOPS_ADDONS_MIRROR`.
fn download_url(file: &ManifestFile) -> String {
    match std::env::var(MIRROR_ENV) {
        Ok(mirror) if !mirror.is_empty() => {
            let path = file.url.strip_prefix(UPSTREAM).unwrap_or(file.url);
            format!("{}{path}", mirror.trim_end_matches('/'))
        }
        _ => file.url.to_string(),
    }
}

/// Manifests are a few MiB at most.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

fn download(url: &str) -> Result<Vec<u8>, AddonError> {
    let failed = |reason: String| AddonError::Download {
        url: url.to_string(),
        reason,
    };
    let response = ureq::get(url).call().map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::catalogue::{Addon, CATALOGUE};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/addons");

    #[test]
    fn every_fixture_file_matches_its_catalogue_digest() {
        let source = ManifestSource::Bundle(PathBuf::from(FIXTURES));
        let mut files = 0;
        for release in CATALOGUE {
            for file in release.files {
                let bytes = source.read(release, file).unwrap();
                assert!(!bytes.is_empty());
                files += 1;
            }
        }
        assert_eq!(files, 14);
    }

    #[test]
    fn a_changed_file_is_refused_and_a_missing_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let release = Addon::CertManager.release("v1.19.4").unwrap();
        let file = &release.files[0];
        let path = layout_path(dir.path(), release, file);
        let source = ManifestSource::Bundle(dir.path().to_path_buf());
        assert!(matches!(
            source.read(release, file),
            Err(AddonError::NotInBundle {
                file: "cert-manager.yaml",
                ..
            })
        ));
        let mut bytes = fs::read(layout_path(Path::new(FIXTURES), release, file)).unwrap();
        bytes.extend_from_slice(b"\n# tampered\n");
        write_atomically(&path, &bytes).unwrap();
        let err = source.read(release, file).unwrap_err();
        assert!(matches!(err, AddonError::DigestMismatch { .. }));
        assert!(err
            .to_string()
            .contains("the manifest `cert-manager.yaml` of cert-manager v1.19.4"));
    }

    #[test]
    fn versions_resolve_with_or_without_v() {
        assert_eq!(
            Addon::KnativeServing.release("v1.21.1").unwrap().version,
            "1.21.1"
        );
        assert_eq!(Addon::Kserve.release("0.16.0").unwrap().version, "v0.16.0");
        assert!(Addon::Istio.release("1.20.0").is_none());
    }
}
