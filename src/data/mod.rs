//! Data sets: readers for the digit sets (MNIST as IDX files, USPS as text), the
//! in-memory [`ImageSet`] they produce, and where the data directory is.
//!
//! The data directory holds `mnist/` (the four original gzip IDX files) and `usps/`
//! (`zip.train.gz`, `zip.test.gz`). It is `--data-dir` if given, else the environment
//! variable [`DATA_DIR_ENV`], else the small built-in subset in the repository's `data/`
//! folder (see [`resolve_data_dir`]). Both digit sets load as 28x28 images with pixel
//! values in [0, 1], so one network serves both.

pub mod error;
pub mod idx;
pub mod sound;
pub mod usps;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

pub use error::DataError;

/// Environment variable naming the data directory (used when `--data-dir` is not given).
pub const DATA_DIR_ENV: &str = "SCARCE_DATA_DIR";

/// The built-in data folder of the repository (a small subset of the digit sets).
pub const BUILTIN_DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// Side of the images [`load_digits`] returns.
pub const DIGITS_SIDE: usize = 28;

/// Number of classes of the digit sets.
pub const DIGITS_CLASSES: usize = 10;

/// A labelled set of single-channel images, pixel values in [0, 1], row-major, image
/// after image.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Name of the set, e.g. "mnist-train".
    pub name: String,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Pixels in [0, 1]: `len() * height * width` values.
    pub pixels: Vec<f32>,
    /// One label per image, each below `num_classes`.
    pub labels: Vec<u8>,
    /// Number of classes.
    pub num_classes: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image (`height * width`).
    pub fn image_len(&self) -> usize {
        self.height * self.width
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A new set of the images at `indices`, in that order (repeats allowed); same name.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            name: self.name.clone(),
            height: self.height,
            width: self.width,
            pixels,
            labels,
            num_classes: self.num_classes,
        }
    }

    /// The same images resized bilinearly to `side` x `side` (half-pixel centres, as
    /// PyTorch's `align_corners=False`), values kept in [0, 1].
    pub fn resized(&self, side: usize) -> ImageSet {
        if side == self.height && side == self.width {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(self.len() * side * side);
        for i in 0..self.len() {
            let img = usps::resize_bilinear(self.image(i), self.height, self.width, side, side);
            pixels.extend(img.into_iter().map(|v| v.clamp(0.0, 1.0)));
        }
        ImageSet {
            name: self.name.clone(),
            height: side,
            width: side,
            pixels,
            labels: self.labels.clone(),
            num_classes: self.num_classes,
        }
    }

    /// The same images with `pad` background (zero) pixels added on every side.
    pub fn padded(&self, pad: usize) -> ImageSet {
        if pad == 0 {
            return self.clone();
        }
        let (h, w) = (self.height + 2 * pad, self.width + 2 * pad);
        let mut pixels = vec![0.0f32; self.len() * h * w];
        for (i, out) in pixels.chunks_exact_mut(h * w).enumerate() {
            for (r, row) in self.image(i).chunks_exact(self.width).enumerate() {
                let at = (r + pad) * w + pad;
                out[at..at + self.width].copy_from_slice(row);
            }
        }
        ImageSet {
            name: self.name.clone(),
            height: h,
            width: w,
            pixels,
            labels: self.labels.clone(),
            num_classes: self.num_classes,
        }
    }

    /// How many images each class has (`num_classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            let l = l as usize;
            if l >= counts.len() {
                counts.resize(l + 1, 0);
            }
            counts[l] += 1;
        }
        counts
    }
}

/// An in-memory data set a source stage emits: images, or sound clips.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// Fixed-size single-channel images.
    Images(std::sync::Arc<ImageSet>),
    /// Variable-length mono clips.
    Sound(std::sync::Arc<sound::SoundSet>),
}

impl From<std::sync::Arc<ImageSet>> for Dataset {
    fn from(s: std::sync::Arc<ImageSet>) -> Self {
        Dataset::Images(s)
    }
}

impl From<std::sync::Arc<sound::SoundSet>> for Dataset {
    fn from(s: std::sync::Arc<sound::SoundSet>) -> Self {
        Dataset::Sound(s)
    }
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Dataset::Images(s) => s.len(),
            Dataset::Sound(s) => s.len(),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of the set.
    pub fn name(&self) -> &str {
        match self {
            Dataset::Images(s) => &s.name,
            Dataset::Sound(s) => &s.name,
        }
    }

