//! IDX files, the format of MNIST: a 4-byte magic number (two zero bytes, a data type
//! byte, the number of dimensions), each dimension as a big-endian u32, then the data
//! row-major. Only the unsigned-byte type (0x08) is supported. Files may be gzip
//! compressed (detected by the gzip magic bytes 1f 8b) or raw.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use super::{read_maybe_gzip, DataError};

/// The IDX data type byte for unsigned bytes.
pub const IDX_U8: u8 = 0x08;

/// An n-dimensional array of unsigned bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (MNIST images: count, rows, columns).
    pub dims: Vec<usize>,
    /// The values, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Reads an unsigned-byte IDX file of any number of dimensions, gzip compressed or raw.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    read_idx_checked(path, None, "data")
}

/// Reads an unsigned-byte IDX file that must have `ndims` dimensions (if given);
/// `what` names the data in a truncation message ("pixel data", "label data").
pub(crate) fn read_idx_checked(
    path: &Path,
    ndims: Option<u8>,
    what: &'static str,
) -> Result<IdxArray, DataError> {
    let (mut buf, gzipped) = read_maybe_gzip(path)?;
    let expected_magic = match ndims {
        Some(n) => format!("0x{:08x}", u32::from_be_bytes([0, 0, IDX_U8, n])),
        None => "0x000008nn (nn: number of dimensions)".to_string(),
    };
    if buf.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    if buf.len() < 4 {
        if !gzipped {
            return Err(not_idx(path, &buf));
        }
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "header",
            expected: 4,
            found: buf.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if buf[0] != 0 || buf[1] != 0 {
        if !gzipped {
            return Err(not_idx(path, &buf));
        }
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            expected: expected_magic,
            found: magic,
        });
    }
    if buf[2] != IDX_U8 {
        return Err(DataError::WrongDataType {
            path: path.to_path_buf(),
            found: buf[2],
        });
    }
    let n = buf[3] as usize;
    let header_len = 4 + 4 * n;
    if buf.len() < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "header",
            expected: header_len as u64,
            found: buf.len() as u64,
        });
    }
    let dims: Vec<usize> = buf[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if let Some(want) = ndims {
        if n != want as usize {
            return Err(DataError::WrongDims {
                path: path.to_path_buf(),
                expected: format!("{want} dimension(s) (magic number {expected_magic})"),
                found: dims,
            });
        }
    }
    // The product in u128 cannot overflow (at most 255 factors below 2^32 would, but
    // saturating keeps a corrupt header from panicking).
    let want: u128 = dims
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    let have = (buf.len() - header_len) as u128;
    if have < want {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what,
            expected: u64::try_from(want).unwrap_or(u64::MAX),
            found: have as u64,
        });
    }
    if have > want {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected: want as u64,
            extra: (have - want) as u64,
        });
    }
    buf.drain(..header_len);
    Ok(IdxArray { dims, data: buf })
}

/// The error for a file that is neither gzip nor raw IDX.
fn not_idx(path: &Path, buf: &[u8]) -> DataError {
    DataError::NotGzip {
        path: path.to_path_buf(),
        found: super::hex_prefix(buf),
        plain: "a raw IDX file",
    }
}

