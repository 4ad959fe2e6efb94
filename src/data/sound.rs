//! Sound data sets with cross-validation folds: FSDD (spoken digits, one fold per
//! speaker), ESC-50 and its ESC-10 subset (environmental sounds, 5 folds) and
//! UrbanSound8K (10 folds), read from their published layouts:
//!
//! | set | files under the data directory |
//! |---|---|
//! | `fsdd` | `fsdd/recordings/{digit}_{speaker}_{index}.wav` |
//! | `esc50`, `esc10` | `esc50/meta/esc50.csv` + `esc50/audio/*.wav` (or `ESC-50-master/`) |
//! | `us8k` | `UrbanSound8K/metadata/UrbanSound8K.csv` + `UrbanSound8K/audio/foldN/*.wav` |
//!
//! A set is listed first (labels, folds, file names), then only the selected files are
//! decoded, resampled to the model's rate and kept in memory as mono `f32`.

use crate::audio::{self, AudioError};
use rayon::prelude::*;
use std::fmt;
use std::path::{Path, PathBuf};

/// The sound data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoundSetKind {
    /// Free Spoken Digit Dataset: 10 digits, 6 speakers x 50 recordings, 8 kHz.
    Fsdd,
    /// ESC-50: 50 classes of environmental sound, 5 folds, 44.1 kHz, 5 s clips.
    Esc50,
    /// ESC-10: the 10-class subset of ESC-50 marked in its csv.
    Esc10,
    /// UrbanSound8K: 10 classes, 10 folds, clips up to 4 s at various rates.
    Us8k,
}

impl SoundSetKind {
    /// Name in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            SoundSetKind::Fsdd => "fsdd",
            SoundSetKind::Esc50 => "esc50",
            SoundSetKind::Esc10 => "esc10",
            SoundSetKind::Us8k => "us8k",
        }
    }

    /// Number of cross-validation folds.
    pub fn folds(self) -> usize {
        match self {
            SoundSetKind::Fsdd => 6,
            SoundSetKind::Esc50 | SoundSetKind::Esc10 => 5,
            SoundSetKind::Us8k => 10,
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            SoundSetKind::Esc50 => 50,
            _ => 10,
        }
    }
}

impl fmt::Display for SoundSetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a sound set's listing or loading ran into.
#[derive(Debug, thiserror::Error)]
pub enum SoundDataError {
    /// The set's folder or index file is missing.
    #[error(
        "{set}: {} not found; {hint} (point --data-dir or SCARCE_DATA_DIR at the folder that holds it)",
        .path.display()
    )]
    Missing {
        /// The set.
        set: SoundSetKind,
        /// The missing path.
        path: PathBuf,
        /// How to get the data.
        hint: &'static str,
    },
    /// A metadata file could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also given as the error's source: a chain
        /// printed in full would say it twice).
        error: std::io::Error,
    },
    /// A metadata row is malformed.
    #[error("{}: line {line}: {reason}", .path.display())]
    BadRow {
        /// The csv file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A file name does not follow the set's naming scheme.
    #[error("{}: {reason}", .path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A sound file could not be decoded (the decoder's error is in the message, so it is
    /// not also given as the error's source).
    #[error("{0} (set `skip_bad_files = true` on the data set to skip such files with a warning)")]
    Audio(AudioError),
    /// The selection is empty.
    #[error("{set}: no recordings selected ({what})")]
    Empty {
        /// The set.
        set: SoundSetKind,
        /// The selection, in words.
        what: String,
    },
    /// Every selected recording was unreadable and skipped (`skip_bad_files`).
    #[error("{set}: every selected recording is unreadable ({what}; {count} skipped with `skip_bad_files`, the first: {first})")]
    AllUnreadable {
        /// The set.
        set: SoundSetKind,
        /// The selection, in words.
        what: String,
        /// How many were skipped.
        count: usize,
        /// Why the first was skipped.
        first: String,
    },
}

/// One recording of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct SoundEntry {
    /// The WAV file.
    pub path: PathBuf,
    /// Class label.
    pub label: u8,
    /// Cross-validation fold, 1-based.
    pub fold: usize,
    /// Order within its class and fold (FSDD: the recording index), for "first N".
    pub index: usize,
}

