//! Corrupt data files reach the user as one clear error naming the file (exit code 2),
//! whichever command reads them.

use crate::common::*;
use std::io::Write;

fn train_with(data: &std::path::Path) -> std::process::Output {
    let out = tempfile::tempdir().unwrap();
    run(&[
        "train",
        tiny_pipeline().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.path().join("run").to_str().unwrap(),
        "--epochs",
        "1",
        "--quiet",
    ])
}

#[test]
fn truncated_mnist_images() {
    let d = copy_builtin_data();
    let p = d.path().join("mnist/t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    let mut dec = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut dec).unwrap();
    dec.truncate(dec.len() / 2);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&dec).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    assert_user_error(
        &train_with(d.path()),
        &["t10k-images-idx3-ubyte.gz", "truncated"],
    );
}

#[test]
fn wrong_magic_number() {
    let d = copy_builtin_data();
    let p = d.path().join("mnist/train-labels-idx1-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&[0x12, 0x34, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    assert_user_error(
        &train_with(d.path()),
        &["train-labels-idx1-ubyte.gz", "magic"],
    );
}

#[test]
fn gzip_garbage() {
    let d = copy_builtin_data();
    let p = d.path().join("mnist/train-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    for b in &mut bytes[20..n - 20] {
        *b ^= 0x5a;
    }
    std::fs::write(&p, bytes).unwrap();
    assert_user_error(&train_with(d.path()), &["train-images-idx3-ubyte.gz"]);
}

#[test]
fn usps_short_line() {
    let d = copy_builtin_data();
    let p = d.path().join("usps/zip.test.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"3 -1 -1 -1\n").unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    assert_user_error(&train_with(d.path()), &["zip.test.gz", "line 1"]);
}

#[test]
fn image_and_label_counts_differ() {
    let d = copy_builtin_data();
    // a well-formed label file with one label fewer than there are images
    let p = d.path().join("mnist/train-labels-idx1-ubyte.gz");
    let mut dec = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&std::fs::read(&p).unwrap()[..]),
        &mut dec,
    )
    .unwrap();
    let n = u32::from_be_bytes(dec[4..8].try_into().unwrap());
    dec[4..8].copy_from_slice(&(n - 1).to_be_bytes());
    dec.pop();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&dec).unwrap();
    std::fs::write(&p, enc.finish().unwrap()).unwrap();
    assert_user_error(
        &train_with(d.path()),
        &["train-labels-idx1-ubyte.gz", &format!("{}", n - 1)],
    );
}

#[test]
fn missing_data_directory_file() {
    let d = copy_builtin_data();
    std::fs::remove_file(d.path().join("usps/zip.test.gz")).unwrap();
    assert_user_error(
        &train_with(d.path()),
        &["zip.test.gz", "does not exist", "--data-dir"],
    );
}