/// Writes an unsigned-byte IDX file, gzip compressed (reproducibly: no name, mtime 0).
///
/// # Panics
/// If `data.len()` is not the product of `dims`, or there are more than 255 dimensions.
pub fn write_idx_gz(path: &Path, dims: &[usize], data: &[u8]) -> io::Result<()> {
    assert!(dims.len() <= 255, "an IDX file has at most 255 dimensions");
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "IDX data length must be the product of the dimensions"
    );
    let file = BufWriter::new(File::create(path)?);
    let mut enc: GzEncoder<_> = GzBuilder::new()
        .mtime(0)
        .write(file, Compression::default());
    enc.write_all(&[0, 0, IDX_U8, dims.len() as u8])?;
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "IDX dimension over u32"))?;
        enc.write_all(&d.to_be_bytes())?;
    }
    enc.write_all(data)?;
    enc.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_digits, DigitsSet, Split};
    use std::fs;
    use std::path::PathBuf;

    fn mnist_dir(tmp: &Path) -> PathBuf {
        let d = tmp.join("mnist");
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes a small valid MNIST-like pair (n images of 28x28) for `split`.
    fn write_pair(dir: &Path, prefix: &str, n: usize, labels: &[u8]) {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i % 256) as u8).collect();
        write_idx_gz(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n, 28, 28],
            &pixels,
        )
        .unwrap();
        write_idx_gz(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[labels.len()],
            labels,
        )
        .unwrap();
    }

    fn gz_bytes(raw: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trip_gz_and_raw() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.idx.gz");
        let data: Vec<u8> = (0..2 * 3 * 5).map(|i| i as u8 * 7).collect();
        write_idx_gz(&p, &[2, 3, 5], &data).unwrap();
        let a = read_idx(&p).unwrap();
        assert_eq!(a.dims, vec![2, 3, 5]);
        assert_eq!(a.data, data);

        // The same content uncompressed.
        let raw_path = tmp.path().join("a.idx");
        let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5];
        raw.extend_from_slice(&data);
        fs::write(&raw_path, &raw).unwrap();
        assert_eq!(read_idx(&raw_path).unwrap(), a);

        // Reproducible: writing twice gives the same bytes.
        let q = tmp.path().join("b.idx.gz");
        write_idx_gz(&q, &[2, 3, 5], &data).unwrap();
        assert_eq!(fs::read(&p).unwrap(), fs::read(&q).unwrap());
    }

    #[test]
    fn mnist_pair_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let d = mnist_dir(tmp.path());
        write_pair(&d, "t10k", 3, &[7, 0, 9]);
        let set = load_digits(tmp.path(), DigitsSet::Mnist, Split::Test).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!((set.height, set.width, set.num_classes), (28, 28, 10));
        assert_eq!(set.labels, vec![7, 0, 9]);
        assert_eq!(set.image(0)[0], 0.0);
        assert_eq!(set.image(0)[255], 1.0);
        assert_eq!(set.image(0)[1], 1.0 / 255.0);
        assert_eq!(set.image(1)[0], (784 % 256) as f32 / 255.0);
    }

    #[test]
    fn wrong_magic() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.gz");
        fs::write(&p, gz_bytes(&[1, 2, 8, 1, 0, 0, 0, 1, 5])).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("wrong magic number"), "{msg}");
        assert!(msg.contains("found 0x01020801"), "{msg}");

        // Loading MNIST images shows the exact expected magic.
        let d = mnist_dir(tmp.path());
        let img = d.join("train-images-idx3-ubyte.gz");
        fs::write(&img, gz_bytes(&[0x12, 0x34, 8, 3, 0, 0, 0, 0])).unwrap();
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("expected 0x00000803"), "{msg}");
        assert!(msg.contains("found 0x12340803"), "{msg}");
    }

    #[test]
    fn wrong_type_and_dims() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f.gz");
        fs::write(&p, gz_bytes(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(
            msg.contains("data type byte is 0x0d (32-bit float)"),
            "{msg}"
        );
        assert!(msg.contains("f.gz"), "{msg}");

        // Labels written as images (3 dims where 1 is expected).
        let d = mnist_dir(tmp.path());
        write_pair(&d, "t10k", 2, &[1, 2]);
        write_idx_gz(&d.join("t10k-labels-idx1-ubyte.gz"), &[2, 1, 1], &[1, 2]).unwrap();
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
        assert!(msg.contains("wrong IDX shape"), "{msg}");
        assert!(msg.contains("found 3 dimension(s) [2, 1, 1]"), "{msg}");

        // Images that are not 28x28.
        write_idx_gz(&d.join("t10k-images-idx3-ubyte.gz"), &[2, 4, 4], &[0; 32]).unwrap();
        write_idx_gz(&d.join("t10k-labels-idx1-ubyte.gz"), &[2], &[1, 2]).unwrap();
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("28 rows x 28 columns"), "{msg}");
    }

    #[test]
    fn truncated_pixel_data() {
        let tmp = tempfile::tempdir().unwrap();
        let d = mnist_dir(tmp.path());
        write_pair(&d, "train", 2, &[1, 2]);
        let img = d.join("train-images-idx3-ubyte.gz");
        let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
        raw.extend(std::iter::repeat_n(9u8, 1000));
        fs::write(&img, gz_bytes(&raw)).unwrap();
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&img.display().to_string()), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");
        assert!(
            msg.contains("expected 1568 bytes of pixel data, found 1000"),
            "{msg}"
        );

        // A header cut short.
        fs::write(&img, gz_bytes(&[0, 0, 8, 3, 0, 0])).unwrap();
        let msg = read_idx(&img).unwrap_err().to_string();
        assert!(
            msg.contains("expected 16 bytes of header, found 6"),
            "{msg}"
        );
    }

    #[test]
    fn trailing_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.gz");
        fs::write(&p, gz_bytes(&[0, 0, 8, 1, 0, 0, 0, 2, 4, 5, 6, 7, 8])).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains("t.gz"), "{msg}");
        assert!(
            msg.contains("3 bytes of trailing garbage after the 2 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn count_mismatch() {
        let tmp = tempfile::tempdir().unwrap();
        let d = mnist_dir(tmp.path());
        write_pair(&d, "train", 3, &[1, 2]);
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
        assert!(msg.contains("holds 3 images"), "{msg}");
        assert!(msg.contains("holds 2 labels"), "{msg}");
    }

    #[test]
    fn not_gzip_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("page.gz");
        fs::write(&p, b"<html><body>Not Found</body></html>").unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("not a gzip file"), "{msg}");
        assert!(msg.contains("3c 68 74 6d"), "{msg}");
        assert!(msg.contains("not a raw IDX file either"), "{msg}");
    }

    #[test]
    fn corrupt_gzip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c.gz");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut raw = vec![0, 0, 8, 1, 0, 0, 0x13, 0x88];
        raw.extend_from_slice(&data);
        let mut gz = gz_bytes(&raw);
        // Cut the stream short.
        gz.truncate(gz.len() / 2);
        fs::write(&p, &gz).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("corrupt"), "{msg}");
        assert!(msg.contains("download it again"), "{msg}");

        // Flip bytes inside the stream.
        let mut gz = gz_bytes(&raw);
        for b in &mut gz[20..40] {
            *b ^= 0x5a;
        }
        fs::write(&p, &gz).unwrap();
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(msg.contains("corrupt"), "{msg}");
    }

    #[test]
    fn label_out_of_range() {
        let tmp = tempfile::tempdir().unwrap();
        let d = mnist_dir(tmp.path());
        write_pair(&d, "t10k", 3, &[1, 12, 3]);
        let msg = load_digits(tmp.path(), DigitsSet::Mnist, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
        assert!(msg.contains("label 12 of item 1"), "{msg}");
        assert!(msg.contains("out of range"), "{msg}");
    }

    #[test]
    fn missing_file_names_path() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("nope.gz");
        let msg = read_idx(&p).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("file not found: {}", p.display())),
            "{msg}"
        );
        assert!(msg.contains("--data-dir"), "{msg}");
    }
}