/// The recordings of a set, with class and fold names.
#[derive(Clone, Debug)]
pub struct SoundListing {
    /// Which set.
    pub kind: SoundSetKind,
    /// Every recording, in file order.
    pub entries: Vec<SoundEntry>,
    /// Class names, by label.
    pub classes: Vec<String>,
    /// Fold names, by fold - 1 (FSDD: the speakers).
    pub folds: Vec<String>,
}

/// Which recordings of a listing a data set uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The held-out fold (1-based).
    pub fold: usize,
    /// `true`: every fold but the held-out one; `false`: the held-out fold.
    pub train: bool,
    /// Keep at most this many recordings per class in each fold (lowest index first).
    pub per_class_per_fold: Option<usize>,
    /// Leave out the first this many recordings per class in each fold (lowest index
    /// first) before `per_class_per_fold` keeps its share of the rest.
    pub skip_per_class_per_fold: usize,
}

impl SoundListing {
    /// The entries `sel` picks, in listing order.
    pub fn select(&self, sel: &Selection) -> Vec<&SoundEntry> {
        let mut picked: Vec<&SoundEntry> = self
            .entries
            .iter()
            .filter(|e| (e.fold == sel.fold) != sel.train)
            .collect();
        if sel.per_class_per_fold.is_some() || sel.skip_per_class_per_fold > 0 {
            let skip = sel.skip_per_class_per_fold;
            let n = sel.per_class_per_fold.unwrap_or(usize::MAX);
            let mut keyed: Vec<(usize, u8, usize, usize)> = picked
                .iter()
                .enumerate()
                .map(|(i, e)| (e.fold, e.label, e.index, i))
                .collect();
            keyed.sort();
            let mut keep = vec![false; picked.len()];
            let mut run = (usize::MAX, u8::MAX, 0usize);
            for (fold, label, _, i) in keyed {
                if (fold, label) != (run.0, run.1) {
                    run = (fold, label, 0);
                }
                keep[i] = run.2 >= skip && run.2 - skip < n;
                run.2 += 1;
            }
            let mut k = keep.into_iter();
            picked.retain(|_| k.next().unwrap_or(false));
        }
        picked
    }
}

/// Clips in memory: mono samples in [-1, 1] at one rate, with labels and folds.
#[derive(Clone, Debug)]
pub struct SoundSet {
    /// Name (the `[data.NAME]` entry).
    pub name: String,
    /// Sample rate of every clip.
    pub rate: u32,
    /// The clips.
    pub clips: Vec<Vec<f32>>,
    /// Label of each clip.
    pub labels: Vec<u8>,
    /// Fold of each clip (1-based).
    pub folds: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// Class names.
    pub classes: Vec<String>,
    /// Files skipped as unreadable (with `skip_bad_files`), with the reason.
    pub skipped: Vec<String>,
}

impl SoundSet {
    /// Number of clips.
    pub fn len(&self) -> usize {
        self.clips.len()
    }

    /// Whether the set holds no clips.
    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }
}

const FSDD_HINT: &str = "fetch FSDD with `scarce data fetch fsdd --data-dir DIR` (and give the same DIR to the command) or unpack https://github.com/Jakobovski/free-spoken-digit-dataset as fsdd/ (its recordings/ folder goes to fsdd/recordings/)";
const ESC_HINT: &str =
    "fetch ESC-50 with `scarce data fetch esc50 --data-dir DIR` (and give the same DIR to the command) or unpack https://github.com/karolpiczak/ESC-50 as esc50/";
const US8K_HINT: &str = "UrbanSound8K is at https://urbansounddataset.weebly.com/urbansound8k.html (unpack it as UrbanSound8K/)";

/// Lists a set's recordings under `data_dir`.
pub fn list(kind: SoundSetKind, data_dir: &Path) -> Result<SoundListing, SoundDataError> {
    match kind {
        SoundSetKind::Fsdd => list_fsdd(&data_dir.join("fsdd").join("recordings")),
        SoundSetKind::Esc50 | SoundSetKind::Esc10 => {
            let root = ["esc50", "ESC-50-master", "ESC-50"]
                .iter()
                .map(|d| data_dir.join(d))
                .find(|d| d.is_dir())
                .unwrap_or_else(|| data_dir.join("esc50"));
            list_esc(kind, &root)
        }
        SoundSetKind::Us8k => {
            let root = ["UrbanSound8K", "us8k", "urbansound8k"]
                .iter()
                .map(|d| data_dir.join(d))
                .find(|d| d.is_dir())
                .unwrap_or_else(|| data_dir.join("UrbanSound8K"));
            list_us8k(&root)
        }
    }
}

