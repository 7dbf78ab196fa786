//! Progress bars on stderr, only when stderr is a terminal: in scripts, logs and tests they
//! would be noise (and stdout may be carrying image data).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting bar; `len` `None` (stdin) gives a spinner with the count and rate.
pub fn bytes(len: Option<u64>, msg: impl Into<String>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (pb, template) = match len {
        Some(n) => (
            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            "{msg:24} [{bar:32}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} eta {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{msg:24} {spinner} {bytes:>10} {binary_bytes_per_sec:>12} {elapsed}",
        ),
    };
    // The templates are constants; the fallback only guards against a future indicatif.
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb.set_message(msg.into());
    pb
}
