//! Diagnostics: the one shape of every problem refopt reports about its inputs, from the YAML
//! loaders, `refopt validate` and the dataset checks alike. A diagnostic has a stable code, a
//! level (error or warning), a location (`file:line:column`), a message and, when there is a
//! better way to say how to fix it, help. Codes are listed in `docs/cli.md`.

use std::fmt;
use std::path::PathBuf;

/// A position in a file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
}

impl Location {
    /// A location from a file and a serde-saphyr span.
    pub fn from_yaml(file: &std::path::Path, loc: &serde_saphyr::Location) -> Self {
        Self {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
        }
    }

    /// The start of a file (for problems not tied to one line).
    pub fn file_start(file: &std::path::Path) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Whether a diagnostic stops a run (`error`) or is worth a look (`warning`; an error under
/// `refopt validate --deny-warnings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// What kind of problem a diagnostic reports. The `RFnnn` names are stable: CI scripts may
/// match on them (docs/cli.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// A file that cannot be read.
    Unreadable,
    /// YAML syntax, structure, an unknown or missing key, a value of the wrong type.
    Yaml,
    /// A `version:` this build does not read.
    UnsupportedVersion,
    /// Any other invalid value: out of range, in the wrong order, empty where one is needed.
    InvalidValue,
    /// An id declared twice.
    Duplicate,
    /// A name that refers to nothing: stage, dataset, column, dimension, owner, role.
    UnknownReference,
    /// SQL that does not parse or plan.
    Sql,
    /// A Rhai script or expression that does not compile, or calls what the sandbox lacks.
    Script,
    /// A stage output that lacks what its role requires.
    RoleContract,
    /// A declared dataset that is missing, or lacks or mistypes a required column.
    Dataset,
    /// A deployment file (kustomization) that names a file that does not exist.
    Deployment,
    /// A secret written where an environment variable name belongs.
    Secret,
    /// Warning: a suppression past its expiry date; it no longer applies.
    Expired,
    /// Warning: a stage whose output nothing reads.
    Unused,
}

impl Code {
    /// Every code, in the order of docs/cli.md.
    pub const ALL: [Code; 14] = [
        Code::Unreadable,
        Code::Yaml,
        Code::UnsupportedVersion,
        Code::InvalidValue,
        Code::Duplicate,
        Code::UnknownReference,
        Code::Sql,
        Code::Script,
        Code::RoleContract,
        Code::Dataset,
        Code::Deployment,
        Code::Secret,
        Code::Expired,
        Code::Unused,
    ];

    /// The stable name, `RF001`...
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unreadable => "RF001",
            Code::Yaml => "RF002",
            Code::UnsupportedVersion => "RF003",
            Code::InvalidValue => "RF004",
            Code::Duplicate => "RF005",
            Code::UnknownReference => "RF006",
            Code::Sql => "RF007",
            Code::Script => "RF008",
            Code::RoleContract => "RF009",
            Code::Dataset => "RF010",
            Code::Deployment => "RF011",
            Code::Secret => "RF012",
            Code::Expired => "RF101",
            Code::Unused => "RF102",
        }
    }

    /// One line on what the code means.
    pub fn summary(self) -> &'static str {
        match self {
            Code::Unreadable => "a file cannot be read",
            Code::Yaml => "YAML syntax or structure: unknown or missing key, wrong type",
            Code::UnsupportedVersion => "a `version:` this build does not read",
            Code::InvalidValue => "an invalid value: out of range, wrong order, empty",
            Code::Duplicate => "an id declared twice",
            Code::UnknownReference => {
                "a name that refers to nothing: stage, dataset, column, dimension, owner"
            }
            Code::Sql => "SQL that does not parse or plan",
            Code::Script => "a Rhai script that does not compile or uses what the sandbox lacks",
            Code::RoleContract => "a stage output that lacks a column its role requires",
            Code::Dataset => "a dataset that is missing or lacks a required column",
            Code::Deployment => "a kustomization names a file that does not exist",
            Code::Secret => "a secret written where an environment variable name belongs",
            Code::Expired => "a suppression past its expiry date: it no longer applies",
            Code::Unused => "a stage whose output nothing reads and that publishes no role",
        }
    }

    /// The level diagnostics of this code have.
    pub fn level(self) -> Level {
        match self {
            Code::Expired | Code::Unused => Level::Warning,
            _ => Level::Error,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Diagnostic {
    pub code: Code,
    pub level: Level,
    pub location: Location,
    pub message: String,
    /// How to fix it, when there is something better to say than the message.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location`, of the generic [`Code::InvalidValue`] kind; see
    /// [`Diagnostic::code`].
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self::of(Code::InvalidValue, location, message)
    }

    /// A diagnostic of `code` (its level is the code's).
    pub fn of(code: Code, location: Location, message: impl Into<String>) -> Self {
        Self {
            code,
            level: code.level(),
            location,
            message: message.into(),
            help: None,
        }
    }

    /// The same diagnostic with another code (and that code's level).
    pub fn code(mut self, code: Code) -> Self {
        self.code = code;
        self.level = code.level();
        self
    }

    /// The same diagnostic with help on how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column: level[code]: message` and the help on its own line: the text form.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: {}[{}]: {}",
            self.location, self.level, self.code, self.message
        );
        if let Some(help) = &self.help {
            out.push_str("\n  help: ");
            out.push_str(help);
        }
        out
    }
}

/// Every problem found while loading a configuration (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
            if let Some(help) = &e.help {
                write!(f, "\n  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(e: Diagnostic) -> Self {
        Diagnostics(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_warnings_are_the_1xx_codes() {
        let names: std::collections::BTreeSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            assert_eq!(
                c.level() == Level::Warning,
                c.as_str().starts_with("RF1"),
                "{c}"
            );
        }
    }

    #[test]
    fn renders_location_level_code_message_and_help() {
        let d = Diagnostic::of(
            Code::UnknownReference,
            Location::file_start(std::path::Path::new("rules/fraud.yaml")),
            "unknown column `x`",
        )
        .help("columns of the table: a, b");
        assert_eq!(
            d.render(),
            "rules/fraud.yaml:1:1: error[RF006]: unknown column `x`\n  help: columns of the table: a, b"
        );
    }
}
