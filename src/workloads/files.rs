//! Which files `[workloads] paths` names: a file; a folder, meaning every `.yaml`, `.yml` and
//! `.json` file under it; or a glob (`*` and `?` within one path segment, `**` for any number of
//! folders). Folders and globs list their files in name order, so plans do not depend on the
//! order the file system lists them in.

use std::path::{Path, PathBuf};

/// Whether a file is a manifest by its extension.
fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The manifest files `pattern` names, relative to `base`; `Err` says why it names none.
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = base.join(pattern);
    let mut found = if pattern.contains(['*', '?']) {
        let mut found = Vec::new();
        let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let root = if pattern.starts_with('/') {
            PathBuf::from("/")
        } else {
            base.to_path_buf()
        };
        walk_glob(&root, &segments, &mut found);
        found.retain(|p| p.is_file());
        found
    } else if path.is_dir() {
        let mut found = Vec::new();
        walk_folder(&path, &mut found);
        if found.is_empty() {
            return Err(format!(
                "the folder `{}` has no .yaml, .yml or .json file",
                path.display()
            ));
        }
        found
    } else if path.is_file() {
        vec![path.clone()]
    } else {
        return Err(format!("`{}` does not exist", path.display()));
    };
    if found.is_empty() {
        return Err(format!("no file matches `{}`", path.display()));
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Every manifest file under `folder`, at any depth.
fn walk_folder(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in entries(folder) {
        if entry.is_dir() {
            walk_folder(&entry, found);
        } else if is_manifest(&entry) {
            found.push(entry);
        }
    }
}

fn entries(folder: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn walk_glob(at: &Path, segments: &[&str], found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = segments.split_first() else {
        if at.is_file() {
            found.push(at.to_path_buf());
        }
        return;
    };
    match *first {
        "**" => {
            walk_glob(at, rest, found);
            for entry in entries(at).into_iter().filter(|e| e.is_dir()) {
                walk_glob(&entry, segments, found);
            }
        }
        segment if segment.contains(['*', '?']) => {
            for entry in entries(at) {
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if matches(segment.as_bytes(), name.as_bytes()) {
                    walk_glob(&entry, rest, found);
                }
            }
        }
        segment => walk_glob(&at.join(segment), rest, found),
    }
}

/// Whether `name` matches the glob segment `pattern` (`*`: any run, `?`: any one character).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            matches(rest, name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, name_rest))) => matches(rest, name_rest),
        (Some((p, rest)), Some((n, name_rest))) if p == n => matches(rest, name_rest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_folders_and_globs_list_manifests_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("k8s/teams/b")).unwrap();
        for file in [
            "k8s/serving.yaml",
            "k8s/teams/a.yml",
            "k8s/teams/b/q.json",
            "k8s/teams/notes.md",
        ] {
            std::fs::write(base.join(file), "").unwrap();
        }
        let names = |found: Vec<PathBuf>| -> Vec<String> {
            found
                .iter()
                .map(|p| p.strip_prefix(base).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(expand(base, "k8s/serving.yaml").unwrap()),
            ["k8s/serving.yaml"]
        );
        assert_eq!(
            names(expand(base, "k8s/teams/").unwrap()),
            ["k8s/teams/a.yml", "k8s/teams/b/q.json"]
        );
        assert_eq!(
            names(expand(base, "k8s/*.yaml").unwrap()),
            ["k8s/serving.yaml"]
        );
        assert_eq!(
            names(expand(base, "k8s/**/?.*").unwrap()),
            ["k8s/teams/a.yml", "k8s/teams/b/q.json"]
        );
        let missing = expand(base, "k8s/nothing.yaml").unwrap_err();
        assert!(
            missing.ends_with("k8s/nothing.yaml` does not exist"),
            "{missing}"
        );
        let none = expand(base, "k8s/*.toml").unwrap_err();
        assert!(none.starts_with("no file matches"), "{none}");
    }
}
