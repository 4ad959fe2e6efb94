//! Errors of the data readers.
//!
//! Every message names the file it is about (full path), says in plain words what is
//! wrong with it and, where there is one, how to fix it. Messages are meant to be shown
//! to users as they are.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::{DataDirOrigin, DATA_DIR_ENV};

/// Something went wrong reading a data set file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file the data set needs does not exist.
    #[error(
        "file not found: {}{}; point --data-dir or {DATA_DIR_ENV} at a folder with mnist/ and usps/ (see `scarce data`)",
        .path.display(),
        dir_note(.data_dir, .origin, .dir_exists)
    )]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// The data directory the file was looked up in, if known.
        data_dir: Option<PathBuf>,
        /// Where that data directory came from, if known.
        origin: Option<DataDirOrigin>,
        /// Whether the data directory itself exists.
        dir_exists: bool,
    },

    /// The file exists but could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also given as the error's source: a chain
        /// printed in full would say it twice).
        error: io::Error,
    },

    /// The file is neither gzip nor the uncompressed format the reader accepts.
    #[error(
        "{} is not a gzip file (it starts with bytes {found}, gzip starts with 1f 8b) and not {plain} either; \
         it may be a damaged download or an error page saved in its place: replace it with the original file",
        .path.display()
    )]
    NotGzip {
        /// The file.
        path: PathBuf,
        /// The first bytes of the file, in hex.
        found: String,
        /// The uncompressed format that was also accepted ("a raw IDX file", "plain text").
        plain: &'static str,
    },

    /// The file starts like gzip but its compressed stream is broken.
    #[error(
        "{} is a gzip file but its compressed data is corrupt or cut short ({error}); \
         the file is damaged: download it again",
        .path.display()
    )]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error (in the message, so not also given as the error's source).
        error: io::Error,
    },

    /// The IDX magic number is not the expected one.
    #[error(
        "{} is not the expected IDX file: wrong magic number: expected {expected}, found 0x{found:08x}{}",
        .path.display(),
        if *.found >> 16 != 0 { " (an IDX file starts with two zero bytes)" } else { "" }
    )]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// The expected magic number in hex (e.g. "0x00000803").
        expected: String,
        /// The magic number found.
        found: u32,
    },

    /// The IDX data type byte is not 0x08 (unsigned byte).
    #[error(
        "{}: IDX data type byte is 0x{found:02x} ({}), expected 0x08 (unsigned byte); only unsigned-byte IDX files are supported",
        .path.display(),
        idx_type_name(*.found)
    )]
    WrongDataType {
        /// The file.
        path: PathBuf,
        /// The type byte found.
        found: u8,
    },

    /// The IDX array does not have the expected number of dimensions or shape.
    #[error(
        "{}: wrong IDX shape: expected {expected}, found {} dimension(s) {found:?}",
        .path.display(),
        .found.len()
    )]
    WrongDims {
        /// The file.
        path: PathBuf,
        /// What was expected, in words (e.g. "3 dimensions: images x 28 rows x 28 columns").
        expected: String,
        /// The dimensions found.
        found: Vec<usize>,
    },

    /// The file ends before the data its header announces.
    #[error(
        "{} is truncated: expected {expected} bytes of {what}, found {found}; the file is incomplete: download it again",
        .path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is cut short ("header", "pixel data", "label data", "data").
        what: &'static str,
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        found: u64,
    },

    /// Bytes follow the data the header announces.
    #[error(
        "{} has {extra} bytes of trailing garbage after the {expected} bytes of data its header announces; \
         the file is damaged: download it again",
        .path.display()
    )]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes of data expected.
        expected: u64,
        /// Bytes beyond them.
        extra: u64,
    },

    /// An image file and its label file hold different numbers of items.
    #[error(
        "{} holds {images} images but {} holds {labels} labels; \
         the two files must be the images and labels of the same set and split",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// A label is not a digit 0-9.
    #[error(
        "{}: label {label} of item {index} (counting from 0) is out of range: labels must be digits 0-9",
        .path.display()
    )]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Index of the item.
        index: usize,
        /// The label found.
        label: u8,
    },

    /// A file that must be text is not valid UTF-8.
    #[error(
        "{}: line {line}: not text (invalid UTF-8); expected lines of numbers, the file may be damaged",
        .path.display()
    )]
    NotText {
        /// The file.
        path: PathBuf,
        /// Line number (from 1) of the first invalid byte.
        line: usize,
    },

    /// A USPS line does not hold a label and 256 pixels.
    #[error(
        "{}: line {line}: wrong number of values: expected 257 (a label and 16x16 pixels), found {found}",
        .path.display()
    )]
    UspsValueCount {
        /// The file.
        path: PathBuf,
        /// Line number (from 1).
        line: usize,
        /// Number of values on that line.
        found: usize,
    },

    /// A USPS value is not a number.
    #[error(
        "{}: line {line}, value {column}: cannot read \"{token}\" as a number",
        .path.display()
    )]
    UspsBadNumber {
        /// The file.
        path: PathBuf,
        /// Line number (from 1).
        line: usize,
        /// Position of the value on the line (from 1; 1 is the label).
        column: usize,
        /// The offending token.
        token: String,
    },

    /// A USPS label is not a digit 0-9.
    #[error(
        "{}: line {line}: label \"{label}\" is out of range: labels must be digits 0-9",
        .path.display()
    )]
    UspsLabel {
        /// The file.
        path: PathBuf,
        /// Line number (from 1).
        line: usize,
        /// The label token.
        label: String,
    },

    /// A USPS pixel is outside [-1, 1].
    #[error(
        "{}: line {line}, value {column}: pixel {value} is out of range: USPS pixels must lie in [-1, 1]",
        .path.display()
    )]
    UspsPixelRange {
        /// The file.
        path: PathBuf,
        /// Line number (from 1).
        line: usize,
        /// Position of the value on the line (from 1; 1 is the label).
        column: usize,
        /// The value found.
        value: f32,
    },

    /// The file holds no items.
    #[error("{} is empty: it holds no images", .path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
}

