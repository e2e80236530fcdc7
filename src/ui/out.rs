//! Writing to stdout and stderr without panicking. `println!` panics when the reader of a pipe
//! has gone (`mlops plan --json | head -c1`); here, as in ripgrep, a closed pipe only ends the
//! output, quietly. The command itself goes on to its end: an apply in flight still records
//! what it did and releases its lock, which a process killed by SIGPIPE would not. Any other
//! failure to write stdout (a full disk under `> backup.json`) is kept and reported when the
//! command ends, with exit 1: data is never cut short in silence. `clippy.toml` refuses the
//! `print!` family, so every write of the program comes through here (`outln!`, `errln!`...).

use std::fmt;
use std::io::{self, ErrorKind, Write};
use std::sync::Mutex;

/// The first failure to write stdout other than a closed pipe.
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `args` to stdout; see the module documentation for what a failure does.
pub fn stdout(args: fmt::Arguments) {
    let mut out = io::stdout().lock();
    if let Err(err) = out.write_fmt(args) {
        keep(err);
    }
}

/// Writes `args` to stderr. A failure is dropped: there is nowhere left to report it.
pub fn stderr(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

fn keep(err: io::Error) {
    if err.kind() == ErrorKind::BrokenPipe {
        return;
    }
    let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    failed.get_or_insert_with(|| err.to_string());
}

/// Flushes stdout at the end of the command; the reason stdout could not be written, if any
/// write failed for another reason than a closed pipe.
pub fn finish() -> Option<String> {
    if let Err(err) = io::stdout().lock().flush() {
        keep(err);
    }
    STDOUT_FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

/// `print!` to stdout, without a panic on a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::ui::out::stdout(format_args!($($arg)*)) };
}

/// `println!` to stdout, without a panic on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::ui::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!`, without a panic on a closed pipe.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::ui::out::stderr(format_args!($($arg)*)) };
}

/// `eprintln!`, without a panic on a closed pipe.
#[macro_export]
macro_rules! errln {
    () => { $crate::ui::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}