    /// Example `i` as `(values, height, width, label)`: an image, or a whole clip as one
    /// row.
    pub fn example(&self, i: usize) -> (Vec<f32>, usize, usize, u8) {
        match self {
            Dataset::Images(s) => (s.image(i).to_vec(), s.height, s.width, s.labels[i]),
            Dataset::Sound(s) => (s.clips[i].clone(), 1, s.clips[i].len(), s.labels[i]),
        }
    }

    /// The recording group of example `i`: a clip's fold, 0 for images.
    pub fn group(&self, i: usize) -> u32 {
        match self {
            Dataset::Images(_) => 0,
            Dataset::Sound(s) => s.folds[i] as u32,
        }
    }
}

/// The digit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigitsSet {
    /// MNIST: 28x28, 60,000 train / 10,000 test.
    Mnist,
    /// USPS: 16x16 (loaded as 28x28), 7,291 train / 2,007 test.
    Usps,
}

impl fmt::Display for DigitsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigitsSet::Mnist => "mnist",
            DigitsSet::Usps => "usps",
        })
    }
}

/// Every data set a pipeline can name in `[data.NAME] set = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetName {
    /// MNIST digits (images).
    Mnist,
    /// USPS digits (images).
    Usps,
    /// Free Spoken Digit Dataset (sound).
    Fsdd,
    /// ESC-50 (sound).
    Esc50,
    /// ESC-10 (sound).
    Esc10,
    /// UrbanSound8K (sound).
    Us8k,
}

impl SetName {
    /// The digit set, for image sets.
    pub fn digits(self) -> Option<DigitsSet> {
        match self {
            SetName::Mnist => Some(DigitsSet::Mnist),
            SetName::Usps => Some(DigitsSet::Usps),
            _ => None,
        }
    }

    /// The sound set, for sound sets.
    pub fn sound(self) -> Option<sound::SoundSetKind> {
        match self {
            SetName::Fsdd => Some(sound::SoundSetKind::Fsdd),
            SetName::Esc50 => Some(sound::SoundSetKind::Esc50),
            SetName::Esc10 => Some(sound::SoundSetKind::Esc10),
            SetName::Us8k => Some(sound::SoundSetKind::Us8k),
            _ => None,
        }
    }

    /// Default sample rate of a sound set (0 for image sets).
    pub fn native_rate(self) -> u32 {
        match self {
            SetName::Fsdd => 8_000,
            SetName::Esc50 | SetName::Esc10 | SetName::Us8k => 44_100,
            SetName::Mnist | SetName::Usps => 0,
        }
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.digits(), self.sound()) {
            (Some(d), _) => d.fmt(f),
            (_, Some(s)) => s.fmt(f),
            _ => Ok(()),
        }
    }
}

/// The train or test part of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training part.
    Train,
    /// The test part.
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Paths (relative to the data dir) of the files a set/split needs: for MNIST the image
/// file then the label file, for USPS the one text file.
pub fn digits_files(set: DigitsSet, split: Split) -> Vec<&'static str> {
    match (set, split) {
        (DigitsSet::Mnist, Split::Train) => vec![
            "mnist/train-images-idx3-ubyte.gz",
            "mnist/train-labels-idx1-ubyte.gz",
        ],
        (DigitsSet::Mnist, Split::Test) => vec![
            "mnist/t10k-images-idx3-ubyte.gz",
            "mnist/t10k-labels-idx1-ubyte.gz",
        ],
        (DigitsSet::Usps, Split::Train) => vec!["usps/zip.train.gz"],
        (DigitsSet::Usps, Split::Test) => vec!["usps/zip.test.gz"],
    }
}

/// Loads MNIST (28x28, u8/255) or USPS (16x16 [-1, 1] mapped to [0, 1], resized to 28x28
/// bilinearly with half-pixel centers (PyTorch `align_corners=False` semantics), clamped
/// to [0, 1], then quantised like the reference: floor(x*255)/255). Both come out 28x28
/// so one network serves both. The set is named "{set}-{split}", e.g. "usps-test".
pub fn load_digits(data_dir: &Path, set: DigitsSet, split: Split) -> Result<ImageSet, DataError> {
    load_digits_at(data_dir, set, split, DIGITS_SIDE)
}

