//! Everything that faces a person: colour, diagnostics, and the progress reporter that renders
//! the executor's events. The core never prints; it reports to traits implemented here.

pub mod diagnostic;
pub mod out;
pub mod progress;

use std::io::IsTerminal;

/// Rows as aligned columns (the first row is the header): text left, and the columns that
/// `right` names right-aligned (numbers).
pub fn table<R: AsRef<[String]>>(rows: &[R], right: &[usize]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.len());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .as_ref()
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &w))| {
                    if right.contains(&i) {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether to colour text. Colour is on only for a terminal, and never with `--no-color` or
/// `NO_COLOR`; everything reads the same without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    /// The style for a stream: `stdout` or `stderr` decides which terminal check applies.
    pub fn detect(no_color_flag: bool, stream_is_terminal: bool) -> Style {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: stream_is_terminal && !no_color_flag && !no_color_env,
        }
    }

    pub fn for_stdout(no_color_flag: bool) -> Style {
        Self::detect(no_color_flag, std::io::stdout().is_terminal())
    }

    pub fn for_stderr(no_color_flag: bool) -> Style {
        Self::detect(no_color_flag, std::io::stderr().is_terminal())
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let rows = vec![
            vec!["stack".to_string(), "add".to_string()],
            vec!["team-a".to_string(), "31".to_string()],
            vec!["b".to_string(), "2".to_string()],
        ];
        assert_eq!(
            super::table(&rows, &[1]),
            "stack   add\nteam-a   31\nb         2"
        );
    }
}
