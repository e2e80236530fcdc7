//! The faces of the executor's progress: spinners with elapsed time per resource on a
//! terminal (finished lines stay, with their outcome and duration), one timestamped line per
//! event otherwise (CI logs), JSON events, and for many stacks at once on a terminal one live
//! line per stack (its name, what it is doing, its counts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Style;
use crate::base::{Op, Reporter};
use crate::model::Address;

/// How a command shows progress.
#[derive(Clone)]
pub enum Progress {
    /// Spinners on a terminal, timestamped lines otherwise, on stderr.
    Auto,
    /// JSON events on stdout.
    Json,
    /// Timestamped lines on stderr, each starting with `[<stack>]`: many stacks at once.
    Stack(String),
    /// The stack's live line on a terminal: many stacks at once.
    Live(StackLine),
}

impl Progress {
    /// For one of many stacks: its live line on the `board` when there is one (a terminal),
    /// else prefixed lines.
    pub fn of_stack(board: Option<&Board>, name: &str) -> Progress {
        match board {
            Some(board) => Progress::Live(board.line(name)),
            None => Progress::Stack(name.to_string()),
        }
    }

    /// `total` operations begin (`doing`: `applying`, `destroying`), on the live line if
    /// there is one.
    pub fn running(&self, doing: &str, total: usize) {
        if let Progress::Live(line) = self {
            line.running(doing, total);
        }
    }

    /// The stack is finished with `outcome`, on the live line if there is one.
    pub fn finish(&self, outcome: &str, ok: bool) {
        if let Progress::Live(line) = self {
            line.finish(outcome, ok);
        }
    }

    /// Prints with `print`, keeping a live line intact.
    pub fn print<R>(&self, print: impl FnOnce() -> R) -> R {
        match self {
            Progress::Live(line) => line.suspend(print),
            _ => print(),
        }
    }
}

/// The reporter for `progress`; `terminal` tells whether stderr is one.
pub fn reporter(style: Style, terminal: bool, progress: Progress) -> Box<dyn Reporter> {
    match progress {
        Progress::Json => Box::new(JsonEvents),
        Progress::Auto if terminal => Box::new(Spinners::new(style)),
        Progress::Auto => Box::new(Lines::new(String::new())),
        Progress::Stack(name) => Box::new(Lines::new(format!("[{name}] "))),
        Progress::Live(line) => Box::new(line),
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
    crate::outln!("{line}");
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

    fn warning(&self, message: &str) {
        event("warning", serde_json::json!({ "message": message }));
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
    /// What is in flight, since when: for the lines of long waits.
    in_flight: Mutex<BTreeMap<Address, (Op, Instant)>>,
}

/// `eks_cluster: still creating (4m 30s elapsed)`.
fn still_line(address: &Address, op: Op, elapsed: Duration) -> String {
    format!(
        "{address}: still {} ({} elapsed)",
        op.doing(),
        duration(elapsed)
    )
}

impl Lines {
    fn new(prefix: String) -> Lines {
        Lines {
            prefix,
            in_flight: Mutex::new(BTreeMap::new()),
        }
    }

    fn done(&self, address: &Address) {
        self.in_flight.lock().expect("not poisoned").remove(address);
    }

    fn line(&self, text: &str) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        crate::errln!("{now} {}{text}", self.prefix);
    }
}

impl Reporter for Lines {
    fn started(&self, address: &Address, op: Op) {
        self.in_flight
            .lock()
            .expect("not poisoned")
            .insert(address.clone(), (op, Instant::now()));
        self.line(&format!("{address}: {}", op.doing()));
    }

    fn waiting(&self, address: &Address, what: &str) {
        self.line(&format!("{address}: waiting {what}"));
    }

    fn still_waiting(&self, address: &Address) {
        let since = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .get(address)
            .copied();
        if let Some((op, started)) = since {
            self.line(&still_line(address, op, started.elapsed()));
        }
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
        self.done(address);
        self.line(&format!(
            "{address}: {} in {}",
            op.done(),
            duration(elapsed)
        ));
    }

    fn failed(&self, address: &Address, op: Op, error: &str) {
        self.done(address);
        self.line(&format!("{address}: {} failed: {error}", op.verb()));
    }

    fn interrupted(&self, in_flight: usize) {
        self.line(&format!(
            "interrupted: finishing {in_flight} operation(s) in flight, then saving the state"
        ));
    }

    fn warning(&self, message: &str) {
        self.line(&format!("warning: {message}"));
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

    fn warning(&self, message: &str) {
        let _ = self
            .multi
            .println(format!("{} {message}", self.style.yellow("warning:")));
    }
}

/// The live lines of many stacks at once, on a terminal: one per stack, in the order added.
pub struct Board {
    style: Style,
    multi: MultiProgress,
    /// The widest stack name, so that the lines align.
    width: usize,
}

impl Board {
    /// A board for the stacks `names`.
    pub fn new(style: Style, names: &[String]) -> Board {
        Board {
            style,
            multi: MultiProgress::new(),
            width: names.iter().map(String::len).max().unwrap_or(0),
        }
    }

    /// The line of stack `name`, shown from now on.
    pub fn line(&self, name: &str) -> StackLine {
        let template = format!(
            "{{spinner}} {{prefix:<{}.bold}}  {{msg}}  {{elapsed}}",
            self.width
        );
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let line = StackLine(Arc::new(LineState {
            name: name.to_string(),
            width: self.width,
            style: self.style,
            bar,
            work: Mutex::new(Work::default()),
        }));
        line.phase("starting");
        line
    }
}

/// One stack's live line: its phase, how many operations are done of how many, what is in
/// flight. Cloned into the stack's reporter: `ops` sets the phases before the operations
/// (`locking`, `refreshing`), the command the run's (`applying`) and the outcome.
#[derive(Clone)]
pub struct StackLine(Arc<LineState>);

struct LineState {
    name: String,
    width: usize,
    style: Style,
    bar: ProgressBar,
    work: Mutex<Work>,
}

/// What a stack's line shows.
#[derive(Default)]
struct Work {
    phase: String,
    /// Operations of the plan being applied, once known.
    total: Option<usize>,
    done: usize,
    failed: usize,
    /// Per resource in flight, what it is doing (`creating`, `waiting for ...`).
    running: BTreeMap<Address, String>,
}

impl Work {
    fn render(&self) -> String {
        let mut text = self.phase.clone();
        if let Some(total) = self.total {
            text.push_str(&format!(" {}/{total}", self.done));
        }
        if self.failed > 0 {
            text.push_str(&format!(", {} failed", self.failed));
        }
        if let Some((address, doing)) = self.running.iter().next() {
            text.push_str(&format!("  {address} {doing}"));
            if self.running.len() > 1 {
                text.push_str(&format!(" (+{} more)", self.running.len() - 1));
            }
        }
        text
    }
}

impl StackLine {
    fn update(&self, change: impl FnOnce(&mut Work)) {
        let mut work = self.0.work.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut work);
        self.0.bar.set_message(work.render());
    }

    /// `total` operations begin: `doing` is `applying` or `destroying`.
    pub fn running(&self, doing: &str, total: usize) {
        self.update(|w| {
            w.phase = doing.to_string();
            w.total = Some(total);
        });
    }

    /// The stack is finished: the line stays with `outcome` and the time it took.
    pub fn finish(&self, outcome: &str, ok: bool) {
        let mark = if ok {
            self.0.style.green("✓")
        } else {
            self.0.style.red("✗")
        };
        let template = format!(
            "{mark} {{prefix:<{}.bold}}  {{msg}}  {{elapsed}}",
            self.0.width
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            self.0.bar.set_style(style);
        }
        self.0.bar.finish_with_message(outcome.to_string());
    }

    /// Runs `print` with the lines hidden, so that text written meanwhile is not torn.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.0.bar.suspend(print)
    }
}