/// [`load_digits`] with images of `side` x `side` pixels: USPS is resized once, from
/// its 16x16 originals; MNIST from its 28x28 (`ImageSet::resized`).
pub fn load_digits_at(
    data_dir: &Path,
    set: DigitsSet,
    split: Split,
    side: usize,
) -> Result<ImageSet, DataError> {
    let files = digits_files(set, split);
    let result = match set {
        DigitsSet::Mnist => {
            load_mnist(&data_dir.join(files[0]), &data_dir.join(files[1])).map(|m| m.resized(side))
        }
        DigitsSet::Usps => load_usps(&data_dir.join(files[0]), side),
    };
    let mut images = result.map_err(|e| e.in_data_dir(data_dir))?;
    images.name = format!("{set}-{split}");
    Ok(images)
}

/// Loads an MNIST image file and its label file.
fn load_mnist(images_path: &Path, labels_path: &Path) -> Result<ImageSet, DataError> {
    let images = idx::read_idx_checked(images_path, Some(3), "pixel data")?;
    if images.dims[1] != DIGITS_SIDE || images.dims[2] != DIGITS_SIDE {
        return Err(DataError::WrongDims {
            path: images_path.to_path_buf(),
            expected: "3 dimensions: images x 28 rows x 28 columns".to_string(),
            found: images.dims,
        });
    }
    let labels = idx::read_idx_checked(labels_path, Some(1), "label data")?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: images.dims[0],
            labels: labels.dims[0],
        });
    }
    if let Some((index, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= DIGITS_CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            label,
        });
    }
    if images.dims[0] == 0 {
        return Err(DataError::EmptyFile {
            path: images_path.to_path_buf(),
        });
    }
    let pixels = images.data.iter().map(|&b| b as f32 / 255.0).collect();
    Ok(ImageSet {
        name: String::new(),
        height: DIGITS_SIDE,
        width: DIGITS_SIDE,
        pixels,
        labels: labels.data,
        num_classes: DIGITS_CLASSES,
    })
}

/// Loads a USPS text file as `out` x `out` images in [0, 1].
fn load_usps(path: &Path, out: usize) -> Result<ImageSet, DataError> {
    let raw = usps::read_usps(path)?;
    let side = usps::USPS_SIDE;
    let mut pixels = Vec::with_capacity(raw.len() * out * out);
    let mut unit = vec![0.0f32; usps::USPS_PIXELS];
    for img in raw.pixels.chunks_exact(usps::USPS_PIXELS) {
        for (u, &v) in unit.iter_mut().zip(img) {
            *u = (v + 1.0) * 0.5;
        }
        let big = usps::resize_bilinear(&unit, side, side, out, out);
        // floor(x * 255) / 255; x * 255 >= 0, so truncating to an integer is the floor.
        pixels.extend(
            big.into_iter()
                .map(|v| ((v.clamp(0.0, 1.0) * 255.0) as u32) as f32 / 255.0),
        );
    }
    Ok(ImageSet {
        name: String::new(),
        height: out,
        width: out,
        pixels,
        labels: raw.labels,
        num_classes: DIGITS_CLASSES,
    })
}

/// Where the data directory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirOrigin {
    /// The `--data-dir` flag.
    Flag,
    /// The environment variable [`DATA_DIR_ENV`].
    Env,
    /// The built-in `data/` folder of the repository.
    BuiltIn,
}

impl fmt::Display for DataDirOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataDirOrigin::Flag => f.write_str("from --data-dir"),
            DataDirOrigin::Env => write!(f, "from {DATA_DIR_ENV}"),
            DataDirOrigin::BuiltIn => f.write_str("the built-in subset"),
        }
    }
}

/// A data directory and where it came from.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: DataDirOrigin,
}

impl DataDir {
    /// [`load_digits`] from this directory; a "file not found" error also says where the
    /// directory came from.
    pub fn load_digits(&self, set: DigitsSet, split: Split) -> Result<ImageSet, DataError> {
        self.load_digits_at(set, split, DIGITS_SIDE)
    }

    /// [`load_digits_at`] from this directory.
    pub fn load_digits_at(
        &self,
        set: DigitsSet,
        split: Split,
        side: usize,
    ) -> Result<ImageSet, DataError> {
        load_digits_at(&self.path, set, split, side).map_err(|e| e.with_origin(self.origin))
    }
}

impl fmt::Display for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.origin)
    }
}

