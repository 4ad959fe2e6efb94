//! Pipeline files: the TOML schema, strict parsing with positioned errors, validation of
//! the whole graph before anything starts, and assembly into a runnable [`Graph`].
//!
//! A file has a `[pipeline]` header, optional `[train]` settings, named data sets under
//! `[data.NAME]`, and stages under `[stage.NAME]`, each with a `kind` from a closed set
//! ([`StageKind`]) and an `input` naming the stage(s) it reads from. Every key is
//! checked: unknown keys, keys that do not apply to a stage's kind, dangling inputs,
//! edges whose item types differ, zero capacities and missing data files are errors
//! that name the file, line, column and key.
//!
//! [`Graph`]: crate::graph::Graph

pub mod assemble;
mod error;
mod schema;
mod validate;

pub use error::PipelineError;
pub use schema::*;
pub use validate::{origin_words, EdgePlan, Plan, StagePlan};

use std::path::{Path, PathBuf};

/// A parsed (not yet validated) pipeline file.
#[derive(Clone, Debug)]
pub struct PipelineFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its text, for error positions.
    pub text: String,
    /// The parsed document.
    pub spec: PipelineSpec,
}

impl PipelineFile {
    /// Reads and parses a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let io = |message: String| PipelineError::Io {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            io(format!(
                "not UTF-8 text: byte {at} (line {line}) is 0x{:02x}; save the file as UTF-8",
                e.as_bytes()[at]
            ))
        })?;
        if text.trim().is_empty() {
            return Err(io(
                "the file is empty: a pipeline needs at least [pipeline], [train], its [data.NAME] sets and its [stage.NAME] stages (see the files in pipelines/)".to_string(),
            ));
        }
        Self::parse(path, text)
    }

    /// Parses pipeline text that was read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Self, PipelineError> {
        if let Err(e) = text.parse::<toml::Table>() {
            return Err(PipelineError::at(
                path,
                &text,
                e.span(),
                None,
                format!("invalid TOML syntax: {}", e.message().trim()),
            ));
        }
        match toml::from_str::<PipelineSpec>(&text) {
            Ok(spec) => Ok(Self {
                path: path.to_path_buf(),
                text,
                spec,
            }),
            Err(e) => {
                let key = e.span().and_then(|sp| error::key_at(&text, sp.start));
                let stage = key
                    .as_deref()
                    .and_then(|k| stage_keys(&text, k, e.message()));
                let stage = stage.as_ref().map(|(kind, keys)| (*kind, keys.as_slice()));
                Err(PipelineError::at(
                    path,
                    &text,
                    e.span(),
                    key.as_deref(),
                    error::explain_toml(e.message(), stage),
                ))
            }
        }
    }

    /// An error positioned at `span` of this file.
    pub(crate) fn error(
        &self,
        span: std::ops::Range<usize>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> PipelineError {
        PipelineError::at(&self.path, &self.text, Some(span), key, message.into())
    }
}

/// Where `message` is about an unknown key KEY on the line of `key` = `stage.NAME.KEY`
/// (not one inside an inline table on that line), the kind of stage NAME in `text` and
/// the keys it takes (with `kind` and `input`).
fn stage_keys(text: &str, key: &str, message: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let unknown = message.strip_prefix("unknown field `")?.split('`').next()?;
    let mut parts = key.split('.');
    let (Some("stage"), Some(name), Some(field), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if field != unknown {
        return None;
    }
    let table: toml::Table = text.parse().ok()?;
    let kind = table.get("stage")?.get(name)?.get("kind")?.as_str()?;
    let kind = schema::StageKind::parse(kind)?;
    let mut keys = vec!["kind", "input"];
    keys.extend_from_slice(kind.keys().0);
    Some((kind.name(), keys))
}
