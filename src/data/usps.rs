//! USPS digits as distributed with *The Elements of Statistical Learning*: text, gzip
//! compressed or plain, one digit a line: the label (e.g. `6.0000` or `6`), then the
//! 16x16 pixels as 256 values in [-1, 1], row-major, separated by white space.
//!
//! Also holds the bilinear resize used to bring the 16x16 images to MNIST's 28x28.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};

use super::{read_maybe_gzip, DataError};

/// Side of a USPS image in pixels.
pub const USPS_SIDE: usize = 16;
/// Pixels of a USPS image.
pub const USPS_PIXELS: usize = USPS_SIDE * USPS_SIDE;
/// Values on a line: the label and the pixels.
pub const USPS_VALUES_PER_LINE: usize = 1 + USPS_PIXELS;
/// How far outside [-1, 1] a pixel may lie (rounding in the text) before it is an error.
pub const PIXEL_TOLERANCE: f32 = 1e-3;

/// USPS images as stored: 16x16, values in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct UspsRaw {
    /// Pixels in [-1, 1], row-major, image after image (256 a digit).
    pub pixels: Vec<f32>,
    /// Labels 0-9.
    pub labels: Vec<u8>,
}

impl UspsRaw {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Reads a USPS text file (gzip compressed or plain). Blank lines are skipped; pixels
/// a little outside [-1, 1] (up to [`PIXEL_TOLERANCE`]) are clamped.
pub fn read_usps(path: &Path) -> Result<UspsRaw, DataError> {
    let (buf, gzipped) = read_maybe_gzip(path)?;
    let text = match std::str::from_utf8(&buf) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            if !gzipped && at < 2 {
                return Err(DataError::NotGzip {
                    path: path.to_path_buf(),
                    found: super::hex_prefix(&buf),
                    plain: "plain text",
                });
            }
            let line = 1 + buf[..at].iter().filter(|&&b| b == b'\n').count();
            return Err(DataError::NotText {
                path: path.to_path_buf(),
                line,
            });
        }
    };
    let mut pixels = Vec::with_capacity(text.len() / 7 + USPS_PIXELS);
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let mut tokens = line.split_ascii_whitespace();
        let Some(label_tok) = tokens.next() else {
            continue; // blank line
        };
        let label = parse_value(path, lineno, 1, label_tok)?;
        if !((0.0..=9.0).contains(&label) && label.fract() == 0.0) {
            return Err(DataError::UspsLabel {
                path: path.to_path_buf(),
                line: lineno,
                label: label_tok.to_string(),
            });
        }
        let start = pixels.len();
        for (j, tok) in tokens.enumerate() {
            let column = j + 2;
            if column > USPS_VALUES_PER_LINE {
                return Err(DataError::UspsValueCount {
                    path: path.to_path_buf(),
                    line: lineno,
                    found: line.split_ascii_whitespace().count(),
                });
            }
            let v = parse_value(path, lineno, column, tok)?;
            if !(-1.0 - PIXEL_TOLERANCE..=1.0 + PIXEL_TOLERANCE).contains(&v) {
                return Err(DataError::UspsPixelRange {
                    path: path.to_path_buf(),
                    line: lineno,
                    column,
                    value: v,
                });
            }
            pixels.push(v.clamp(-1.0, 1.0));
        }
        let found = 1 + pixels.len() - start;
        if found != USPS_VALUES_PER_LINE {
            return Err(DataError::UspsValueCount {
                path: path.to_path_buf(),
                line: lineno,
                found,
            });
        }
        labels.push(label as u8);
    }
    if labels.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(UspsRaw { pixels, labels })
}

fn parse_value(path: &Path, line: usize, column: usize, tok: &str) -> Result<f32, DataError> {
    match tok.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(DataError::UspsBadNumber {
            path: path.to_path_buf(),
            line,
            column,
            token: tok.chars().take(40).collect(),
        }),
    }
}

/// Writes USPS text (`label` then 256 values, each with 4 decimals, like the original
/// files), gzip compressed reproducibly (mtime 0) if `gzip`, else plain.
///
/// # Panics
/// If `pixels.len()` is not 256 times `labels.len()`.
pub fn write_usps(path: &Path, labels: &[u8], pixels: &[f32], gzip: bool) -> io::Result<()> {
    assert_eq!(
        pixels.len(),
        labels.len() * USPS_PIXELS,
        "USPS pixels must be 256 per label"
    );
    let file = BufWriter::new(File::create(path)?);
    if gzip {
        let mut enc = GzBuilder::new()
            .mtime(0)
            .write(file, Compression::default());
        write_usps_text(&mut enc, labels, pixels)?;
        enc.finish()?.flush()
    } else {
        let mut file = file;
        write_usps_text(&mut file, labels, pixels)?;
        file.flush()
    }
}