/// `--data-dir` if given, else env `SCARCE_DATA_DIR` (if set and non-empty), else the
/// built-in `data/` folder of the repo: `concat!(env!("CARGO_MANIFEST_DIR"), "/data")`.
pub fn resolve_data_dir(flag: Option<&Path>) -> DataDir {
    resolve_from(flag, std::env::var_os(DATA_DIR_ENV))
}

/// [`resolve_data_dir`] with the environment value passed in.
fn resolve_from(flag: Option<&Path>, env: Option<OsString>) -> DataDir {
    if let Some(p) = flag {
        return DataDir {
            path: p.to_path_buf(),
            origin: DataDirOrigin::Flag,
        };
    }
    match env {
        Some(v) if !v.is_empty() => DataDir {
            path: PathBuf::from(v),
            origin: DataDirOrigin::Env,
        },
        _ => DataDir {
            path: PathBuf::from(BUILTIN_DATA_DIR),
            origin: DataDirOrigin::BuiltIn,
        },
    }
}

/// Reads a file, gunzipping it if it starts with the gzip magic bytes 1f 8b. Returns the
/// bytes and whether they were gzip compressed.
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<(Vec<u8>, bool), DataError> {
    let raw = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::NotFound {
            path: path.to_path_buf(),
            data_dir: None,
            origin: None,
            dir_exists: true,
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            error: e,
        },
    })?;
    if raw.len() < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
        return Ok((raw, false));
    }
    // The gzip trailer holds the uncompressed size modulo 2^32: a good capacity hint.
    let hint = match raw.len() {
        n if n >= 18 => u32::from_le_bytes([raw[n - 4], raw[n - 3], raw[n - 2], raw[n - 1]]),
        _ => 0,
    };
    let mut out = Vec::with_capacity((hint as usize).min(1 << 30));
    MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::CorruptGzip {
            path: path.to_path_buf(),
            error: e,
        })?;
    Ok((out, true))
}

