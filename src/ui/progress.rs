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

/// Picks the reporter for stderr: spinners on a terminal, lines otherwise.
pub fn reporter(style: Style, terminal: bool) -> Box<dyn Reporter> {
    if terminal {
        Box::new(Spinners::new(style))
    } else {
        Box::new(Lines)
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
pub struct Lines;

impl Lines {
    fn line(&self, text: &str) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        eprintln!("{now} {text}");
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
