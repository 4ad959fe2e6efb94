//! Pipeline files: every shipped pipeline validates; every malformed one under
//! `tests/pipelines/bad/` fails with exit code 2 and a positioned, readable message.

use crate::common::*;

#[test]
fn shipped_pipelines_validate() {
    let mut n = 0;
    // sound pipelines are checked against tiny sets in the published layouts
    let sounds = sound_fixture();
    for e in std::fs::read_dir(root().join("pipelines")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let o = if text.contains("set = \"fsdd\"") || text.contains("set = \"esc50\"") {
                run(&[
                    "check",
                    p.to_str().unwrap(),
                    "--data-dir",
                    sounds.path().to_str().unwrap(),
                ])
            } else {
                run(&["check", p.to_str().unwrap()])
            };
            assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
            let out = stdout(&o);
            assert!(out.contains("edges ("), "{out}");
            assert!(out.contains("block"), "edge policies are printed: {out}");
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn check_prints_edge_types_and_policies() {
    let o = run(&["check", tiny_pipeline().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("source -> normalize  example  capacity 64    block"),
        "{out}"
    );
    assert!(out.contains("batch -> model"), "{out}");
}

#[test]
fn malformed_pipelines_give_clear_errors_and_exit_code_2() {
    let empty = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/pipelines/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "at least ten malformed pipelines");
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", p.display()));
        let mut args = vec!["check".to_string(), p.to_str().unwrap().to_string()];
        if text.contains("# data-dir: empty") {
            args.extend(["--data-dir".into(), empty.path().to_str().unwrap().into()]);
        }
        let o = scarce().args(&args).output().unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_user_error(&o, &[expect, name]);
        // file:line:column
        let err = stderr(&o);
        let pos = err
            .split_once(name)
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
        let mut parts = pos.trim_start_matches(':').splitn(3, ':');
        let line: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
        let col: usize = parts.next().unwrap_or("").parse().unwrap_or(0);
        assert!(line >= 1 && col >= 1, "{name}: no line:column in {err}");
    }
}

#[test]
fn missing_pipeline_file_is_a_clear_error() {
    let o = run(&["check", "pipelines/does-not-exist.toml"]);
    assert_user_error(&o, &["cannot read pipeline file", "does-not-exist.toml"]);
}

#[test]
fn an_empty_or_non_utf8_pipeline_file_says_what_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.toml");
    std::fs::write(&empty, "\n  \n").unwrap();
    let o = run(&["check", empty.to_str().unwrap()]);
    assert_user_error(&o, &["empty.toml", "the file is empty"]);
    let latin = tmp.path().join("latin.toml");
    std::fs::write(&latin, b"[pipeline]\nname = \"caf\xe9\"\n").unwrap();
    let o = run(&["check", latin.to_str().unwrap()]);
    assert_user_error(&o, &["latin.toml", "not UTF-8", "byte 22 (line 2)", "0xe9"]);
}

#[test]
fn a_held_out_fold_the_data_lacks_is_named_where_it_is_set() {
    let sounds = sound_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("pipelines/fsdd-envnet2-standard.toml"))
        .unwrap()
        .replace("\nfold = 1\n", "\nfold = 9\n");
    let p = tmp.path().join("fold9.toml");
    std::fs::write(&p, &text).unwrap();
    let data = sounds.path().to_str().unwrap();
    let o = run(&["check", p.to_str().unwrap(), "--data-dir", data]);
    assert_user_error(
        &o,
        &[
            "fold9.toml:",
            "key `train.fold`",
            "fold 9 does not exist: fsdd has folds 1-6",
        ],
    );
    // from the command line: said before a run folder appears
    let out = tmp.path().join("run");
    let o = run(&[
        "train",
        root()
            .join("pipelines/fsdd-envnet2-standard.toml")
            .to_str()
            .unwrap(),
        "--data-dir",
        data,
        "--fold",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_user_error(&o, &["--fold 7 does not exist: fsdd has folds 1-6"]);
    assert!(!out.exists());
}