/// The first bytes of `buf` in hex, for messages.
pub(crate) fn hex_prefix(buf: &[u8]) -> String {
    if buf.is_empty() {
        return "(none: the file is empty)".to_string();
    }
    let hex: Vec<String> = buf.iter().take(8).map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn builtin() -> &'static Path {
        Path::new(BUILTIN_DATA_DIR)
    }

    #[test]
    fn resolve_order() {
        let flag = Path::new("/some/flag");
        let d = resolve_from(Some(flag), Some("/env".into()));
        assert_eq!((d.path.as_path(), d.origin), (flag, DataDirOrigin::Flag));
        let d = resolve_from(None, Some("/env".into()));
        assert_eq!(
            (d.path.as_path(), d.origin),
            (Path::new("/env"), DataDirOrigin::Env)
        );
        for env in [None, Some(OsString::new())] {
            let d = resolve_from(None, env);
            assert_eq!(d.origin, DataDirOrigin::BuiltIn);
            assert!(d.path.ends_with("data"));
            assert_eq!(d.path, Path::new(BUILTIN_DATA_DIR));
        }
        assert_eq!(resolve_data_dir(Some(flag)).origin, DataDirOrigin::Flag);
    }

    #[test]
    fn missing_file_message_names_dir_and_origin() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_path_buf(),
            origin: DataDirOrigin::Flag,
        };
        let msg = dir
            .load_digits(DigitsSet::Mnist, Split::Test)
            .unwrap_err()
            .to_string();
        let want = format!(
            "file not found: {}/mnist/t10k-images-idx3-ubyte.gz (data directory {}, from --data-dir); \
             point --data-dir or SCARCE_DATA_DIR at a folder with mnist/ and usps/ (see `scarce data`)",
            tmp.path().display(),
            tmp.path().display()
        );
        assert_eq!(msg, want);

        let gone = tmp.path().join("gone");
        let dir = DataDir {
            path: gone.clone(),
            origin: DataDirOrigin::Env,
        };
        let err = dir.load_digits(DigitsSet::Usps, Split::Train).unwrap_err();
        assert_eq!(err.path(), gone.join("usps/zip.train.gz"));
        let msg = err.to_string();
        assert!(msg.contains("from SCARCE_DATA_DIR"), "{msg}");
        assert!(msg.contains("that directory does not exist"), "{msg}");
    }

    #[test]
    fn files_per_set() {
        assert_eq!(
            digits_files(DigitsSet::Mnist, Split::Test),
            vec![
                "mnist/t10k-images-idx3-ubyte.gz",
                "mnist/t10k-labels-idx1-ubyte.gz"
            ]
        );
        assert_eq!(
            digits_files(DigitsSet::Usps, Split::Train),
            vec!["usps/zip.train.gz"]
        );
        assert_eq!(
            serde_json::to_string(&(DigitsSet::Usps, Split::Test)).unwrap(),
            r#"["usps","test"]"#
        );
        let s: Split = serde_json::from_str(r#""train""#).unwrap();
        assert_eq!(s, Split::Train);
    }

    #[test]
    fn image_set_helpers() {
        let set = ImageSet {
            name: "t".into(),
            height: 1,
            width: 2,
            pixels: vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
            labels: vec![3, 1, 3],
            num_classes: 4,
        };
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
        assert_eq!(set.image(1), &[0.2, 0.3]);
        assert_eq!(set.class_counts(), vec![0, 1, 0, 2]);
        let sub = set.subset(&[2, 0, 2]);
        assert_eq!(sub.labels, vec![3, 3, 3]);
        assert_eq!(sub.pixels, vec![0.4, 0.5, 0.0, 0.1, 0.4, 0.5]);
        assert_eq!(sub.class_counts(), vec![0, 0, 0, 3]);
        assert!(set.subset(&[]).is_empty());
    }

    #[test]
    fn padding_frames_each_image_with_background() {
        let set = ImageSet {
            name: "t".into(),
            height: 1,
            width: 2,
            pixels: vec![0.25, 0.5, 0.75, 1.0],
            labels: vec![0, 1],
            num_classes: 2,
        };
        assert_eq!(set.padded(0).pixels, set.pixels);
        let p = set.padded(1);
        assert_eq!((p.len(), p.height, p.width), (2, 3, 4));
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.75, 1.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(p.image(1), &want);
        assert_eq!(p.image(0)[5..7], [0.25, 0.5]);
        assert_eq!(p.labels, set.labels);
    }

    /// The committed built-in subset loads with the expected counts.
    #[test]
    fn builtin_subset_loads() {
        let t = Instant::now();
        let train = load_digits(builtin(), DigitsSet::Mnist, Split::Train).unwrap();
        assert_eq!(train.name, "mnist-train");
        assert_eq!((train.len(), train.height, train.width), (10_000, 28, 28));
        assert_eq!(train.pixels.len(), 10_000 * 784);
        assert!(train.labels.iter().all(|&l| l <= 9));
        assert!(train.class_counts().iter().all(|&c| c > 0));
        assert_eq!(train.class_counts().len(), 10);

        let test = load_digits(builtin(), DigitsSet::Mnist, Split::Test).unwrap();
        assert_eq!(test.len(), 10_000);

        let utrain = load_digits(builtin(), DigitsSet::Usps, Split::Train).unwrap();
        assert_eq!((utrain.len(), utrain.height, utrain.width), (1800, 28, 28));
        let small = utrain.subset(&[0, 1]).resized(16);
        assert_eq!((small.len(), small.height, small.width), (2, 16, 16));
        assert_eq!(small.pixels.len(), 2 * 256);
        assert!(small.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(small.labels, utrain.labels[..2]);
        assert!(utrain.class_counts().iter().all(|&c| c > 0));

        let utest = load_digits(builtin(), DigitsSet::Usps, Split::Test).unwrap();
        assert_eq!(utest.name, "usps-test");
        assert_eq!((utest.len(), utest.height, utest.width), (2007, 28, 28));
        assert!(utest.labels.iter().all(|&l| l <= 9));
        assert!(utest.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(utest.class_counts().iter().all(|&c| c > 0));
        eprintln!(
            "built-in subset: all four splits loaded in {:?}",
            t.elapsed()
        );
    }

    /// The full sets beside the project (`../shared/data`, present on every developer
    /// machine and CI run) load with their published counts.
    #[test]
    fn full_shared_sets_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        for (set, split, n) in [
            (DigitsSet::Mnist, Split::Train, 60_000),
            (DigitsSet::Mnist, Split::Test, 10_000),
            (DigitsSet::Usps, Split::Train, 7_291),
            (DigitsSet::Usps, Split::Test, 2_007),
        ] {
            let s = load_digits(&dir, set, split).unwrap();
            assert_eq!(s.len(), n);
            assert_eq!(s.pixels.len(), n * 28 * 28);
        }
    }
}
