//! The two faces of the executor's progress: spinners with elapsed time per resource on a
//! terminal (finished lines stay, with their outcome and duration), and one timestamped line
//! per event otherwise (CI logs).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Style;
use crate::exec::{Op, Reporter};
use crate::model::Address;

/// How a command shows progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Spinners on a terminal, timestamped lines otherwise, on stderr.
    Auto,
    /// JSON events on stdout.
    Json,
    /// Timestamped lines on stderr, each starting with `[<stack>]`: many stacks at once.
    Stack(String),
}

/// The reporter for `progress`; `terminal` tells whether stderr is one.
pub fn reporter(style: Style, terminal: bool, progress: Progress) -> Box<dyn Reporter> {
    match progress {
        Progress::Json => Box::new(JsonEvents),
        Progress::Auto if terminal => Box::new(Spinners::new(style)),
        Progress::Auto => Box::new(Lines {
            prefix: String::new(),
        }),
        Progress::Stack(name) => Box::new(Lines {
            prefix: format!("[{name}] "),
        }),
    }
}

/// The version of the event lines of `apply --json` and `destroy --json` (docs/ci.md).
pub const EVENTS_FORMAT_VERSION: &str = "1.0";

/// One JSON object per line on stdout, for pipelines (docs/ci.md).
pub struct JsonEvents;

/// Prints one event line: `{"type": ..., "time": ..., fields...}`.
pub fn event(kind: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({
        "type": kind,
        "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    println!("{line}");
}

impl Reporter for JsonEvents {
    fn started(&self, address: &Address, op: Op) {
        event(
            "started",
            serde_json::json!({ "address": address, "operation": op.verb() }),
        );
    }

    fn waiting(&self, address: &Address, what: &str) {
        event(
            "waiting",
            serde_json::json!({ "address": address, "for": what }),
        );
    }

    fn retrying(&self, address: &Address, error: &str, delay: Duration) {
        event(
            "retrying",
            serde_json::json!({ "address": address, "error": error, "delay_ms": delay.as_millis() as u64 }),
        );
    }

    fn adopted(&self, address: &Address, id: &str) {
        event(
            "adopted",
            serde_json::json!({ "address": address, "id": id }),
        );
    }

    fn finished(&self, address: &Address, op: Op, elapsed: Duration) {
        event(
            "finished",
            serde_json::json!({ "address": address, "operation": op.verb(), "duration_ms": elapsed.as_millis() as u64 }),
        );
    }

    fn failed(&self, address: &Address, op: Op, error: &str) {
        event(
            "failed",
            serde_json::json!({ "address": address, "operation": op.verb(), "error": error }),
        );
    }

    fn interrupted(&self, in_flight: usize) {
        event("interrupted", serde_json::json!({ "in_flight": in_flight }));
    }
}

/// `1m 3s`, `12s`, `0.4s`.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// One line per event, each with a UTC timestamp.
pub struct Lines {
    prefix: String,
}

impl Lines {
    fn line(&self, text: &str) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        eprintln!("{now} {}{text}", self.prefix);
    }
}

impl Reporter for Lines {
    fn started(&self, address: &Address, op: Op) {
        self.line(&format!("{address}: {}", op.doing()));
    }

    fn waiting(&self, address: &Address, what: &str) {
        self.line(&format!("{address}: waiting {what}"));
    }

    fn retrying(&self, address: &Address, error: &str, delay: Duration) {
        self.line(&format!(
            "{address}: not ready yet ({error}); retrying in {}",
            duration(delay)
        ));
    }

    fn adopted(&self, address: &Address, id: &str) {
        self.line(&format!(
            "{address}: found `{id}` from an earlier run; adopting it"
        ));
    }

    fn finished(&self, address: &Address, op: Op, elapsed: Duration) {
        self.line(&format!(
            "{address}: {} in {}",
            op.done(),
            duration(elapsed)
        ));
    }

    fn failed(&self, address: &Address, op: Op, error: &str) {
        self.line(&format!("{address}: {} failed: {error}", op.verb()));
    }

    fn interrupted(&self, in_flight: usize) {
        self.line(&format!(
            "interrupted: finishing {in_flight} operation(s) in flight, then saving the state"
        ));
    }
}

/// A spinner per resource in flight.
pub struct Spinners {
    style: Style,
    multi: MultiProgress,
    bars: Mutex<BTreeMap<Address, (ProgressBar, Op)>>,
}

impl Spinners {
    fn new(style: Style) -> Self {
        Spinners {
            style,
            multi: MultiProgress::new(),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn with_bar(&self, address: &Address, f: impl FnOnce(&ProgressBar, Op)) {
        if let Some((bar, op)) = self.bars.lock().expect("not poisoned").get(address) {
            f(bar, *op);
        }
    }

    fn end(&self, address: &Address, line: String) {
        if let Some((bar, _)) = self.bars.lock().expect("not poisoned").remove(address) {
            bar.finish_and_clear();
        }
        let _ = self.multi.println(line);
    }
}

impl Reporter for Spinners {
    fn started(&self, address: &Address, op: Op) {
        let template = ProgressStyle::with_template("{spinner} {prefix:.bold}  {msg}  {elapsed}")
            .expect("valid template");
        let bar = self
            .multi
            .add(ProgressBar::new_spinner().with_style(template));
        bar.set_prefix(address.to_string());
        bar.set_message(op.doing());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars
            .lock()
            .expect("not poisoned")
            .insert(address.clone(), (bar, op));
    }

    fn waiting(&self, address: &Address, what: &str) {
        self.with_bar(address, |bar, op| {
            bar.set_message(format!("{}, waiting {what}", op.doing()))
        });
    }

    fn retrying(&self, address: &Address, error: &str, delay: Duration) {
        self.with_bar(address, |bar, op| {
            bar.set_message(format!(
                "{}, not ready yet ({error}); retrying in {}",
                op.doing(),
                duration(delay)
            ))
        });
    }

    fn adopted(&self, address: &Address, id: &str) {
        let _ = self.multi.println(format!(
            "  {address}: found `{id}` from an earlier run; adopting it"
        ));
    }

    fn finished(&self, address: &Address, op: Op, elapsed: Duration) {
        let mark = self.style.green("✓");
        self.end(
            address,
            format!("{mark} {address}  {} in {}", op.done(), duration(elapsed)),
        );
    }

    fn failed(&self, address: &Address, op: Op, error: &str) {
        let mark = self.style.red("✗");
        self.end(
            address,
            format!("{mark} {address}  {} failed: {error}", op.verb()),
        );
    }

    fn interrupted(&self, in_flight: usize) {
        let _ = self.multi.println(format!(
            "interrupted: finishing {in_flight} operation(s) in flight, then saving the state"
        ));
    }
}
