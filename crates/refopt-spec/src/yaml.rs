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
fn strip_location_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
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
