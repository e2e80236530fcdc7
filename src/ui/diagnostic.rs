//! Source-located messages: one `Diagnostic` per problem, rendered with the file, line, column and
//! a caret under the offending text, the way rustc and cargo show errors.
//!
//! Validation collects every diagnostic before it reports, so a user fixes a spec in one pass.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Byte range in the source; `None` when the problem concerns the file as a whole.
    pub span: Option<Range<usize>>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The text of a file together with its name, for turning byte offsets into lines and columns.
/// A stack that extends bases is several files laid end to end (one `\n` between two), each a
/// segment: an offset is located in the file it falls in.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The file the user named.
    pub path: PathBuf,
    pub text: String,
    /// Each file and where its text starts, in order.
    segments: Vec<(PathBuf, usize)>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> Self {
        SourceFile {
            path: path.to_path_buf(),
            text,
            segments: vec![(path.to_path_buf(), 0)],
        }
    }

    /// `files` laid end to end, in order; `main` is the file the user named.
    pub fn composed(main: &Path, files: Vec<(PathBuf, String)>) -> Self {
        let mut text = String::new();
        let mut segments = Vec::new();
        for (path, body) in files {
            if !segments.is_empty() {
                text.push('\n');
            }
            segments.push((path, text.len()));
            text.push_str(&body);
        }
        SourceFile {
            path: main.to_path_buf(),
            text,
            segments,
        }
    }

    /// The byte range of each file in `text`.
    pub fn segment_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.segments
            .iter()
            .enumerate()
            .map(|(i, (_, start))| {
                let end = self
                    .segments
                    .get(i + 1)
                    .map_or(self.text.len(), |(_, next)| next - 1);
                *start..end
            })
            .collect()
    }

    /// The file an offset falls in, and where that file starts.
    fn segment(&self, offset: usize) -> (&Path, usize) {
        let (path, start) = self
            .segments
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .unwrap_or(&self.segments[0]);
        (path, *start)
    }

    /// The file an offset falls in.
    pub fn file_at(&self, offset: usize) -> &Path {
        self.segment(offset).0
    }

    /// 1-based line and column (in characters) of a byte offset, in its own file.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let (_, start) = self.segment(offset);
        let before = &self.text[start..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(start, |i| start + i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// `path:line:col` of a byte offset.
    pub fn location(&self, offset: usize) -> String {
        let (line, col) = self.line_col(offset);
        let (path, _) = self.segment(offset.min(self.text.len()));
        format!("{}:{}:{}", path.display(), line, col)
    }

    /// Renders one diagnostic: `error: ...`, the location, the source line with carets, the hint.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let mut out = format!("error: {}\n", diagnostic.message);
        match &diagnostic.span {
            Some(span) => {
                let (line, col) = self.line_col(span.start);
                let gutter = " ".repeat(line.to_string().len());
                let _ = writeln!(out, "{gutter}--> {}", self.location(span.start));
                let start = span.start.min(self.text.len());
                let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
                let line_end = self.text[start..]
                    .find('\n')
                    .map_or(self.text.len(), |i| start + i);
                let source_line = &self.text[line_start..line_end];
                let width = self
                    .text
                    .get(start..span.end.min(line_end))
                    .map_or(1, |s| s.chars().count().max(1));
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{line} | {source_line}");
                let _ = writeln!(
                    out,
                    "{gutter} | {}{}",
                    " ".repeat(col - 1),
                    "^".repeat(width)
                );
            }
            None => {
                let _ = writeln!(out, " --> {}", self.path.display());
            }
        }
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// The known word closest to a mistyped one, when it is close enough to be a typo (at most
/// three edits): what a `did you mean` hint offers.
pub fn closest<'a>(wrong: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(wrong, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let file = SourceFile::new(Path::new("a.toml"), "ab\ncdé\nf".to_string());
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(3), (2, 1));
        assert_eq!(file.line_col(7), (2, 4));
        assert_eq!(file.location(8), "a.toml:3:1");
    }

    #[test]
    fn offsets_are_located_in_their_own_file() {
        let file = SourceFile::composed(
            Path::new("team.toml"),
            vec![
                (PathBuf::from("base.toml"), "a = 1\nb = 2".into()),
                (PathBuf::from("team.toml"), "c = 3".into()),
            ],
        );
        assert_eq!(file.segment_ranges(), vec![0..11, 12..17]);
        assert_eq!(file.location(6), "base.toml:2:1");
        assert_eq!(file.location(16), "team.toml:1:5");
        let d = Diagnostic::new("bad", Some(16..17));
        assert!(file.render(&d).contains("1 | c = 3\n  |     ^\n"));
    }

    #[test]
    fn render_puts_carets_under_the_span() {
        let file = SourceFile::new(
            Path::new("s.toml"),
            "[vpc]\ncidr = \"10.0.0.0/33\"\n".into(),
        );
        let d = Diagnostic::new("bad cidr", Some(13..26)).with_hint("use a.b.c.d/n");
        let out = file.render(&d);
        assert_eq!(
            out,
            "error: bad cidr\n --> s.toml:2:8\n  |\n2 | cidr = \"10.0.0.0/33\"\n  |        ^^^^^^^^^^^^^\n  = hint: use a.b.c.d/n\n"
        );
    }
}
