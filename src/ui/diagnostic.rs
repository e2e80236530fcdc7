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
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> Self {
        SourceFile {
            path: path.to_path_buf(),
            text,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// `path:line:col` of a byte offset.
    pub fn location(&self, offset: usize) -> String {
        let (line, col) = self.line_col(offset);
        format!("{}:{}:{}", self.path.display(), line, col)
    }

    /// Renders one diagnostic: `error: ...`, the location, the source line with carets, the hint.
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let mut out = format!("error: {}\n", diagnostic.message);
        match &diagnostic.span {
            Some(span) => {
                let (line, col) = self.line_col(span.start);
                let gutter = " ".repeat(line.to_string().len());
                let _ = writeln!(out, "{gutter}--> {}:{line}:{col}", self.path.display());
                let source_line = self.text.lines().nth(line - 1).unwrap_or("");
                let line_start = self.text[..span.start.min(self.text.len())]
                    .rfind('\n')
                    .map_or(0, |i| i + 1);
                let rest_of_line = source_line.len().saturating_sub(span.start - line_start);
                let width = self
                    .text
                    .get(span.start..span.end.min(span.start + rest_of_line))
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