fn list_fsdd(dir: &Path) -> Result<SoundListing, SoundDataError> {
    let missing = || SoundDataError::Missing {
        set: SoundSetKind::Fsdd,
        path: dir.to_path_buf(),
        hint: FSDD_HINT,
    };
    let rd = std::fs::read_dir(dir).map_err(|_| missing())?;
    let mut raw = Vec::new();
    for e in rd {
        let e = e.map_err(|error| SoundDataError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("wav") {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bad = |why: &str| SoundDataError::BadName {
            path: path.clone(),
            reason: format!("{why}: FSDD recordings are named {{digit}}_{{speaker}}_{{index}}.wav"),
        };
        let parts: Vec<&str> = stem.split('_').collect();
        let [digit, speaker, index] = parts[..] else {
            return Err(bad("expected three parts separated by `_`"));
        };
        let digit: u8 = digit
            .parse()
            .ok()
            .filter(|d| *d < 10)
            .ok_or_else(|| bad("the digit is not 0-9"))?;
        let index: usize = index
            .parse()
            .map_err(|_| bad("the index is not a number"))?;
        raw.push((speaker.to_string(), digit, index, path));
    }
    if raw.is_empty() {
        return Err(missing());
    }
    let mut speakers: Vec<String> = raw.iter().map(|r| r.0.clone()).collect();
    speakers.sort();
    speakers.dedup();
    raw.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let entries = raw
        .into_iter()
        .map(|(speaker, label, index, path)| SoundEntry {
            fold: speakers.binary_search(&speaker).expect("listed") + 1,
            path,
            label,
            index,
        })
        .collect();
    Ok(SoundListing {
        kind: SoundSetKind::Fsdd,
        entries,
        classes: (0..10).map(|d| d.to_string()).collect(),
        folds: speakers,
    })
}

/// Rows of a csv file with a header: the header's column indices for `columns`, then
/// each row's fields with its 1-based line number.
#[allow(clippy::type_complexity)]
fn read_csv(
    path: &Path,
    columns: &[&str],
    set: SoundSetKind,
    hint: &'static str,
) -> Result<(Vec<usize>, Vec<(usize, Vec<String>)>), SoundDataError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SoundDataError::Missing {
                set,
                path: path.to_path_buf(),
                hint,
            }
        } else {
            SoundDataError::Io {
                path: path.to_path_buf(),
                error: source,
            }
        }
    })?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, h)| h.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let idx = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| SoundDataError::BadRow {
                    path: path.to_path_buf(),
                    line: 1,
                    reason: format!(
                        "the header has no column `{c}` (found: {})",
                        header.join(",")
                    ),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(',').map(|s| s.trim().to_string()).collect()))
        .collect();
    Ok((idx, rows))
}

fn field<'a>(
    path: &Path,
    line: usize,
    row: &'a [String],
    col: usize,
    name: &str,
) -> Result<&'a str, SoundDataError> {
    row.get(col)
        .map(String::as_str)
        .ok_or_else(|| SoundDataError::BadRow {
            path: path.to_path_buf(),
            line,
            reason: format!("missing field `{name}` (the row has {} fields)", row.len()),
        })
}

fn number(
    path: &Path,
    line: usize,
    text: &str,
    name: &str,
    max: usize,
) -> Result<usize, SoundDataError> {
    text.parse::<usize>()
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| SoundDataError::BadRow {
            path: path.to_path_buf(),
            line,
            reason: format!("`{name}` is \"{text}\", expected a whole number up to {max}"),
        })
}