impl DataError {
    /// Records where the data directory came from, so a "file not found" message can
    /// say it (e.g. "from --data-dir"). Other errors are returned unchanged.
    pub fn with_origin(self, origin: DataDirOrigin) -> Self {
        match self {
            DataError::NotFound {
                path,
                data_dir,
                dir_exists,
                ..
            } => DataError::NotFound {
                path,
                data_dir,
                origin: Some(origin),
                dir_exists,
            },
            other => other,
        }
    }

    /// The file the error is about (for a count mismatch: the image file).
    pub fn path(&self) -> &Path {
        match self {
            DataError::NotFound { path, .. }
            | DataError::Io { path, .. }
            | DataError::NotGzip { path, .. }
            | DataError::CorruptGzip { path, .. }
            | DataError::WrongMagic { path, .. }
            | DataError::WrongDataType { path, .. }
            | DataError::WrongDims { path, .. }
            | DataError::Truncated { path, .. }
            | DataError::TrailingData { path, .. }
            | DataError::LabelOutOfRange { path, .. }
            | DataError::NotText { path, .. }
            | DataError::UspsValueCount { path, .. }
            | DataError::UspsBadNumber { path, .. }
            | DataError::UspsLabel { path, .. }
            | DataError::UspsPixelRange { path, .. }
            | DataError::EmptyFile { path } => path,
            DataError::CountMismatch { images_path, .. } => images_path,
        }
    }

    /// Sets the data directory of a "file not found" error (other errors unchanged).
    pub(crate) fn in_data_dir(self, dir: &Path) -> Self {
        match self {
            DataError::NotFound { path, origin, .. } => DataError::NotFound {
                path,
                data_dir: Some(dir.to_path_buf()),
                origin,
                dir_exists: dir.is_dir(),
            },
            other => other,
        }
    }
}

/// The "(data directory /x, from --data-dir)" part of a "file not found" message.
fn dir_note<'a>(
    data_dir: &'a Option<PathBuf>,
    origin: &Option<DataDirOrigin>,
    dir_exists: &bool,
) -> DirNote<'a> {
    DirNote {
        data_dir: data_dir.as_deref(),
        origin: *origin,
        dir_exists: *dir_exists,
    }
}

/// Displays the data directory part of a "file not found" message.
struct DirNote<'a> {
    data_dir: Option<&'a Path>,
    origin: Option<DataDirOrigin>,
    dir_exists: bool,
}

impl fmt::Display for DirNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(dir) = self.data_dir else {
            return Ok(());
        };
        write!(f, " (data directory {}", dir.display())?;
        if let Some(origin) = self.origin {
            write!(f, ", {origin}")?;
        }
        if !self.dir_exists {
            write!(f, "; that directory does not exist")?;
        }
        write!(f, ")")
    }
}

/// Name of an IDX data type byte.
fn idx_type_name(t: u8) -> &'static str {
    match t {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "16-bit integer",
        0x0c => "32-bit integer",
        0x0d => "32-bit float",
        0x0e => "64-bit float",
        _ => "not a valid IDX type",
    }
}
