//! `scarce data fetch` against a local HTTP server on 127.0.0.1 that serves an archive
//! made by the test in ESC-50's published layout.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;

/// A `.tar.gz` of an ESC-50-layout folder with two clips.
fn esc50_archive() -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ESC-50-master");
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::create_dir_all(root.join("audio")).unwrap();
    let mut csv = String::from("filename,fold,target,category,esc10,src_file,take\n");
    for (i, (target, cat)) in [(0, "dog"), (1, "rooster")].iter().enumerate() {
        let name = format!("{}-100-A-{target}.wav", i + 1);
        csv += &format!("{name},{},{target},{cat},True,100,A\n", i + 1);
        let x: Vec<f32> = (0..4410).map(|n| (n as f32 * 0.05).sin() * 0.3).collect();
        scarce::audio::write_wav_i16(&root.join("audio").join(&name), &x, 44_100).unwrap();
    }
    std::fs::write(root.join("meta/esc50.csv"), csv).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        tar.append_dir_all("ESC-50-master", &root).unwrap();
        tar.finish().unwrap();
    }
    gz.finish().unwrap()
}

/// Serves `body` at `/esc50.tar.gz` (404 elsewhere) for `requests` requests; returns
/// the base address.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut s = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            if line.starts_with("GET /esc50.tar.gz ") {
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .unwrap();
                s.write_all(&body).unwrap();
            } else {
                s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn fetch_checks_the_checksum_and_unpacks_atomically() {
    let body = esc50_archive();
    let sha: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = serve(body, 3);
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let url = format!("{base}/esc50.tar.gz");
    let fetch = |extra: &[&str]| {
        let mut args = vec!["data", "fetch", "esc50", "--data-dir", d];
        args.extend_from_slice(extra);
        run(&args)
    };

    // a wrong checksum: an error, and nothing left behind
    let wrong = "0".repeat(64);
    let o = fetch(&["--url", &url, "--sha256", &wrong]);
    assert_user_error(&o, &["SHA-256 mismatch", &sha]);
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);

    // a missing file on the server names the address and the status
    let o = fetch(&["--url", &format!("{base}/nope")]);
    assert_user_error(&o, &["/nope", "404"]);

    // the right checksum: unpacked where the ESC-50 reader looks
    let o = fetch(&["--url", &url, "--sha256", &sha]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("verified"), "{}", stdout(&o));
    let listing =
        scarce::data::sound::list(scarce::data::sound::SoundSetKind::Esc50, data.path()).unwrap();
    assert_eq!(listing.entries.len(), 2);
    assert_eq!(listing.classes[1], "rooster");
    let names: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["esc50"], "no temporary files remain");

    // fetching again refuses to overwrite; the built-in data folder is never a target
    let o = fetch(&["--url", &url]);
    assert_user_error(&o, &["already exists"]);
    assert!(
        !stderr(&o).contains("fetching"),
        "nothing fetched: {}",
        stderr(&o)
    );
    let o = run(&["data", "fetch", "esc50"]);
    assert_user_error(&o, &["--data-dir"]);
    let o = run(&["data", "fetch", "cifar", "--data-dir", d]);
    assert_user_error(&o, &["unknown data set", "esc50"]);
}