fn list_esc(kind: SoundSetKind, root: &Path) -> Result<SoundListing, SoundDataError> {
    let csv = root.join("meta").join("esc50.csv");
    let (idx, rows) = read_csv(
        &csv,
        &["filename", "fold", "target", "category", "esc10"],
        kind,
        ESC_HINT,
    )?;
    let mut raw = Vec::new();
    for (line, row) in &rows {
        let f = |k: usize, name: &str| field(&csv, *line, row, idx[k], name);
        let esc10 = f(4, "esc10")?.eq_ignore_ascii_case("true");
        if kind == SoundSetKind::Esc10 && !esc10 {
            continue;
        }
        let fold = number(&csv, *line, f(1, "fold")?, "fold", 5)?;
        if fold == 0 {
            return Err(SoundDataError::BadRow {
                path: csv.clone(),
                line: *line,
                reason: "folds are numbered from 1".into(),
            });
        }
        let target = number(&csv, *line, f(2, "target")?, "target", 49)?;
        raw.push((
            root.join("audio").join(f(0, "filename")?),
            target,
            fold,
            f(3, "category")?.to_string(),
        ));
    }
    // labels: ESC-50 targets as they are; ESC-10 renumbered 0-9 in target order
    let mut targets: Vec<(usize, String)> = raw.iter().map(|r| (r.1, r.3.clone())).collect();
    targets.sort();
    targets.dedup_by_key(|t| t.0);
    let classes: Vec<String> = if kind == SoundSetKind::Esc50 {
        let mut c = vec![String::new(); 50];
        for (t, name) in &targets {
            c[*t] = name.clone();
        }
        c
    } else {
        targets.iter().map(|t| t.1.clone()).collect()
    };
    let entries = raw
        .into_iter()
        .enumerate()
        .map(|(i, (path, target, fold, _))| SoundEntry {
            path,
            label: if kind == SoundSetKind::Esc50 {
                target as u8
            } else {
                targets.iter().position(|t| t.0 == target).expect("listed") as u8
            },
            fold,
            index: i,
        })
        .collect();
    Ok(SoundListing {
        kind,
        entries,
        classes,
        folds: (1..=5).map(|f| format!("fold{f}")).collect(),
    })
}

fn list_us8k(root: &Path) -> Result<SoundListing, SoundDataError> {
    let csv = root.join("metadata").join("UrbanSound8K.csv");
    let (idx, rows) = read_csv(
        &csv,
        &["slice_file_name", "fold", "classID", "class"],
        SoundSetKind::Us8k,
        US8K_HINT,
    )?;
    let mut classes = vec![String::new(); 10];
    let mut entries = Vec::new();
    for (i, (line, row)) in rows.iter().enumerate() {
        let f = |k: usize, name: &str| field(&csv, *line, row, idx[k], name);
        let fold = number(&csv, *line, f(1, "fold")?, "fold", 10)?;
        if fold == 0 {
            return Err(SoundDataError::BadRow {
                path: csv.clone(),
                line: *line,
                reason: "folds are numbered from 1".into(),
            });
        }
        let class = number(&csv, *line, f(2, "classID")?, "classID", 9)?;
        classes[class] = f(3, "class")?.to_string();
        entries.push(SoundEntry {
            path: root
                .join("audio")
                .join(format!("fold{fold}"))
                .join(f(0, "slice_file_name")?),
            label: class as u8,
            fold,
            index: i,
        });
    }
    Ok(SoundListing {
        kind: SoundSetKind::Us8k,
        entries,
        classes,
        folds: (1..=10).map(|f| format!("fold{f}")).collect(),
    })
}

