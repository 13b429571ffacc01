//! Progress reporting on stderr: a progress bar on a terminal, plain lines otherwise (logs).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use refopt_engine::{StageObserver, StageRecord, StageStatus};

fn bar(len: u64, template: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Some(bar)
}

/// A windows-done bar with an ETA for backfills and backtests (None off a terminal).
pub fn window_bar(windows: u64) -> Option<ProgressBar> {
    bar(
        windows,
        "{spinner} windows [{bar:30}] {pos}/{len} elapsed {elapsed} ETA {eta} {msg}",
    )
}

/// Whether log lines are JSON (set once at start-up from `--log-format`).
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Chooses the log format: JSON lines through a `tracing` subscriber, or plain text (progress
/// and messages printed directly, plus refopt's own warnings and errors as `WARN ...` lines).
/// Either way every log line leaves with URL credentials hidden.
pub fn init_logs(json: bool) {
    let _ = JSON_LOGS.set(json);
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_writer(RedactedStderr)
            .with_current_span(false)
            .init();
    } else {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let ours =
            tracing_subscriber::filter::Targets::new().with_target("refopt", tracing::Level::WARN);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_target(false)
                    .with_writer(RedactedStderr),
            )
            .with(ours)
            .init();
    }
}

/// Standard error for log lines, with URL credentials hidden (`redact_secrets`): each event is
/// buffered and written, redacted, in one piece.
struct RedactedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedLine;
    fn make_writer(&'a self) -> RedactedLine {
        RedactedLine(Vec::new())
    }
}

struct RedactedLine(Vec<u8>);

impl std::io::Write for RedactedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            refopt_spec::redact::redact_secrets(&text).as_bytes(),
        );
    }
}

/// Whether `--log-format json` is on.
pub fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}

/// A status line for the operator: printed as is, or an `info` event under `--log-format json`
/// so that every stderr line stays one JSON object.
pub fn notice(message: &str) {
    if json_logs() {
        tracing::info!("{message}");
    } else {
        eprintln!("{message}");
    }
}

/// Like [`notice`], at `warn` level.
pub fn warning(message: &str) {
    if json_logs() {
        tracing::warn!("{message}");
    } else {
        eprintln!("{message}");
    }
}

/// Stage progress of a run.
pub struct StageProgress {
    bar: Option<ProgressBar>,
}

impl StageProgress {
    pub fn new(stages: usize) -> Self {
        Self {
            bar: if json_logs() {
                None
            } else {
                bar(
                    stages as u64,
                    "{spinner} stages [{bar:30}] {pos}/{len} {elapsed} {msg}",
                )
            },
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl StageObserver for StageProgress {
    fn started(&self, stage: &str) {
        if json_logs() {
            tracing::info!(stage, "stage started");
            return;
        }
        match &self.bar {
            Some(b) => b.set_message(format!("running {stage}")),
            None => eprintln!("stage {stage}: started"),
        }
    }

    fn phase_started(&self, phase: &str) {
        if json_logs() {
            tracing::info!(phase, "phase started");
            return;
        }
        let line = format!("{phase}: started");
        match &self.bar {
            Some(b) => b.set_message(line),
            None => eprintln!("{line}"),
        }
    }

    fn finished(&self, r: &StageRecord) {
        let status = match r.status {
            StageStatus::Succeeded => "succeeded",
            StageStatus::Failed => "FAILED",
            StageStatus::Skipped => "skipped",
        };
        if json_logs() {
            let duration_ms = r.duration.map(|d| d.as_millis() as u64);
            match r.status {
                StageStatus::Failed => tracing::error!(
                    stage = %r.id, status, attempts = r.attempts, duration_ms,
                    error = r.error.as_deref().unwrap_or_default(), "stage finished"
                ),
                _ => tracing::info!(
                    stage = %r.id, status, attempts = r.attempts, duration_ms,
                    rows = r.output_rows, "stage finished"
                ),
            }
            return;
        }
        let line = format!(
            "stage {}: {status}{}{}{}",
            r.id,
            r.duration
                .map(|d| format!(" in {:.2}s", d.as_secs_f64()))
                .unwrap_or_default(),
            if r.attempts > 1 {
                format!(" after {} attempts", r.attempts)
            } else {
                String::new()
            },
            r.output_rows
                .map(|n| format!(", {n} rows"))
                .unwrap_or_default(),
        );
        match &self.bar {
            Some(b) => {
                b.inc(1);
                if r.status != StageStatus::Succeeded {
                    b.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
    }
}

/// Day-by-day progress of data generation.
pub struct GenerationProgress {
    bar: Option<ProgressBar>,
    last_logged_decile: Mutex<u32>,
}

impl GenerationProgress {
    pub fn new(days: u32) -> Self {
        Self {
            bar: if json_logs() {
                None
            } else {
                bar(
                    u64::from(days),
                    "{spinner} days [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
            },
            last_logged_decile: Mutex::new(0),
        }
    }

    pub fn update(&self, done: u32, total: u32, invites: u64) {
        if json_logs() {
            let decile = done * 10 / total.max(1);
            let mut last = self.last_logged_decile.lock().expect("progress lock");
            if decile > *last {
                *last = decile;
                tracing::info!(days_done = done, days = total, invites, "generating");
            }
            return;
        }
        match &self.bar {
            Some(b) => {
                b.set_position(u64::from(done));
                b.set_message(format!("{invites} invites"));
            }
            None => {
                let decile = done * 10 / total.max(1);
                let mut last = self.last_logged_decile.lock().expect("progress lock");
                if decile > *last {
                    *last = decile;
                    eprintln!("generated {done}/{total} days, {invites} invites");
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
