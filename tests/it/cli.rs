//! The command line itself: help texts and how output ends.

use crate::common::*;

#[test]
fn help_examples_fit_a_terminal_and_copy_whole() {
    let commands: [&[&str]; 10] = [
        &["train"],
        &["compare"],
        &["cv"],
        &["run"],
        &["eval"],
        &["embed"],
        &["results"],
        &["check"],
        &["data"],
        &["data", "fetch"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let o = run(&args);
        assert!(o.status.success(), "{c:?}: {}", stderr(&o));
        let help = stdout(&o);
        let mut continued = false;
        for line in help.lines() {
            // an example, or the continuation of one whose line ends in `\`
            if line.starts_with("  scarce ") || continued {
                assert!(
                    line.len() <= 76,
                    "{c:?}: an example line of {} characters is wrapped by an 80-column terminal:\n{line}",
                    line.len()
                );
                continued = line.ends_with('\\');
            }
        }
    }
}

#[test]
fn a_report_whose_reader_goes_away_ends_without_a_panic() {
    use std::process::Stdio;
    // `scarce check ... | head -0`: the pipe's reader is gone before the report is written
    let mut child = scarce()
        .args(["check", "pipelines/digits-source-only.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    // done before the reader went, or ended by the closed pipe as other tools are
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{:?} {err}",
            o.status
        );
    }
}
