//! SIGTERM and SIGINT: a command stops within about a second in every phase (stages, rules,
//! report, notifications) and says truthfully what it had already written.
//!
//! A thread of its own waits for the signals, so they are seen even while the command is inside
//! blocking work. The first one requests a stop ([`refopt_spec::stop`]: Rhai evaluations end at
//! their next operation, no plan is written after it) and wakes the main thread, which drops the
//! command. Should the process still be running [`GRACE`] later, the thread exits it; a second
//! signal exits at once.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// The signal that stopped the command.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    pub signal: &'static str,
    pub exit_code: u8,
}

/// How long the command has to stop after the first signal before the process exits anyway.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// The first signal received, if any.
static RECEIVED: std::sync::OnceLock<Interrupted> = std::sync::OnceLock::new();

/// The signal that stopped the command, if one arrived.
pub fn received() -> Option<Interrupted> {
    RECEIVED.get().copied()
}

/// Plans this process wrote, in order (their URLs).
static PLANS_WRITTEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a plan the command wrote, so that an interruption after it does not claim otherwise.
pub fn plan_written(url: &str) {
    PLANS_WRITTEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(url.to_string());
}

/// What an interruption leaves behind, for its message: nothing, or the plans written so far.
pub fn outcome() -> String {
    let written = PLANS_WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    match written.as_slice() {
        [] => "no plan written".to_string(),
        [one] => format!(
            "after writing plan {one} (its report or notifications may be missing; a rerun completes them)"
        ),
        [.., last] => format!(
            "after writing {} plans, the last {last} (its report or notifications may be missing; a rerun completes them)",
            written.len()
        ),
    }
}

/// Starts listening for SIGTERM and SIGINT; the receiver resolves on the first one. Without a
/// listener (the thread could not start) it never resolves and signals act as usual.
pub fn listen() -> oneshot::Receiver<Interrupted> {
    let (sender, receiver) = oneshot::channel();
    let started = std::thread::Builder::new()
        .name("refopt-signals".into())
        .spawn(move || wait_for_signals(sender));
    if started.is_err() {
        tracing::warn!("cannot start the signal listener; signals stop refopt without cleanup");
    }
    receiver
}

#[cfg(unix)]
fn wait_for_signals(sender: oneshot::Sender<Interrupted>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) else {
        return;
    };
    let mut sender = Some(sender);
    for number in signals.forever() {
        let interrupted = match number {
            SIGTERM => Interrupted {
                signal: "SIGTERM",
                exit_code: crate::exit::INTERRUPTED_TERM,
            },
            _ => Interrupted {
                signal: "SIGINT",
                exit_code: crate::exit::INTERRUPTED_INT,
            },
        };
        refopt_spec::stop::request();
        match sender.take() {
            Some(sender) => {
                let _ = RECEIVED.set(interrupted);
                let _ = sender.send(interrupted);
                // The watchdog: the main thread normally exits well before this.
                std::thread::spawn(move || {
                    std::thread::sleep(GRACE);
                    leave(interrupted);
                });
            }
            // A second signal: the operator insists. Leave now, removing only our temp files.
            None => leave(interrupted),
        }
    }
}

/// Exits now, saying so and removing only our temp files.
fn leave(interrupted: Interrupted) -> ! {
    let line = format!(
        "interrupted by {}: stopped, {}",
        interrupted.signal,
        outcome()
    );
    if crate::progress::json_logs() {
        tracing::warn!(
            signal = interrupted.signal,
            exit_code = interrupted.exit_code,
            "{line}"
        );
    } else {
        eprintln!("{line}");
    }
    crate::defaults::cleanup();
    std::process::exit(i32::from(interrupted.exit_code));
}

#[cfg(not(unix))]
fn wait_for_signals(sender: oneshot::Sender<Interrupted>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
        refopt_spec::stop::request();
        let interrupted = Interrupted {
            signal: "SIGINT",
            exit_code: crate::exit::INTERRUPTED_INT,
        };
        let _ = RECEIVED.set(interrupted);
        let _ = sender.send(interrupted);
    }
}
