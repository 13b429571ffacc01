//! YAML loading with serde-saphyr: located syntax and type errors, duplicate keys rejected,
//! alias expansion bounded by serde-saphyr's default budget (no "billion laughs").

use std::path::Path;

use serde::de::DeserializeOwned;

use serde_saphyr::Spanned;

use crate::diagnostic::{Code, Diagnostic, Location};

/// Parses `text` (the contents of `file`) into `T`, turning any error into a located one.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Diagnostic> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e
            .location()
            .map(|l| Location::from_yaml(file, &l))
            .unwrap_or_else(|| Location::file_start(file));
        Diagnostic::of(Code::Yaml, location, strip_location_suffix(&e.to_string()))
    })
}

/// serde-saphyr appends " at line X, column Y" to messages; we print the location up front.
/// Only that exact phrase is cut (what follows it, such as a closing parenthesis, stays), so a
/// message is never truncated mid-sentence.
fn strip_location_suffix(message: &str) -> String {
    let Some(i) = message.rfind(" at line ") else {
        return message.to_string();
    };
    let rest = &message[i + " at line ".len()..];
    let digits = |t: &str| t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let line = digits(rest);
    let Some(after_line) = rest[line..].strip_prefix(", column ").filter(|_| line > 0) else {
        return message.to_string();
    };
    let column = digits(after_line);
    if column == 0 {
        return message.to_string();
    }
    format!("{}{}", &message[..i], &after_line[column..])
}

/// Reads and parses a YAML file.
pub fn load<T: DeserializeOwned>(file: &Path) -> Result<T, Diagnostic> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Diagnostic::of(
            Code::Unreadable,
            Location::file_start(file),
            format!("cannot read file: {e}"),
        )
    })?;
    parse(file, &text)
}

/// The problem with a file's `version:` key when it is not `supported`, located at the key.
pub fn check_version(
    file: &Path,
    version: &Spanned<u32>,
    supported: u32,
    what: &str,
) -> Option<Diagnostic> {
    (version.value != supported).then(|| {
        Diagnostic::of(
            Code::UnsupportedVersion,
            Location::from_yaml(file, &version.referenced),
            format!("unsupported {what} version {}", version.value),
        )
        .help(format!(
            "this build of refopt reads {what} version {supported}"
        ))
    })
}

#[cfg(test)]
mod location_suffix_tests {
    use super::strip_location_suffix;

    #[test]
    fn only_the_location_phrase_is_cut() {
        assert_eq!(
            strip_location_suffix("bad value at line 3, column 7"),
            "bad value"
        );
        assert_eq!(
            strip_location_suffix("budget exceeded (used 1001 nodes at line 2, column 1)"),
            "budget exceeded (used 1001 nodes)"
        );
        assert_eq!(
            strip_location_suffix("text mentioning at line without numbers"),
            "text mentioning at line without numbers"
        );
    }
}
