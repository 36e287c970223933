//! The monitor's log: one line at a time on stderr, which it shares with the child. The child
//! can make that descriptor non-blocking and fill it, or shut the socket behind it down, so a
//! line is written only as far as it can be within a short wait, and is otherwise dropped and
//! counted; the count is said with the next line that gets through. Logging never fails,
//! never panics and never holds the monitor up for long.
//!
//! What the monitor logs carries text the child chose (a path it asked for, an address): every
//! control character, and the backslash, is escaped, so that a line of the log is one line the
//! monitor wrote and no text can forge another or drive root's terminal.

use crate::sys;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long one line may wait for stderr to take it, while lines are getting through.
pub const WAIT_MS: u32 = 100;

/// Lines dropped since the last one written (the monitor is single-threaded: relaxed is enough).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Writes `text` and a newline to stderr, or drops it: see the module's header. Once a line
/// was dropped, the next ones do not wait at all until one gets through.
pub fn line(text: &str) {
    let dropped = DROPPED.load(Ordering::Relaxed);
    let mut bytes = Vec::with_capacity(text.len() + 80);
    if dropped > 0 {
        bytes.extend_from_slice(
            format!(
                "privsep-monitor: {} line(s) of this log were dropped: stderr did not take them\n",
                dropped
            )
            .as_bytes(),
        );
    }
    bytes.extend_from_slice(escape(text).as_bytes());
    bytes.push(b'\n');
    let wait = if dropped > 0 { 0 } else { WAIT_MS };
    match sys::write_bounded(2, &bytes, wait) {
        Ok(_) => DROPPED.store(0, Ordering::Relaxed),
        Err(_) => {
            DROPPED.store(dropped + 1, Ordering::Relaxed);
        }
    }
}

/// `text` with the backslash and every control character (C0, DEL, C1, and the Unicode line
/// and paragraph separators) escaped as Rust writes them: `\\`, `\n`, `\u{1b}`, ...
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_leaves_one_line_of_printable_text() {
        assert_eq!(escape("/etc/key.pem"), "/etc/key.pem");
        assert_eq!(escape("é ü 鍵"), "é ü 鍵");
        assert_eq!(
            escape("/x\nforged\r\u{1b}[2K\\n\u{85}\u{2028}\u{7f}"),
            "/x\\nforged\\r\\u{1b}[2K\\\\n\\u{85}\\u{2028}\\u{7f}"
        );
        for c in (0u32..0x110000).filter_map(char::from_u32) {
            let escaped = escape(&c.to_string());
            assert!(
                !escaped
                    .chars()
                    .any(|e| e.is_control() || e == '\u{2028}' || e == '\u{2029}'),
                "{:?}",
                c
            );
        }
    }
}