/// Decodes the selected recordings, resampled to `rate` Hz. With `skip_bad_files`, a file
/// that cannot be decoded (or holds no samples) is left out and named in
/// [`SoundSet::skipped`]; without it, the first such file is the error.
pub fn load(
    listing: &SoundListing,
    sel: &Selection,
    rate: u32,
    skip_bad_files: bool,
) -> Result<SoundSet, SoundDataError> {
    let picked = listing.select(sel);
    let what = || {
        format!(
            "{} of held-out fold {} of {}{}",
            if sel.train {
                "training folds"
            } else {
                "test fold"
            },
            sel.fold,
            listing.folds.len(),
            match sel.skip_per_class_per_fold {
                0 => String::new(),
                n => format!(", skipping the first {n} recordings per class per fold"),
            }
        )
    };
    if picked.is_empty() {
        return Err(SoundDataError::Empty {
            set: listing.kind,
            what: what(),
        });
    }
    let decoded: Vec<Result<Vec<f32>, AudioError>> = picked
        .par_iter()
        .map(|e| {
            let clip = audio::read_wav(&e.path)?;
            audio::resample(&clip.samples, clip.rate, rate)
        })
        .collect();
    let mut set = SoundSet {
        name: String::new(),
        rate,
        clips: Vec::with_capacity(picked.len()),
        labels: Vec::with_capacity(picked.len()),
        folds: Vec::with_capacity(picked.len()),
        num_classes: listing.kind.num_classes(),
        classes: listing.classes.clone(),
        skipped: Vec::new(),
    };
    for (e, clip) in picked.into_iter().zip(decoded) {
        match clip {
            Ok(c) => {
                set.clips.push(c);
                set.labels.push(e.label);
                set.folds.push(e.fold);
            }
            Err(err) if skip_bad_files => {
                log::warn!("skipping {err}");
                set.skipped.push(err.to_string());
            }
            Err(err) => return Err(SoundDataError::Audio(err)),
        }
    }
    if set.clips.is_empty() {
        // nothing to train or test on: an error, not an accuracy of 0
        return Err(SoundDataError::AllUnreadable {
            set: listing.kind,
            what: what(),
            count: set.skipped.len(),
            first: set.skipped.first().cloned().unwrap_or_default(),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::write_wav_i16;

    fn tone(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.3).sin() * 0.5).collect()
    }

    fn fsdd_fixture(dir: &Path) {
        let rec = dir.join("fsdd/recordings");
        std::fs::create_dir_all(&rec).unwrap();
        for speaker in ["theo", "alice", "bob"] {
            for digit in 0..10 {
                for index in 0..3 {
                    let p = rec.join(format!("{digit}_{speaker}_{index}.wav"));
                    write_wav_i16(&p, &tone(400 + 10 * index), 8000).unwrap();
                }
            }
        }
    }

    #[test]
    fn fsdd_folds_are_speakers_and_limits_take_the_first_recordings() {
        let dir = tempfile::tempdir().unwrap();
        fsdd_fixture(dir.path());
        let l = list(SoundSetKind::Fsdd, dir.path()).unwrap();
        assert_eq!(l.folds, vec!["alice", "bob", "theo"]);
        assert_eq!(l.entries.len(), 90);
        let test = l.select(&Selection {
            fold: 3,
            train: false,
            per_class_per_fold: None,
            skip_per_class_per_fold: 0,
        });
        assert_eq!(test.len(), 30);
        assert!(test
            .iter()
            .all(|e| e.path.to_string_lossy().contains("_theo_")));
        let lim = l.select(&Selection {
            fold: 3,
            train: true,
            per_class_per_fold: Some(2),
            skip_per_class_per_fold: 0,
        });
        assert_eq!(lim.len(), 2 * 10 * 2);
        assert!(lim.iter().all(|e| e.index < 2 && e.fold != 3));
        // the recordings of the training folds that the limited set leaves out
        let rest = l.select(&Selection {
            fold: 3,
            train: true,
            per_class_per_fold: None,
            skip_per_class_per_fold: 2,
        });
        assert_eq!(rest.len(), 10 * 2);
        assert!(rest.iter().all(|e| e.index == 2 && e.fold != 3));
        let middle = l.select(&Selection {
            fold: 3,
            train: true,
            per_class_per_fold: Some(1),
            skip_per_class_per_fold: 1,
        });
        assert_eq!(middle.len(), 10 * 2);
        assert!(middle.iter().all(|e| e.index == 1));
        let set = load(
            &l,
            &Selection {
                fold: 1,
                train: false,
                per_class_per_fold: Some(1),
                skip_per_class_per_fold: 0,
            },
            16_000,
            false,
        )
        .unwrap();
        assert_eq!(set.len(), 10);
        assert_eq!(set.clips[0].len(), 800, "resampled 8 -> 16 kHz");
        assert_eq!(set.labels, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn bad_files_are_named_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fsdd_fixture(dir.path());
        let rec = dir.path().join("fsdd/recordings");
        std::fs::write(rec.join("3_alice_0.wav"), b"RIFF....garbage").unwrap();
        let l = list(SoundSetKind::Fsdd, dir.path()).unwrap();
        let sel = Selection {
            fold: 3,
            train: true,
            per_class_per_fold: None,
            skip_per_class_per_fold: 0,
        };
        let e = load(&l, &sel, 8000, false).unwrap_err().to_string();
        assert!(
            e.contains("3_alice_0.wav") && e.contains("skip_bad_files"),
            "{e}"
        );
        let set = load(&l, &sel, 8000, true).unwrap();
        assert_eq!(set.len(), 59);
        assert_eq!(set.skipped.len(), 1);
        // a speaker whose every recording is unreadable is no fold to test on
        std::fs::write(rec.join("0_zed_0.wav"), b"").unwrap();
        let l = list(SoundSetKind::Fsdd, dir.path()).unwrap();
        let zed = Selection {
            fold: 4,
            train: false,
            ..sel
        };
        let e = load(&l, &zed, 8000, true).unwrap_err().to_string();
        assert!(
            e.contains(
                "every selected recording is unreadable (test fold of held-out fold 4 of 4;"
            ) && e.contains("0_zed_0.wav"),
            "{e}"
        );

        std::fs::write(rec.join("x_alice.wav"), b"").unwrap();
        let e = list(SoundSetKind::Fsdd, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("x_alice.wav") && e.contains("{digit}"), "{e}");
        let e = list(SoundSetKind::Fsdd, &dir.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fsdd/recordings") && e.contains("not found"),
            "{e}"
        );
    }

    #[test]
    fn esc50_esc10_and_us8k_read_their_published_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let esc = dir.path().join("ESC-50-master");
        std::fs::create_dir_all(esc.join("meta")).unwrap();
        std::fs::create_dir_all(esc.join("audio")).unwrap();
        let mut csv = String::from("filename,fold,target,category,esc10,src_file,take\n");
        for fold in 1..=5 {
            for (target, cat, e10) in [
                (0, "dog", "True"),
                (7, "insects", "False"),
                (41, "chainsaw", "True"),
            ] {
                let name = format!("{fold}-1000{target}-A-{target}.wav");
                csv += &format!("{name},{fold},{target},{cat},{e10},1000{target},A\n");
                write_wav_i16(&esc.join("audio").join(&name), &tone(441), 44_100).unwrap();
            }
        }
        std::fs::write(esc.join("meta/esc50.csv"), &csv).unwrap();
        let l50 = list(SoundSetKind::Esc50, dir.path()).unwrap();
        assert_eq!(l50.entries.len(), 15);
        assert_eq!(l50.classes[41], "chainsaw");
        let l10 = list(SoundSetKind::Esc10, dir.path()).unwrap();
        assert_eq!(l10.entries.len(), 10);
        assert_eq!(l10.classes, vec!["dog", "chainsaw"]);
        assert!(l10.entries.iter().all(|e| e.label < 2));
        let s = load(
            &l50,
            &Selection {
                fold: 2,
                train: true,
                per_class_per_fold: None,
                skip_per_class_per_fold: 0,
            },
            16_000,
            false,
        )
        .unwrap();
        assert_eq!(s.len(), 12);
        assert!(s.folds.iter().all(|f| *f != 2));
        assert_eq!(s.clips[0].len(), 160);

        let us = dir.path().join("UrbanSound8K");
        let mut csv = String::from("slice_file_name,fsID,start,end,salience,fold,classID,class\n");
        for fold in 1..=10 {
            std::fs::create_dir_all(us.join(format!("audio/fold{fold}"))).unwrap();
            let name = format!("100{fold}-3-0-0.wav");
            csv += &format!("{name},100{fold},0.0,1.0,1,{fold},3,dog_bark\n");
            write_wav_i16(
                &us.join(format!("audio/fold{fold}/{name}")),
                &tone(220),
                22_050,
            )
            .unwrap();
        }
        std::fs::create_dir_all(us.join("metadata")).unwrap();
        std::fs::write(us.join("metadata/UrbanSound8K.csv"), &csv).unwrap();
        let lu = list(SoundSetKind::Us8k, dir.path()).unwrap();
        assert_eq!(lu.entries.len(), 10);
        assert_eq!(lu.classes[3], "dog_bark");
        let s = load(
            &lu,
            &Selection {
                fold: 10,
                train: false,
                per_class_per_fold: None,
                skip_per_class_per_fold: 0,
            },
            44_100,
            false,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.clips[0].len(), 440);

        // a malformed row is named by line
        std::fs::write(
            us.join("metadata/UrbanSound8K.csv"),
            "slice_file_name,fsID,start,end,salience,fold,classID,class\na.wav,1,0,1,1,eleven,3,dog\n",
        )
        .unwrap();
        let e = list(SoundSetKind::Us8k, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("UrbanSound8K.csv: line 2") && e.contains("fold"),
            "{e}"
        );
    }
}
