//! Turning events into output: human lines on stderr, JSON lines on stdout.

use crate::core::spec::SpecError;
use crate::engine::Event;

/// Turns events into output: human lines on stderr or JSON lines on stdout.
pub(crate) struct Printer {
    pub json: bool,
}

impl Printer {
    pub fn json_line(&self, v: &serde_json::Value) {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{v}");
        let _ = stdout.flush();
    }

    pub fn event(&self, e: &Event) {
        if self.json {
            if let Ok(v) = serde_json::to_value(e) {
                self.json_line(&v);
            }
            return;
        }
        let line = match e {
            Event::Phase { phase } => format!("==> {phase}"),
            Event::Resource {
                id,
                kind,
                aws_id,
                action,
                elapsed_ms,
                detail,
            } => {
                let detail = detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                format!(
                    "  {:>7.1}s  {action:<9} {kind:<17} {id:<22} {}{detail}",
                    *elapsed_ms as f64 / 1000.0,
                    aws_id.as_deref().unwrap_or("")
                )
            }
            Event::Waiting { what, elapsed_ms } => {
                format!("  {:>7.1}s  waiting   {what}", *elapsed_ms as f64 / 1000.0)
            }
            Event::Warning { message } => format!("warning: {message}"),
            Event::Node {
                node,
                instance,
                phase,
                state,
                in_phase,
                elapsed_ms,
            } => format!(
                "  {:>7.1}s  node      {node:<10} {instance:<20} {phase:<13} {} {in_phase}",
                *elapsed_ms as f64 / 1000.0,
                match state {
                    crate::core::progress::State::Running => "running",
                    crate::core::progress::State::Failed => "FAILED",
                    crate::core::progress::State::Done => "done",
                },
            ),
            Event::ApiCall { service, operation } => format!("  api {service}:{operation}"),
        };
        eprintln!("{}", terminal_safe(&line));
    }

    pub fn spec_error(&self, e: &SpecError) {
        if self.json {
            let issues: Vec<serde_json::Value> = e
                .issues
                .iter()
                .map(|i| serde_json::json!({"file": i.file, "line": i.line, "column": i.column, "field": i.field, "message": i.message}))
                .collect();
            self.json_line(
                &serde_json::json!({"event": "error", "kind": "spec", "issues": issues}),
            );
        }
    }

    pub fn summary(&self, v: serde_json::Value) {
        if self.json {
            self.json_line(&v);
        }
    }
}

/// `text` with control characters (an ANSI escape, a bell, a carriage return from a spec or an
/// AWS answer) written as escapes, so that what reaches a terminal cannot drive it. Line breaks
/// and tabs stay.
pub(crate) fn terminal_safe(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let keep = !c.is_control() || c == '\n' || c == '\t';
            let escaped: Vec<char> = if keep {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_line_breaks_kept() {
        assert_eq!(
            super::terminal_safe("a\u{1b}[31mred\u{7}\r\nnext\tcol"),
            "a\\u{1b}[31mred\\u{7}\\r\nnext\tcol"
        );
    }
}
