//! Pipeline errors that point at the file, line, column and key, with the offending
//! line quoted, in the style of a compiler diagnostic.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a pipeline file cannot be used.
#[derive(Debug, Clone)]
pub enum PipelineError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// A problem at a place in the file.
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key concerned, dotted (`stage.batch.batch_size`), where known.
        key: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
        /// The line of the file, quoted.
        snippet: String,
    },
}

impl PipelineError {
    /// A positioned error; `span` is a byte range of `text`.
    pub fn at(
        path: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        key: Option<&str>,
        message: String,
    ) -> Self {
        let start = span.map(|s| s.start.min(text.len())).unwrap_or(0);
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        let snippet = text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string();
        PipelineError::At {
            path: path.to_path_buf(),
            line,
            column,
            key: key.map(str::to_string),
            message,
            snippet,
        }
    }

    /// The message without the position.
    pub fn message(&self) -> &str {
        match self {
            PipelineError::Io { message, .. } | PipelineError::At { message, .. } => message,
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Io { path, message } => {
                write!(f, "cannot read pipeline file {}: {message}", path.display())
            }
            PipelineError::At {
                path,
                line,
                column,
                key,
                message,
                snippet,
            } => {
                write!(f, "{}:{line}:{column}: ", path.display())?;
                if let Some(k) = key {
                    write!(f, "key `{k}`: ")?;
                }
                write!(f, "{message}")?;
                if !snippet.is_empty() {
                    write!(
                        f,
                        "\n  {line:>4} | {snippet}\n       | {:>width$}^",
                        "",
                        width = column.saturating_sub(1)
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PipelineError {}

/// Rewords serde/toml messages into plainer language. `stage` gives the kind and keys
/// of the stage whose table the message is about, where it is one: the keys of every
/// kind would be the wrong list for an unknown key in it.
pub(crate) fn explain_toml(message: &str, stage: Option<(&str, &[&str])>) -> String {
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        // "unknown field `foo`, expected one of `a`, `b`"
        let (field, expected) = match rest.split_once(", expected ") {
            Some((f, e)) => (f, Some(e)),
            None => (rest, None),
        };
        let field = field.trim_matches('`');
        let (section, keys): (String, Vec<&str>) = match stage {
            Some((kind, keys)) => (format!("a `{kind}` stage"), keys.to_vec()),
            // the names between backticks
            None => (
                "this section".to_string(),
                expected.map_or_else(Vec::new, |e| e.split('`').skip(1).step_by(2).collect()),
            ),
        };
        let mut s = format!("unknown key `{field}`: {section} has no such setting");
        if let Some(best) = closest(field, &keys) {
            s.push_str(&format!("; did you mean `{best}`?"));
        }
        if !keys.is_empty() {
            let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            s.push_str(&format!(" (it takes {})", list.join(", ")));
        }
        return s;
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        return format!("wrong type: found {}", plain_types(rest));
    }
    if let Some(rest) = m.strip_prefix("invalid value: ") {
        return format!("invalid value: found {}", plain_types(rest));
    }
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!("missing required key {rest}");
    }
    m.to_string()
}

/// The key of `keys` that `typed` is most likely a misspelling of: at most two edits
/// away (one for short keys), and nearer than any other.
pub(crate) fn closest<'a>(typed: &str, keys: &[&'a str]) -> Option<&'a str> {
    let distances: Vec<(usize, &str)> = keys
        .iter()
        .map(|k| (strsim::damerau_levenshtein(typed, k), *k))
        .collect();
    let &(distance, best) = distances.iter().min_by_key(|(d, _)| *d)?;
    let ties = distances.iter().filter(|(d, _)| *d == distance).count();
    let allowed = if best.len() <= 4 { 1 } else { 2 };
    (distance <= allowed && ties == 1).then_some(best)
}

fn plain_types(m: &str) -> String {
    m.replace("expected usize", "expected a whole number (0 or more)")
        .replace("expected u64", "expected a whole number (0 or more)")
        .replace("expected f32", "expected a number")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

/// The dotted key (`stage.batch.batch_size`) of the `key = value` line holding byte
/// `offset`, using the nearest `[table]` header above it.
pub(crate) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    if k.is_empty() || k.starts_with('[') || k.starts_with('#') {
        return None;
    }
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        // `[stage.batch]  # a comment`
        .map(|l| l[1..].split(']').next().unwrap_or("").trim().to_string());
    Some(match header {
        Some(h) => format!("{h}.{k}"),
        None => k.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_uses_the_table_header() {
        let t = "[pipeline]\nname = \"x\"\n[stage.batch]\nkind = \"batcher\"\nbatch_size = \"7\"\n";
        let off = t.find("\"7\"").unwrap();
        assert_eq!(key_at(t, off).as_deref(), Some("stage.batch.batch_size"));
        assert_eq!(key_at(t, 0), None);
        let t = "[stage.batch]  # groups\nbatch_size = \"7\"\n";
        let off = t.find("\"7\"").unwrap();
        assert_eq!(key_at(t, off).as_deref(), Some("stage.batch.batch_size"));
    }

    #[test]
    fn unknown_keys_name_the_likely_one_and_the_list() {
        let m = "unknown field `batch_sise`, expected one of `batch_size`, `drop_last`, `kind`";
        assert_eq!(
            explain_toml(m, None),
            "unknown key `batch_sise`: this section has no such setting; did you mean `batch_size`? (it takes `batch_size`, `drop_last`, `kind`)"
        );
        // a stage's own keys, not every kind's
        let s = explain_toml(m, Some(("batcher", &["kind", "input", "batch_size"])));
        assert!(s.contains("a `batcher` stage has no such setting"), "{s}");
        assert!(
            s.ends_with("(it takes `kind`, `input`, `batch_size`)"),
            "{s}"
        );
        // nothing close: no guess
        let far = "unknown field `colour`, expected `kind` or `input`";
        assert_eq!(
            explain_toml(far, None),
            "unknown key `colour`: this section has no such setting (it takes `kind`, `input`)"
        );
        assert_eq!(closest("kinf", &["kind", "input"]), Some("kind"));
        assert_eq!(closest("knd", &["kind", "input"]), Some("kind"));
        assert_eq!(closest("mode", &["kind", "input"]), None);
        // as near to two keys: no guess
        assert_eq!(closest("lr", &["lr1", "lr2"]), None);
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let t = "a = 1\nbb = oops\n";
        let e = PipelineError::at(
            Path::new("f.toml"),
            t,
            Some(11..15),
            Some("bb"),
            "bad".into(),
        );
        let s = e.to_string();
        assert!(s.starts_with("f.toml:2:6: key `bb`: bad"), "{s}");
        assert!(s.contains("2 | bb = oops"), "{s}");
    }
}
