//! Stack templates: `extends = "base.toml"` (relative to the file that says it, chains allowed)
//! deep-merges a base into the stack file: tables merge key by key, the extending file wins,
//! arrays and other values are replaced whole.
//!
//! Every file keeps its own spans: the files are laid end to end in one virtual text, each
//! file's spans shifted to its place, so a problem found after the merge is reported at the
//! file and line where the offending value was written.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::ui::diagnostic::{Diagnostic, SourceFile};

/// The files of a stack in merge order (the deepest base first), laid end to end.
pub struct Composed {
    pub source: SourceFile,
}

/// Why the chain of `extends` could not be read.
#[derive(Debug)]
pub struct ChainError {
    pub chain: Vec<PathBuf>,
    pub problem: String,
}

fn describe(chain: &[PathBuf]) -> String {
    chain
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(" extends ")
}

impl ChainError {
    pub fn message(&self) -> String {
        format!("{}: {}", describe(&self.chain), self.problem)
    }
}

/// The value of a top-level `extends = "..."`, if the text has one (read loosely: a file that
/// does not parse is reported later, with its location).
fn extends_of(text: &str) -> Option<String> {
    let table = DeTable::parse(text).ok()?.into_inner();
    table
        .iter()
        .find_map(|(k, v)| match (k.get_ref().as_ref(), v.get_ref()) {
            ("extends", DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        })
}

/// Whether two paths name one file (compared as canonical paths when both exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The base `path` extends, resolved against `path`'s folder, if it names one.
pub fn base_of(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let base = extends_of(&text)?;
    Some(path.parent().unwrap_or(Path::new("")).join(base))
}

/// Reads `path` and every base it extends.
pub fn read_chain(path: &Path, text: String) -> Result<Composed, ChainError> {
    let mut files = vec![(path.to_path_buf(), text)];
    loop {
        let (current, text) = files.last().expect("starts with one file");
        let Some(base) = extends_of(text) else { break };
        let base = current.parent().unwrap_or(Path::new("")).join(base);
        let mut chain: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        chain.push(base.clone());
        if files.iter().any(|(p, _)| same_file(p, &base)) {
            return Err(ChainError {
                chain,
                problem: "the chain of `extends` is a cycle".into(),
            });
        }
        let text = std::fs::read_to_string(&base).map_err(|e| ChainError {
            chain: chain.clone(),
            problem: format!("cannot read the base `{}`: {e}", base.display()),
        })?;
        files.push((base, text));
    }
    files.reverse();
    Ok(Composed {
        source: SourceFile::composed(path, files),
    })
}

impl Composed {
    /// Parses every file and merges them; a syntax error is located in its own file.
    pub fn merged(&self) -> Result<Spanned<DeTable<'_>>, Diagnostic> {
        let mut merged = DeTable::new();
        for range in self.source.segment_ranges() {
            let text = &self.source.text[range.clone()];
            let table = DeTable::parse(text).map_err(|e| {
                let span = e.span().map(|s| s.start + range.start..s.end + range.start);
                Diagnostic::new(e.message().trim().replace('\n', " "), span)
            })?;
            let mut table = shift_table(table.into_inner(), range.start);
            table.remove("extends");
            merge(&mut merged, table);
        }
        Ok(Spanned::new(0..self.source.text.len(), merged))
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift(value.span(), by);
    let inner = match value.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        DeValue::Array(a) => DeValue::Array(a.into_iter().map(|v| shift_value(v, by)).collect()),
        other => other,
    };
    Spanned::new(span, inner)
}

fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (k, v) in table {
        let key = Spanned::new(shift(k.span(), by), k.into_inner());
        out.insert(key, shift_value(v, by));
    }
    out
}