impl Reporter for StackLine {
    fn started(&self, address: &Address, op: Op) {
        self.update(|w| {
            w.running.insert(address.clone(), op.doing().to_string());
        });
    }

    fn waiting(&self, address: &Address, what: &str) {
        self.update(|w| {
            w.running.insert(address.clone(), format!("waiting {what}"));
        });
    }

    fn retrying(&self, address: &Address, _: &str, delay: Duration) {
        self.update(|w| {
            w.running.insert(
                address.clone(),
                format!("not ready yet, retrying in {}", duration(delay)),
            );
        });
    }

    fn adopted(&self, _: &Address, _: &str) {}

    fn finished(&self, address: &Address, _: Op, _: Duration) {
        self.update(|w| {
            w.running.remove(address);
            w.done += 1;
        });
    }

    fn failed(&self, address: &Address, op: Op, error: &str) {
        self.update(|w| {
            w.running.remove(address);
            w.failed += 1;
        });
        self.0.bar.println(format!(
            "[{}] {address}: {} failed: {error}",
            self.0.name,
            op.verb()
        ));
    }

    fn interrupted(&self, in_flight: usize) {
        self.phase(&format!("interrupted, finishing {in_flight} in flight"));
    }

    /// What the stack is at: `starting`, `locking`, `refreshing`...
    fn phase(&self, phase: &str) {
        self.update(|w| w.phase = phase.to_string());
    }

    fn warning(&self, message: &str) {
        self.0.bar.println(format!(
            "[{}] {} {message}",
            self.0.name,
            self.0.style.yellow("warning:")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_wait_without_a_terminal_says_what_is_still_going_on() {
        let line = still_line(
            &Address::new("eks_cluster"),
            Op::Create,
            Duration::from_secs(270),
        );
        assert_eq!(line, "eks_cluster: still creating (4m 30s elapsed)");
    }

    #[test]
    fn a_stack_line_shows_its_phase_counts_and_what_is_in_flight() {
        let mut work = Work {
            phase: "applying".into(),
            total: Some(12),
            ..Work::default()
        };
        work.done = 5;
        work.running
            .insert(Address::new("eks_cluster"), "waiting for ACTIVE".into());
        work.running.insert(Address::new("vpc"), "creating".into());
        assert_eq!(
            work.render(),
            "applying 5/12  eks_cluster waiting for ACTIVE (+1 more)"
        );
        work.failed = 1;
        work.running.clear();
        assert_eq!(work.render(), "applying 5/12, 1 failed");
        let refreshing = Work {
            phase: "refreshing".into(),
            ..Work::default()
        };
        assert_eq!(refreshing.render(), "refreshing");
    }
}
