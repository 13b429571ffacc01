//! YAML loading with serde-saphyr: located syntax and type errors, duplicate keys rejected,
//! alias expansion bounded by serde-saphyr's default budget (no "billion laughs").

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Location, SpecError};

/// Parses `text` (the contents of `file`) into `T`, turning any error into a located one.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SpecError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e
            .location()
            .map(|l| Location::from_yaml(file, &l))
            .unwrap_or_else(|| Location::file_start(file));
        SpecError::new(location, strip_location_suffix(&e.to_string()))
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
pub fn load<T: DeserializeOwned>(file: &Path) -> Result<T, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        SpecError::new(Location::file_start(file), format!("cannot read file: {e}"))
    })?;
    parse(file, &text)
}
