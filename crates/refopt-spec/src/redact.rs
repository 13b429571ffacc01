//! Text that leaves refopt (errors, logs, messages) without secrets or terminal control codes:
//! the one place URL credentials are hidden and printed data is made safe for a terminal.

use std::borrow::Cow;

/// Hides the `user:password@` part of every URL in `text`: `https://u:p@host/x` ->
/// `https://***@host/x`. A URL runs to the next whitespace or quote; everything between its
/// `://` and its last `@` is hidden, so a password holding `@` or `/` never shows in part.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let token_end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
        match after[..token_end].rfind('@') {
            Some(at) if at > 0 => {
                out.push_str("***");
                out.push_str(&after[at..token_end]);
            }
            _ => out.push_str(&after[..token_end]),
        }
        rest = &after[token_end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` with control characters (ANSI/OSC escapes, bell, backspace, carriage return, ...)
/// shown as `\u{..}` escapes, so data printed to a terminal cannot move the cursor, retitle the
/// window or hide what was printed. Newlines and tabs are escaped too: a value is one line.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden_everywhere_in_a_text() {
        for (given, shown) in [
            (
                "pushgateway http://user:PASSWORD@host:9091/metrics: refused",
                "pushgateway http://***@host:9091/metrics: refused",
            ),
            ("s3://AKIA123:secret1@part2@bucket/x", "s3://***@bucket/x"),
            (
                "cannot read https://u:TOKEN@h/a and 'https://v:T2@h/b'",
                "cannot read https://***@h/a and 'https://***@h/b'",
            ),
            ("s3://key:se/cret@bucket/x", "s3://***@bucket/x"),
            ("no url here, mail a@b.c", "no url here, mail a@b.c"),
            ("s3://bucket/plain/path", "s3://bucket/plain/path"),
        ] {
            assert_eq!(redact_secrets(given), shown, "{given}");
        }
        for secret in ["PASSWORD", "TOKEN", "secret1", "part2", "T2", "cret"] {
            assert!(!redact_secrets(&format!("x https://u:{secret}@h/y")).contains(secret));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(terminal_safe("Acme"), "Acme");
        let shown = terminal_safe("Acme\u{1b}]0;owned\u{7}\u{1b}[2J\r\nX");
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.contains("Acme") && shown.contains("owned"));
    }
}
