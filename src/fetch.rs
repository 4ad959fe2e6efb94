//! `scarce data fetch NAME`: downloads a public data set archive into the data
//! directory, checks its SHA-256, and unpacks it atomically.
//!
//! The archive is streamed to `DATA/.NAME.download` while its SHA-256 is computed. When
//! the catalogue (or `--sha256`) gives a checksum, a mismatch deletes the download and is
//! an error; otherwise the computed checksum is printed so that it can be pinned with
//! `--sha256` next time. The archive is unpacked into `DATA/.NAME.unpack`, with its top
//! folder stripped and every entry's path checked (no absolute paths, no `..`), and only
//! then renamed to `DATA/NAME`: an interrupted fetch never leaves a half-unpacked data
//! set where the readers look.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// A downloadable data set.
#[derive(Clone, Copy, Debug)]
pub struct Archive {
    /// Name on the command line.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// Where it is published (a gzip-compressed tar archive).
    pub url: &'static str,
    /// Its SHA-256 in hex, where the publisher's archive is fixed.
    pub sha256: Option<&'static str>,
    /// Folder under the data directory it unpacks to.
    pub folder: &'static str,
    /// Its licence.
    pub licence: &'static str,
}

/// The data sets `scarce data fetch` knows.
pub const CATALOGUE: [Archive; 2] = [
    Archive {
        name: "esc50",
        about: "ESC-50: 2,000 five-second clips of 50 environmental sound classes, 5 folds (600 MB); also ESC-10",
        url: "https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.tar.gz",
        // GitHub builds branch archives on request: their bytes are not fixed, so there
        // is no checksum to pin; give one with --sha256 to check a known archive.
        sha256: None,
        folder: "esc50",
        licence: "CC BY-NC 3.0 (K. J. Piczak)",
    },
    Archive {
        name: "fsdd",
        about: "Free Spoken Digit Dataset: 3,000 recordings of digits, 6 speakers (release 1.0.10)",
        url: "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
        sha256: None,
        folder: "fsdd",
        licence: "CC BY-SA 4.0",
    },
];

/// Looks a catalogue entry up by name.
pub fn find(name: &str) -> Result<&'static Archive> {
    CATALOGUE.iter().find(|a| a.name == name).with_context(|| {
        let names: Vec<&str> = CATALOGUE.iter().map(|a| a.name).collect();
        format!(
            "unknown data set `{name}`; `scarce data fetch` knows: {} (UrbanSound8K needs a download form: see docs/sound.md)",
            names.join(", ")
        )
    })
}

/// What a fetch did.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Where the data set now is.
    pub folder: PathBuf,
    /// SHA-256 of the downloaded archive.
    pub sha256: String,
    /// Whether it was checked against a known checksum.
    pub verified: bool,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Where `archive` unpacks in `data_dir`; an error if something is there already.
pub fn check_destination(archive: &Archive, data_dir: &Path) -> Result<PathBuf> {
    let dest = data_dir.join(archive.folder);
    if dest.exists() {
        bail!(
            "{} already exists: remove it first to fetch {} again",
            dest.display(),
            archive.name
        );
    }
    Ok(dest)
}

/// Downloads `archive` (from `url` if given, else its catalogue address) into
/// `data_dir`, checks it against `sha256` (else the catalogue's checksum, if any) and
/// unpacks it to `data_dir/FOLDER`.
pub fn fetch(
    archive: &Archive,
    data_dir: &Path,
    url: Option<&str>,
    sha256: Option<&str>,
    progress: bool,
) -> Result<Fetched> {
    let url = url.unwrap_or(archive.url);
    let expected = sha256
        .or(archive.sha256)
        .map(|s| s.trim().to_ascii_lowercase());
    if let Some(e) = &expected {
        if e.len() != 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--sha256 must be 64 hexadecimal digits, found `{e}`");
        }
    }
    let dest = check_destination(archive, data_dir)?;
    fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let part = data_dir.join(format!(".{}.download", archive.name));
    let (bytes, digest) = download(url, &part, progress).inspect_err(|_| {
        let _ = fs::remove_file(&part);
    })?;
    if let Some(e) = &expected {
        if *e != digest {
            let _ = fs::remove_file(&part);
            bail!(
                "{url}: SHA-256 mismatch: expected {e}, downloaded {digest} ({bytes} bytes); the download was deleted"
            );
        }
    }
    let staging = data_dir.join(format!(".{}.unpack", archive.name));
    let _ = fs::remove_dir_all(&staging);
    let unpacked = unpack(&part, &staging);
    let _ = fs::remove_file(&part);
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.context(format!("unpacking the archive from {url}")));
    }
    fs::rename(&staging, &dest)
        .with_context(|| format!("moving {} to {}", staging.display(), dest.display()))?;
    Ok(Fetched {
        folder: dest,
        sha256: digest,
        verified: expected.is_some(),
        bytes,
    })
}

/// Streams `url` to `path`, returning its length and SHA-256 (hex).
fn download(url: &str, path: &Path, progress: bool) -> Result<(u64, String)> {
    let response = ureq::get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => anyhow::anyhow!("{url}: the server answered HTTP {code}"),
        other => anyhow::anyhow!("{url}: {other}"),
    })?;
    let total = response.body().content_length();
    let mut reader = response.into_body().into_reader();
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes:>10} / {total_bytes:<10} {bar:30} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = reader
            .read(&mut buf)
            .with_context(|| format!("{url}: the download broke off after {n} bytes"))?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
        file.write_all(&buf[..k])
            .with_context(|| format!("writing {}", path.display()))?;
        n += k as u64;
        if let Some(b) = &bar {
            b.set_position(n);
        }
    }
    file.sync_all()?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let digest = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((n, digest))
}

/// Unpacks a `.tar.gz` into `to`, dropping the archive's top folder.
fn unpack(archive: &Path, to: &Path) -> Result<()> {
    let f = fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    fs::create_dir_all(to)?;
    let mut files = 0usize;
    for entry in tar.entries().context("not a gzip-compressed tar archive")? {
        let mut entry = entry.context("the archive is damaged")?;
        let path = entry
            .path()
            .context("an entry has an unreadable path")?
            .into_owned();
        let mut parts = path.components();
        parts.next(); // the top folder (e.g. ESC-50-master/)
        let rel: PathBuf = parts.collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            bail!("the archive holds an unsafe path: {}", path.display());
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue; // links and devices are not data
        }
        let out = to.join(&rel);
        if kind.is_dir() {
            fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut w =
            fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        std::io::copy(&mut entry, &mut w)
            .with_context(|| format!("the archive is damaged at {}", path.display()))?;
        files += 1;
    }
    if files == 0 {
        bail!("the archive holds no files");
    }
    Ok(())
}
