//! Many stacks at once: which stack files a pattern names (`--all` is `stacks/*.toml`), the
//! name each is shown by, and their plans made together (the nightly drift check).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::{check_request, plan_refreshed, refreshes, PlanRequest, Session, Stack};
use crate::exec;
use crate::plan::Plan;
use crate::{Error, Result};

/// The pattern `--all` stands for.
pub const ALL_STACKS: &str = "stacks/*.toml";

/// The name a stack is shown by among many: its file name without `.toml`.
pub fn label(file: &Path) -> String {
    file.file_stem().map_or_else(
        || file.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters and `?` for one.
fn matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The stack files a pattern such as `stacks/team-*.toml` names, sorted; wildcards may stand in
/// the file name only. A file that another of them `extends` is a template, not a stack, and is
/// left out.
pub fn stack_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_pattern: Vec<char> = path
        .file_name()
        .map(|f| f.to_string_lossy().chars().collect())
        .unwrap_or_default();
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
        action: "list the stacks in",
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name: Vec<char> = e.file_name().to_string_lossy().chars().collect();
            matches(&file_pattern, &name)
        })
        .map(|e| dir.join(e.file_name()))
        .collect();
    files.sort();
    let bases: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| crate::spec::base_of(f))
        .collect();
    files.retain(|f| !bases.iter().any(|b| crate::spec::same_file(b, f)));
    if files.is_empty() {
        return Err(Error::refused(
            format!("no stack file matches `{pattern}`"),
            "stacks are `.toml` files; `--all` means `stacks/*.toml`",
        ));
    }
    Ok(files)
}

/// Plans `stacks` as `request` asks, each under its lock, their refreshes read together
/// (`exec::refresh_many`: one request reads a kind's objects of every stack of a region); each
/// stack's reporter hears what it is at. For each stack, its plan or why it failed, and when it
/// was ready; a stack that fails leaves the others going.
pub async fn plan_many(
    stacks: &[(&Stack, &Session)],
    request: &PlanRequest,
) -> Result<Vec<(Result<Plan>, Duration)>> {
    check_request(request)?;
    let started = Instant::now();
    let loaded = join_all(
        stacks
            .iter()
            .map(|(stack, session)| stack.lock_state("plan", session.reporter.as_ref())),
    )
    .await;
    let which: Vec<usize> = (0..stacks.len())
        .filter(|&i| matches!(&loaded[i], Ok((_, stored)) if refreshes(request, stored)))
        .collect();
    let envs = join_all(which.iter().map(|&i| {
        let (stack, session) = stacks[i];
        session.reporter.phase("refreshing");
        session.env(&stack.spec)
    }))
    .await;
    let states = which.iter().zip(&envs).filter_map(|(&i, env)| {
        let (_, stored) = loaded[i].as_ref().ok()?;
        Some((stored.clone(), env))
    });
    let mut refreshed: BTreeMap<usize, _> = which
        .iter()
        .copied()
        .zip(exec::refresh_many(states.collect()).await)
        .collect();
    let plans = loaded.into_iter().enumerate().map(|(i, loaded)| {
        let refreshed = refreshed.remove(&i).transpose();
        let (stack, session) = stacks[i];
        async move {
            let plan = async {
                let (_lock, stored) = loaded?;
                let refreshed = refreshed?;
                let (plan, _) = plan_refreshed(stack, request, session, stored, refreshed).await?;
                Ok(plan)
            };
            (plan.await, started.elapsed())
        }
    });
    Ok(join_all(plans).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        matches(
            &pattern.chars().collect::<Vec<_>>(),
            &name.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(m("*.toml", "team-a.toml"));
        assert!(m("team-*.toml", "team-a.toml"));
        assert!(m("team-?.toml", "team-b.toml"));
        assert!(!m("team-?.toml", "team-bb.toml"));
        assert!(!m("*.toml", "team-a.json"));
        assert!(m("*", ""));
    }

    #[test]
    fn files_are_listed_in_order_and_none_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["team-b.toml", "team-a.toml", "base.toml", "notes.md"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let pattern = format!("{}/team-*.toml", dir.path().display());
        let found = stack_files(&pattern).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["team-a.toml", "team-b.toml"]);
        assert!(stack_files(&format!("{}/x-*.toml", dir.path().display())).is_err());
    }
}