/// `top` over `base`: tables merge key by key; anything else in `top` replaces.
fn merge<'i>(base: &mut DeTable<'i>, top: DeTable<'i>) {
    for (key, value) in top {
        let span = value.span();
        let name: &str = key.get_ref().as_ref();
        match (base.get_mut(name), value.into_inner()) {
            (Some(existing), DeValue::Table(table))
                if matches!(existing.get_ref(), DeValue::Table(_)) =>
            {
                if let DeValue::Table(inner) = existing.get_mut() {
                    merge(inner, table);
                }
            }
            (_, value) => {
                base.remove(key.get_ref().as_ref() as &str);
                base.insert(key, Spanned::new(span, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::spec::{load, SpecError};

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    /// A base made of the example without its stack name, and a team file that extends it.
    fn project(team: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let base = EXAMPLE.replace("name = \"mlops\"                    # [a-z][a-z0-9-]{0,31}; becomes the `mlops:stack` tag\n", "");
        // Without the example's manifests, which are not in this folder.
        let base = base.split("\n[workloads]").next().unwrap().to_string();
        fs::write(dir.path().join("base.toml"), base).unwrap();
        fs::write(dir.path().join("team.toml"), team).unwrap();
        dir
    }

    #[test]
    fn tables_merge_key_by_key_and_arrays_are_replaced() {
        let dir = project(
            "extends = \"base.toml\"\n[stack]\nname = \"team\"\ntags = { team = \"a\" }\n\
             [vpc]\nazs = [\"us-west-2a\", \"us-west-2c\"]\n\
             [eks.node_groups.default]\ndesired = 3\n",
        );
        let spec = load(&dir.path().join("team.toml")).unwrap();
        assert_eq!(spec.stack.name, "team");
        let tags: Vec<_> = spec.stack.tags.keys().collect();
        assert_eq!(tags, vec!["env", "team"], "tables merge");
        let zones: Vec<_> = spec.vpc.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            zones,
            vec!["us-west-2a", "us-west-2c"],
            "arrays are replaced"
        );
        let group = &spec.eks.node_groups["default"];
        assert_eq!(
            (group.desired, group.max, group.min),
            (3, 3, 1),
            "one key overridden"
        );
        assert_eq!(
            spec.buckets["models"].name, "mlops-models-bucket",
            "the rest comes from the base"
        );
    }

    #[test]
    fn a_mistake_is_reported_in_the_file_that_wrote_it() {
        let dir = project("extends = \"base.toml\"\n[stack]\nname = \"team\"\n[eks.node_groups.default]\nmax = 1\n");
        let base_text = fs::read_to_string(dir.path().join("base.toml")).unwrap();
        let err = load(&dir.path().join("team.toml")).unwrap_err();
        let report = err.report().unwrap();
        let line = base_text
            .lines()
            .position(|l| l.starts_with("desired = 2"))
            .unwrap()
            + 1;
        assert!(report.contains(&format!("base.toml:{line}:")), "{report}");
        assert!(report.contains("min 1 <= desired 2 <= max 1"), "{report}");

        let dir = project("extends = \"base.toml\"\n[stack]\nname = \"team\"\nnat = \"single\"\n");
        let report = load(&dir.path().join("team.toml"))
            .unwrap_err()
            .report()
            .unwrap();
        assert!(report.contains("team.toml:4:1"), "{report}");
        assert!(report.contains("unknown field `nat`"), "{report}");

        let dir = project("extends = \"base.toml\"\n[stack]\nname = \"team\"\n");
        fs::write(
            dir.path().join("base.toml"),
            "[stack]\nregion = \"us-west-2\"\n[vpc\n",
        )
        .unwrap();
        let report = load(&dir.path().join("team.toml"))
            .unwrap_err()
            .report()
            .unwrap();
        assert!(report.contains("base.toml:3:"), "{report}");
    }

    #[test]
    fn a_cycle_or_a_missing_base_names_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.toml"), "extends = \"b.toml\"\n").unwrap();
        fs::write(dir.path().join("b.toml"), "extends = \"a.toml\"\n").unwrap();
        let err = load(&dir.path().join("a.toml")).unwrap_err();
        assert!(matches!(err, SpecError::Extends(_)));
        let message = err.to_string();
        assert!(message.contains("a.toml` extends `"), "{message}");
        assert!(
            message.ends_with("the chain of `extends` is a cycle"),
            "{message}"
        );

        fs::write(dir.path().join("b.toml"), "extends = \"nowhere.toml\"\n").unwrap();
        let message = load(&dir.path().join("a.toml")).unwrap_err().to_string();
        assert!(message.contains("cannot read the base"), "{message}");
        assert!(message.contains("nowhere.toml"), "{message}");
    }
}