fn write_usps_text(w: &mut impl Write, labels: &[u8], pixels: &[f32]) -> io::Result<()> {
    for (label, img) in labels.iter().zip(pixels.chunks_exact(USPS_PIXELS)) {
        write!(w, "{label}.0000")?;
        for v in img {
            write!(w, " {v:.4}")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Resizes one single-channel `sh`x`sw` image to `dh`x`dw` by bilinear interpolation
/// with half-pixel centers, as PyTorch's `interpolate(mode="bilinear",
/// align_corners=False)`: the source coordinate of output pixel `d` is
/// `(d + 0.5) * s / d_size - 0.5`, clamped below at 0; neighbours beyond the last row or
/// column are clamped to it.
///
/// # Panics
/// If `src.len() != sh * sw` or a source side is 0.
pub fn resize_bilinear(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    assert_eq!(src.len(), sh * sw, "source must hold sh * sw pixels");
    assert!(sh > 0 && sw > 0, "source must not be empty");
    let ys = axis_weights(sh, dh);
    let xs = axis_weights(sw, dw);
    let mut out = Vec::with_capacity(dh * dw);
    for &(y0, y1, wy1) in &ys {
        let wy0 = 1.0 - wy1;
        let r0 = &src[y0 * sw..(y0 + 1) * sw];
        let r1 = &src[y1 * sw..(y1 + 1) * sw];
        for &(x0, x1, wx1) in &xs {
            let wx0 = 1.0 - wx1;
            out.push(wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1]));
        }
    }
    out
}

/// For each output index along one axis: the two source indices and the weight of the
/// second.
fn axis_weights(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|d| {
            let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, s - i0 as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_digits, DigitsSet, Split};
    use std::fs;
    use std::path::PathBuf;

    fn usps_dir(tmp: &Path) -> PathBuf {
        let d = tmp.join("usps");
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A line with `n` pixel values after the label.
    fn line(label: &str, n: usize) -> String {
        let mut s = label.to_string();
        for i in 0..n {
            s.push_str(if i % 2 == 0 { " -1.0000" } else { " 0.5000" });
        }
        s
    }

    #[test]
    fn resize_2x2_to_4x4_half_pixel() {
        // src: [[0, 1], [2, 3]]. Source coordinates of the 4 outputs along an axis:
        // (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (neighbour clamped).
        // Along x in row 0: 0, 0.25, 0.75, 1; row 1 adds 2 to each; rows interpolate alike.
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        #[rustfmt::skip]
        let want = [
            0.0, 0.25, 0.75, 1.0,
            0.5, 0.75, 1.25, 1.5,
            1.5, 1.75, 2.25, 2.5,
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(out.len(), 16);
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn resize_identity_and_downscale() {
        let src: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(resize_bilinear(&src, 3, 4, 3, 4), src);
        // 4 -> 2 along x: sources 0.5 and 2.5 (means of neighbours), 1 row.
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 4, 1, 2);
        assert_eq!(out, vec![0.5, 2.5]);
        // 1 -> 3: every output is the single source pixel.
        assert_eq!(resize_bilinear(&[7.0], 1, 1, 3, 1), vec![7.0; 3]);
    }

    #[test]
    fn resize_16_to_28_ends() {
        // Along 16 -> 28 the first output samples source -0.2143 (clamped to 0) and the
        // last 15.2143 (neighbour clamped): both copy the edge pixels.
        let src: Vec<f32> = (0..256).map(|i| (i % 16) as f32).collect();
        let out = resize_bilinear(&src, 16, 16, 28, 28);
        assert_eq!(out[0], 0.0);
        assert_eq!(out[27], 15.0);
        // Output x = 1: source (1.5 * 16 / 28) - 0.5 = 0.357142...
        assert!((out[1] - (1.5f32 * 16.0 / 28.0 - 0.5)).abs() < 1e-6);
    }

    #[test]
    fn good_file_round_trip_and_load() {
        let tmp = tempfile::tempdir().unwrap();
        let d = usps_dir(tmp.path());
        let labels = [6u8, 0, 9];
        let pixels: Vec<f32> = (0..3 * 256)
            .map(|i| ((i * 37 % 2001) as f32 / 1000.0 - 1.0).clamp(-1.0, 1.0))
            .collect();
        let p = d.join("zip.train.gz");
        write_usps(&p, &labels, &pixels, true).unwrap();
        let raw = read_usps(&p).unwrap();
        assert_eq!(raw.labels, labels);
        for (a, b) in raw.pixels.iter().zip(&pixels) {
            assert!((a - b).abs() < 1e-4);
        }
        // Plain text, test-file style (integer label, short numbers), blank lines.
        let plain = d.join("zip.test.gz");
        let text = format!(
            "{}\n\n{}\n",
            line("9", 256),
            line("3", 256).replace(".0000", "")
        );
        fs::write(&plain, text).unwrap();
        let raw = read_usps(&plain).unwrap();
        assert_eq!(raw.labels, vec![9, 3]);
        assert_eq!(raw.pixels[0], -1.0);
        assert_eq!(raw.pixels[1], 0.5);

        let set = load_digits(tmp.path(), DigitsSet::Usps, Split::Train).unwrap();
        assert_eq!((set.len(), set.height, set.width), (3, 28, 28));
        assert_eq!(set.labels, labels);
        assert!(set.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Quantised to multiples of 1/255.
        assert!(set
            .pixels
            .iter()
            .all(|&v| ((v * 255.0).round() - v * 255.0).abs() < 1e-3));
        // All -1 gives 0, all 1 gives 1.
        write_usps(&p, &[1, 2], &[[-1.0; 256], [1.0; 256]].concat(), true).unwrap();
        let set = load_digits(tmp.path(), DigitsSet::Usps, Split::Train).unwrap();
        assert!(set.image(0).iter().all(|&v| v == 0.0));
        assert!(set.image(1).iter().all(|&v| v == 1.0));
        // Any side straight from the 16x16 originals; 16 keeps them as they are.
        let small =
            crate::data::load_digits_at(tmp.path(), DigitsSet::Usps, Split::Train, 20).unwrap();
        assert_eq!(
            (small.height, small.width, small.pixels.len()),
            (20, 20, 800)
        );
        assert!(small.image(1).iter().all(|&v| v == 1.0));
        write_usps(
            &p,
            &[4],
            &(0..256).map(|i| i as f32 / 127.5 - 1.0).collect::<Vec<_>>(),
            true,
        )
        .unwrap();
        let same =
            crate::data::load_digits_at(tmp.path(), DigitsSet::Usps, Split::Train, 16).unwrap();
        let want: Vec<f32> = (0..256u32).map(|i| i as f32 / 255.0).collect();
        assert!(same
            .pixels
            .iter()
            .zip(&want)
            .all(|(a, b)| (a - b).abs() < 1.5 / 255.0));
    }

    #[test]
    fn short_line_names_line() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("zip.train.gz");
        let text = format!(
            "{}\n{}\n{}\n",
            line("1", 256),
            line("2", 256),
            line("3", 200)
        );
        fs::write(&p, text).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("expected 257"), "{msg}");
        assert!(msg.contains("found 201"), "{msg}");

        fs::write(&p, format!("{}\n", line("1", 300))).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains("line 1"), "{msg}");
        assert!(msg.contains("found 301"), "{msg}");
    }

    #[test]
    fn bad_token() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("zip.test.gz");
        let bad = line("4", 256).replacen("0.5000", "0.5o00", 1);
        fs::write(&p, format!("{}\n{bad}\n", line("1", 256))).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains("zip.test.gz"), "{msg}");
        assert!(msg.contains("line 2, value 3"), "{msg}");
        assert!(msg.contains("\"0.5o00\""), "{msg}");
    }

    #[test]
    fn label_and_pixel_range() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("zip.test.gz");
        fs::write(&p, format!("{}\n", line("10.0000", 256))).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains("line 1: label \"10.0000\""), "{msg}");
        assert!(msg.contains("out of range"), "{msg}");
        fs::write(&p, format!("{}\n", line("2.5", 256))).unwrap();
        assert!(read_usps(&p)
            .unwrap_err()
            .to_string()
            .contains("label \"2.5\""));

        let over = line("4", 256).replacen("0.5000", "1.2000", 1);
        fs::write(&p, format!("{over}\n")).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains("line 1, value 3: pixel 1.2"), "{msg}");
        assert!(msg.contains("[-1, 1]"), "{msg}");
        // Within tolerance: clamped.
        let near = line("4", 256).replacen("0.5000", "1.0004", 1);
        fs::write(&p, format!("{near}\n")).unwrap();
        assert_eq!(read_usps(&p).unwrap().pixels[1], 1.0);
    }

    #[test]
    fn empty_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("zip.train.gz");
        fs::write(&p, "").unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("empty"), "{msg}");
        // Gzip of nothing but blank lines.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"\n  \n").unwrap();
        fs::write(&p, enc.finish().unwrap()).unwrap();
        assert!(read_usps(&p).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn not_text_and_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("zip.train.gz");
        fs::write(&p, [0xff, 0xfe, 0x00, 0x01]).unwrap();
        let msg = read_usps(&p).unwrap_err().to_string();
        assert!(msg.contains("not a gzip file"), "{msg}");
        assert!(msg.contains("not plain text either"), "{msg}");

        let msg = load_digits(tmp.path(), DigitsSet::Usps, Split::Test)
            .unwrap_err()
            .to_string();
        let want = tmp.path().join("usps").join("zip.test.gz");
        assert!(
            msg.starts_with(&format!("file not found: {}", want.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("(data directory {}", tmp.path().display())),
            "{msg}"
        );
    }
}
