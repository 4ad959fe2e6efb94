//! The `scarce` command: train, evaluate and check pipelines.
//!
//! Thin glue over the library: parse arguments, call [`scarce::train::session`] or
//! [`scarce::pipeline`], print results, map errors to exit codes (0 success, 2 error,
//! 130 interrupted by Ctrl-C).

mod cv_jobs;

use clap::{Parser, Subcommand};
use scarce::data::{digits_files, resolve_data_dir, DigitsSet, Split, DATA_DIR_ENV};
use scarce::graph::StopFlag;
use scarce::pipeline::PipelineFile;
use scarce::train::session::{self, TrainRequest};
use scarce::train::TrainStop;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Quick start (built-in data, no download):
  scarce train pipelines/digits-source-only.toml

Data directory: --data-dir, else $SCARCE_DATA_DIR, else the built-in data/ folder
(a small subset of MNIST and USPS). Full data sets: --data-dir ../shared/data.

Exit codes: 0 success, 2 error (bad pipeline, bad data, failed stage), 130 interrupted.";

#[derive(Parser)]
#[command(name = "scarce", version, about = "Learning from limited data as a dataflow pipeline", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the commands that train.
#[derive(clap::Args, Debug)]
struct RunOptions {
    /// Data directory (default: $SCARCE_DATA_DIR, else the built-in data/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seed for weights, dropout and data order (default: the pipeline's).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of epochs (default: the pipeline's); what the pipeline sets as a share of
    /// the epochs (learning-rate milestones, `until` of a bc_mix stage) follows it. `train
    /// --resume RUN --epochs N` gives a run a new total.
    #[arg(long)]
    epochs: Option<usize>,
    /// Compute device: cpu, tch, wgpu, wgpu:N, cuda:N (all but cpu need their cargo feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Held-out fold of a sound set with folds (FSDD: 1-6, one per speaker; ESC-50: 1-5;
    /// UrbanSound8K: 1-10); default: the pipeline's `[train] fold`, else 1.
    #[arg(long)]
    fold: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a pipeline; writes a run folder with metrics, checkpoints, summary and plots.
    #[command(after_help = "\
Examples:
  scarce train pipelines/digits-source-only.toml
  scarce train pipelines/digits-source-only.toml \\
      --data-dir ../shared/data --epochs 20 --seed 2
  scarce train --resume runs/digits-source-only-20261128-120000

The run folder holds pipeline.toml (as used), run.json (seed, device, data directory),
metrics.jsonl, checkpoints/, summary.json, learning_curve.svg, embedding.svg and
model.safetensors.
Ctrl-C lets the epoch under way finish, checkpoints it and stops (a second Ctrl-C stops
at once, losing what was trained since the last checkpoint); --resume continues from the
last checkpoint.")]
    Train {
        /// Pipeline file (see pipelines/).
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        pipeline: Option<PathBuf>,
        /// Continue the run in this folder from its last checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// The run's own folder, new or empty (default: runs/NAME-TIMESTAMP).
        #[arg(long, value_name = "DIR", conflicts_with = "resume")]
        out: Option<PathBuf>,
        #[command(flatten)]
        run: RunOptions,
        /// Print the per-stage graph metrics at the end.
        #[arg(long)]
        stats: bool,
    },
    /// Train several pipelines one after the other with the same budget and seed, then print their accuracies side by side.
    #[command(after_help = "\
Example (source only against MCD on MNIST -> USPS, built-in data, a few minutes):
  scarce compare pipelines/digits-source-only-mnist-usps.toml \\
      pipelines/digits-mcd-mnist-usps.toml --epochs 30

Each pipeline gets a run folder OUT/N-FILE, N its place in the list and FILE the pipeline
file's name (default OUT: runs/compare-TIMESTAMP). The table gives the final and best
accuracy on each pipeline's first evaluation set and the change of the final accuracy
against the first pipeline, in points; OUT/embedding.svg draws the runs' generator
features side by side (t-SNE). Ctrl-C stops the current run as `scarce train` does (at
the end of its epoch, checkpointed) and prints the command that continues the
comparison: the same with --out OUT, which keeps the finished runs, resumes the stopped
one from its last checkpoint and trains the rest.")]
    Compare {
        /// Pipeline files; the first is the baseline the others are compared with.
        #[arg(required = true, num_args = 2..)]
        pipelines: Vec<PathBuf>,
        /// Folder for the run folders (default: runs/compare-TIMESTAMP); the folder of an
        /// earlier comparison of the same pipelines continues it.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        run: RunOptions,
    },
    /// Cross-validate sound pipelines: train and test once per held-out fold, then print
    /// the error rate per fold and its mean ± std, a row per pipeline.
    // --fold is shared with `train`; cv picks its folds with --folds and refuses --fold
    #[command(mut_arg("fold", |a| a.hide(true)), after_help = "\
Example (FSDD, leave one speaker out: six runs):
  scarce cv pipelines/fsdd-envnet2-standard.toml --data-dir ../shared/data

Example (the same with three seeds, each fold's error then averaged over them):
  scarce cv pipelines/fsdd-envnet2-standard.toml \\
      --data-dir ../shared/data --seeds 1,2,3

Example (two folds at a time, one core each on a two-core machine):
  scarce cv pipelines/fsdd-envnet2-bc.toml \\
      --data-dir ../shared/data --jobs 2

Example (the whole FSDD table of docs/results.md, four pipelines in one queue):
  scarce cv pipelines/fsdd-envnet2-{bc,standard}{,-limited}.toml \\
      --data-dir ../shared/data --jobs 2

Each fold gets a run folder OUT/fold-K (default OUT: runs/cv-NAME); with --seeds, the
pipeline's own seed keeps OUT and any other seed S writes to OUT-sS. Running the same
command again skips finished folds (a fold folder of an edited pipeline, another seed,
epoch count or data folder is refused, not reused) and resumes an interrupted one, so a long
cross-validation can be stopped with Ctrl-C (the folds under way finish their epoch and
checkpoint it) and continued. Several pipelines form one
queue of folds in the order given (with --jobs, name the slowest first so that the last
folds end together); each writes to its own runs/cv-NAME. As each fold ends, a line
gives its error and the time left: a fold's time is taken to follow its work, the
examples it trains on (epochs x training recordings) and the recordings it tests (each
weighed as three training examples; a resumed fold's work after its checkpoint), at the
pace of its pipeline's finished folds (\"rough\" while a pipeline has no finished
fold and is counted at the pace of the others). One fold at a time, the line of each
evaluated epoch before the last ends with the time left as well; before any fold has
finished, it comes from the pace of the fold's epochs so far (\"rough\").

--jobs N trains N folds (of any seed) at once, each in a quiet `scarce train` process
with its share of the cores (RAYON_NUM_THREADS, unless set). It prints a line as each
starts and ends, and at each evaluated epoch before the last a line with the fold's
error on the first evaluation set and the time left (not with --quiet); before any fold
has finished, that time comes from the pace of the epochs the running folds have done
(\"rough\"). The network is too small to keep several cores busy, so on a small machine
this finishes a table sooner than one fold at a time with every core. A fold's result
does not depend on its thread count, so --jobs changes only the time a table takes.")]
    Cv {
        /// Pipeline files (each with a sound data set that has folds); several make one
        /// table, a row per pipeline.
        #[arg(required = true, num_args = 1.., value_name = "PIPELINE")]
        pipelines: Vec<PathBuf>,
        /// Folds to hold out, e.g. `1,2,3` (default: all).
        #[arg(long, value_delimiter = ',', value_parser = list_item::<usize>)]
        folds: Vec<usize>,
        /// Seeds to cross-validate with, e.g. `1,2,3` (instead of --seed); the table then
        /// also averages each fold over the seeds.
        #[arg(long, value_delimiter = ',', value_parser = list_item::<u64>, conflicts_with = "seed")]
        seeds: Vec<u64>,
        /// Folder for the fold run folders (one pipeline only).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Folds to train at the same time, each in its own process with an equal share
        /// of the cores (1: one fold after another, in this process).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        #[command(flatten)]
        run: RunOptions,
    },
    /// Stream a trained model: sound over a recording, the microphone or a device (one line per window heard); images from files (one line per image).
    #[command(after_help = "\
Examples:
  scarce run runs/cv-fsdd-envnet2-standard/fold-2 --input \\
      ../shared/data/fsdd/recordings/7_jackson_0.wav
  scarce run RUN_DIR --input recordings/ --fast --json > labels.jsonl
  scarce run RUN_DIR --input talk.wav --hop 0.1 --smooth 5 \\
      --threshold 0.7 --stats
  scarce run RUN_DIR --input mic
  scarce run RUN_DIR --input mic --input-device 2 --duration 30 --json
  scarce run RUN_DIR --serial /dev/ttyACM0

The model, its sample rate, input length and levelling come from the run folder (the
latest checkpoint and the pipeline it was trained with). The input is cut into windows
of the network's input length every --hop seconds; windows quieter than --gate-db are
silence (the network is not run); the class probabilities are averaged over the last
--smooth windows and an average below --threshold is printed as `unknown`.

Lines for people show the stream time, the label and its confidence (silence is not
printed); --json prints every window as a JSON object (time_s, label, confidence,
scores per class, level_db, latency_ms, arrived_unix_s). A folder plays its .wav files
in name order with a window and a hop of silence after each, so the moving average
starts afresh with each file (unless a model slower than real time drops that window).
Each file's path is printed before its first line; in JSON every window names the file
it heard (file: null for the silence between files) and its start within that file
(file_time_s, below 0 when it starts in the silence before). In real time (the
default) a model slower than the stream drops the oldest windows and says how many;
--fast reads as fast as the model goes and drops nothing. The last line (stderr) gives
the latency p50/p99 from a window's last sample to its line.

--input mic listens to the default input device (`scarce devices` lists them; pick
another with --input-device INDEX|NAME); any other value is a file or folder path (write
./mic for a file called mic). The device is opened at the model's rate when it offers
it, else resampled; several channels are mixed to mono. Samples lost because the
capture buffer overflowed are counted in the last line. --duration stops after that
many seconds of audio, from a file or the microphone. Ctrl-C stops and exits with 130.

Microcontrollers stream samples over the `firmware-host` wire protocol (postcard
messages, COBS frames, CRC-32; see firmware-host/README.md): --serial PORT [--baud N]
reads a serial port, --tcp HOST:PORT waits for a device to connect, --stdin reads a
pipe. The device's hello gives its rate and channels; frames lost on the way become
silence of the same length, and frames received, lost and corrupt are counted (last
line, --stats). Each decision goes back to the device as a result message (label id,
confidence; 65535 = unknown, 65534 = silence); results the device does not read in time
are dropped and counted (with --fast, each first waits up to 2 s).

  scarce run RUN_DIR --serial /dev/ttyACM0 --baud 921600
  cargo run -p firmware-host --features std --example sim-device -- talk.wav --stdout \\
    | scarce run RUN_DIR --stdin --json

Image models (digits runs) take --input IMAGE|DIR|IDX: a PNG or JPEG file, a folder of
them (name order), or an IDX file of images such as MNIST's t10k-images-idx3-ubyte.gz.
Each image is made grey, resized and padded as the run's target data set (its first
eval set) and normalised as in training; --invert first for dark digits on a light
background. The answer is the model's own: an open-set model (method osbp) answers
`unknown` when its unknown output wins, a source_only model trained with reject_below
below that probability; --threshold adds a rejection below a top probability. Images
come at --fps per second (dropping the oldest when the model falls behind) or, with
--fast, as fast as the model goes; --limit N stops after N images.

  scarce run runs/osbp-usps-mnist --input \\
      data/mnist/t10k-images-idx3-ubyte.gz --fast --json
  scarce run RUN_DIR --input photos/ --invert --threshold 0.8")]
    Run {
        /// Run folder written by `scarce train` or `scarce cv`.
        run: PathBuf,
        /// Sound models: WAV file or folder of WAV files to replay, or `mic`. Image
        /// models: PNG/JPEG file, folder of them, or IDX file of images.
        #[arg(long, value_name = "FILE|DIR|mic", group = "source")]
        input: Option<PathBuf>,
        /// A device streaming the wire protocol over this serial port (/dev/ttyACM0, COM3).
        #[arg(long, value_name = "PORT", group = "source")]
        serial: Option<String>,
        /// Serial speed, bits per second (with --serial) [default: 921600].
        #[arg(long)]
        baud: Option<u32>,
        /// Listen on this address (0.0.0.0:7878) for a device streaming the wire protocol.
        #[arg(long, value_name = "HOST:PORT", group = "source")]
        tcp: Option<String>,
        /// Read the wire protocol from standard input (`sim-device x.wav --stdout | scarce run ...`).
        #[arg(long, group = "source")]
        stdin: bool,
        /// With --input mic: the input device, by index or name as `scarce devices`
        /// lists them (default: the default input device).
        #[arg(long, value_name = "NAME|INDEX")]
        input_device: Option<String>,
        /// Stop after this many seconds of audio.
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
        duration: Option<f64>,
        /// Replay as fast as possible instead of in real time (with --input mic: block
        /// instead of dropping windows when the model falls behind).
        #[arg(long)]
        fast: bool,
        /// Sound models: seconds between window starts [default: 0.25].
        #[arg(long, allow_negative_numbers = true)]
        hop: Option<f64>,
        /// Sound models: windows in the moving average of the class probabilities (1 =
        /// none) [default: 3].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000), allow_negative_numbers = true)]
        smooth: Option<u64>,
        /// Sound models: silence gate; windows with an RMS level below this (dB full
        /// scale) are silence [default: -60, which every FSDD recording passes; raise it
        /// in a noisy room].
        #[arg(long, allow_negative_numbers = true)]
        gate_db: Option<f32>,
        /// Below this (averaged) probability, 0-1, the label is `unknown` [sound
        /// models: default 0.5; image models: only the model's own rule unless given].
        #[arg(long, allow_negative_numbers = true)]
        threshold: Option<f32>,
        /// Image models: images per second (without --fast) [default: 10].
        #[arg(long, allow_negative_numbers = true)]
        fps: Option<f64>,
        /// Image models: stop after this many images.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Image models: invert the images first (dark digits on a light background).
        #[arg(long)]
        invert: bool,
        /// One JSON object per window (image models: per image) instead of lines for people.
        #[arg(long)]
        json: bool,
        /// Print the graph's per-stage metrics once a second (stderr).
        #[arg(long)]
        stats: bool,
        /// With a folder: leave out the files that cannot be read, with a warning each
        /// and a count in the last line. Without it, a file whose header cannot be read is
        /// an error before the stream starts, and an image damaged further in stops the
        /// stream when it is reached.
        #[arg(long)]
        skip_bad_files: bool,
        /// Compute device: cpu, tch, wgpu, wgpu:N, cuda:N (all but cpu need their cargo
        /// feature).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// List the audio hosts and input devices `scarce run --input mic` can listen to.
    Devices,
    /// Evaluate a run's latest checkpoint: accuracy, per-class accuracy, confusion matrix.
    Eval {
        /// Run folder written by `scarce train`.
        run: PathBuf,
        /// Data set (a [data.NAME] of the run's pipeline); repeat for several. Default: the pipeline's eval sets.
        #[arg(long)]
        data: Vec<String>,
        /// Data directory (default: $SCARCE_DATA_DIR, else the one the run used).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Compute device.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Draw a run's generator features of source and target examples in 2-D (t-SNE) into RUN/embedding.svg.
    #[command(after_help = "\
Training writes this picture at the end of a run; this command redraws it from the
latest checkpoint (for example of an interrupted run). Compare a source-only run with an
adapted one to see the two domains' features come together.")]
    Embed {
        /// Run folder written by `scarce train`.
        run: PathBuf,
        /// Data directory (default: $SCARCE_DATA_DIR, else the one the run used).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Compute device.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Print a Markdown results table from run folders: mean ± std over seeds per pipeline.
    #[command(after_help = "\
Examples:
  scarce results runs/ --threshold 0.92 > table.md
  scarce results runs/cv-fsdd-envnet2-*-limited-seen --eval fsdd_seen

Each PATH is a run folder or a folder of run folders; unfinished runs are skipped, and of
runs that repeat each other (the same pipeline settings, seed, fold and device, e.g. a
train run and a compare run of one pipeline) the newest is counted, with a warning.
Cross-validated runs (scarce cv) get one row per pipeline and seed (error over the
folds); a pipeline cross-validated with several seeds (scarce cv ... --seeds 1,2,3)
also gets a row that averages each fold over the seeds first. Each cross-validated
pipeline that is not standard learning is also paired with the standard-learning
pipelines of the same task (the [pipeline] table's `task`), fold by fold and seed by
seed: both errors, their ratio, the mean difference with its spread and standard
error, and how many pairs it wins. Pipelines with several evaluation sets (`[train]
eval`) get a row for each set, and cross-validated ones these tables for the first
set, then again for each further set. scarce cv prints the same tables at its end.")]
    Results {
        /// Run folders, or folders holding run folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also report the time until the accuracy first reached this value (0-1).
        #[arg(long, value_parser = share)]
        threshold: Option<f64>,
        /// Also draw the mean learning curves (training loss, held-out error) of the
        /// cross-validated pipelines into this SVG file: one curve per row of the tables,
        /// the mean over its folds and over the seeds of `scarce cv --seeds`.
        #[arg(long, value_name = "FILE.svg")]
        curves: Option<PathBuf>,
        /// Report only this evaluation set (a name in the pipelines' `[train] eval`
        /// list) instead of each run's first and then the others; runs that do not
        /// evaluate on it are left out.
        #[arg(long, value_name = "NAME")]
        eval: Option<String>,
    },
    /// Validate a pipeline file and print its graph (stages, edge types, policies).
    Check {
        /// Pipeline file.
        pipeline: PathBuf,
        /// Data directory whose files the pipeline's data sets need.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Show where data is read from and which data sets are present; fetch data sets.
    #[command(after_help = "\
Examples:
  scarce data --data-dir ../shared/data
  scarce data fetch esc50 --data-dir ~/data")]
    Data {
        /// Data directory to inspect (or to fetch into).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<DataAction>,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// Download a public data set into the data directory (SHA-256 checked, unpacked
    /// atomically).
    #[command(after_help = "\
Data sets: esc50 (ESC-50 and ESC-10), fsdd. The archive's SHA-256 is printed; pin it
with --sha256 to have a later fetch refuse anything else. UrbanSound8K is behind a
download form: unpack it by hand as DATA/UrbanSound8K/.")]
    Fetch {
        /// Which data set.
        name: String,
        /// Download from this address instead (a mirror; a .tar.gz of the same layout).
        #[arg(long)]
        url: Option<String>,
        /// Expected SHA-256 of the archive, in hex.
        #[arg(long)]
        sha256: Option<String>,
    },
}

/// The result of a finished fold's run folder.
fn evaluated_run(dir: &std::path::Path) -> anyhow::Result<scarce::results::RunResult> {
    scarce::results::read_run(dir, None)?
        .ok_or_else(|| anyhow::anyhow!("{} has no evaluation", dir.display()))
}

/// `error 12.3%`: a fold's held-out error, for the lines `scarce cv` prints.
fn error_text(r: &scarce::results::RunResult) -> String {
    format!("error {:.1}%", 100.0 * (1.0 - r.final_acc))
}

/// The cross-validation tables of `runs` (see [`print_cv_tables_of`]), then the same
/// tables for each further evaluation set of the cross-validated runs.
fn print_cv_tables(runs: &[scarce::results::RunResult]) -> anyhow::Result<()> {
    print_cv_tables_of(runs);
    let cv: Vec<&scarce::results::RunResult> = runs.iter().filter(|r| r.fold.is_some()).collect();
    for name in scarce::results::further_evals(cv.iter().copied()) {
        let mut on = Vec::new();
        for r in cv.iter().filter(|r| r.evals.contains(&name)) {
            if let Some(r) = scarce::results::read_run_on(&r.dir, None, Some(&name))? {
                on.push(r);
            }
        }
        if !on.is_empty() {
            println!(
                "\nEvaluated on {name} (these tables alone: `scarce results ... --eval {name}`):\n"
            );
            print_cv_tables_of(&on);
        }
    }
    Ok(())
}

/// The cross-validation table of `runs` and, where a pipeline ran with several seeds,
/// the table over seeds, and the pairing with standard learning.
fn print_cv_tables_of(runs: &[scarce::results::RunResult]) {
    print!("{}", scarce::results::cv_table(runs));
    let seeds = scarce::results::cv_seed_table(runs);
    if !seeds.is_empty() {
        println!("\nOver seeds (each fold's error averaged over the seeds first):\n");
        print!("{seeds}");
    }
    let paired = scarce::results::cv_paired_table(runs);
    if !paired.is_empty() {
        println!("\nAgainst standard learning on the same task, fold by fold and seed by seed:\n");
        print!("{paired}");
    }
}

fn main() -> ExitCode {
    scarce::model::device::cpu_by_default();
    scarce::kernels::tune_allocator();
    init_logging();
    let cli = Cli::parse();
    if prints_a_report(&cli.command) {
        end_quietly_when_the_reader_goes();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(pe) = e.downcast_ref::<scarce::pipeline::PipelineError>() {
                eprintln!("error: {pe}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

/// Commands whose work is the report they print: when its reader goes away (`scarce
/// results runs/ | head`), they may end there. Commands that train or stream are left
/// to finish what they write to disk.
fn prints_a_report(command: &Command) -> bool {
    matches!(
        command,
        Command::Results { .. }
            | Command::Check { .. }
            | Command::Devices
            | Command::Data { action: None, .. }
    )
}

/// Ends the process quietly, as other command-line tools do, when standard output is a
/// pipe whose reader has gone; Rust's default is to turn that into a panic at the next
/// `println!`.
fn end_quietly_when_the_reader_goes() {
    #[cfg(unix)]
    // SAFETY: called at start-up, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The first value of `list` that comes again later.
fn named_twice<T: PartialEq + Copy>(list: &[T]) -> Option<T> {
    list.iter()
        .enumerate()
        .find(|(i, v)| list[i + 1..].contains(v))
        .map(|(_, v)| *v)
}

/// One number of a comma-separated list (`--folds 1,2,3`).
fn list_item<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.trim().parse().map_err(|e| {
        format!("{e}: give whole numbers separated by commas, such as 1,2,3 (a range like 1-3 is not read)")
    })
}

/// A value between 0 and 1, as accuracies are given (`0.92` for 92%).
fn share(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else if (1.0..=100.0).contains(&v) {
        Err(format!(
            "give a share between 0 and 1 (for {v}%: {})",
            v / 100.0
        ))
    } else {
        Err("give a share between 0 and 1".to_string())
    }
}

/// What an interrupted run at `dir`, `done` epochs in, is told: where `--resume` takes
/// it up, from its last checkpoint (written every `checkpoint_every` epochs).
fn resume_hint(dir: &std::path::Path, done: usize) -> String {
    let resume = format!("`scarce train --resume {}`", dir.display());
    match scarce::train::checkpoint::latest(dir) {
        Ok(Some((_, state))) if state.epoch >= done => {
            format!("interrupted after epoch {done}: continue with {resume}")
        }
        Ok(Some((_, state))) => format!(
            "interrupted after epoch {done}; the last checkpoint is of epoch {} (the pipeline's `checkpoint_every`), so {resume} continues from epoch {}",
            state.epoch,
            state.epoch.saturating_add(1)
        ),
        _ => format!(
            "interrupted after epoch {done}, before the first checkpoint: {resume} starts it again from epoch 1"
        ),
    }
}

/// The first entry of the folder `root` of a comparison that the comparison would not
/// write: a run folder of its own (`planned`), the embedding picture, a temporary file.
fn foreign_in_comparison(root: &std::path::Path, planned: &[&std::path::Path]) -> Option<String> {
    if root.join(session::RUN_FILE).exists() {
        return Some(format!("a run ({})", session::RUN_FILE));
    }
    scarce::fsutil::first_foreign_entry(root, |name| {
        name == session::EMBED_FILE
            || planned
                .iter()
                .any(|d| d.file_name().is_some_and(|f| f == name))
    })
}

/// The command that continues this `scarce compare`: the same, with `--out ROOT` added
/// where it chose the folder itself.
fn compare_continue_command(root: &std::path::Path, add_out: bool) -> String {
    let mut args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| shell_word(&a.to_string_lossy()))
        .collect();
    if add_out {
        // right after the subcommand: pipelines may follow a `--`
        let at = 1.min(args.len());
        args.splice(
            at..at,
            ["--out".to_string(), shell_word(&root.display().to_string())],
        );
    }
    format!("`scarce {}`", args.join(" "))
}

/// What `scarce compare` says when one of its runs stopped: the run's own state, and the
/// command that continues the whole comparison (this one, with `--out ROOT` added where
/// it chose the folder itself): finished runs are kept, the stopped one resumes.
fn compare_resume_hint(
    dir: &std::path::Path,
    summary: &scarce::sink::metrics::Summary,
    root: &std::path::Path,
    add_out: bool,
) -> String {
    let done = summary.epochs_done;
    let command = compare_continue_command(root, add_out);
    if summary.status == "completed" {
        return format!(
            "finished its last epoch as the comparison stopped: continue the comparison with {command} (finished runs are kept)"
        );
    }
    let (state, next) = match scarce::train::checkpoint::latest(dir) {
        Ok(Some((_, state))) if state.epoch >= done => (
            format!("stopped after epoch {done}"),
            format!("continues from epoch {}", state.epoch.saturating_add(1)),
        ),
        Ok(Some((_, state))) => (
            format!(
                "stopped after epoch {done}; its last checkpoint is of epoch {} (the pipeline's `checkpoint_every`)",
                state.epoch
            ),
            format!("continues from epoch {}", state.epoch.saturating_add(1)),
        ),
        _ => (
            format!("stopped after epoch {done}, before its first checkpoint"),
            "starts again from epoch 1".to_string(),
        ),
    };
    format!(
        "{state}: continue the comparison with {command} (finished runs are kept; this one {next})"
    )
}

/// `word` quoted for a POSIX shell where it needs it.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Log lines: `warning: ...` like the `error: ...` lines, unless `RUST_LOG` asks for
/// more, where each line gets its time, level and module for debugging.
fn init_logging() {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if std::env::var_os("RUST_LOG").is_none() {
        b.format(|buf, record| {
            use std::io::Write;
            let level = level_word(record.level());
            // another crate's lines say whose they are
            match record.target() {
                t if t == "scarce" || t.starts_with("scarce::") => {
                    writeln!(buf, "{level}: {}", record.args())
                }
                t => writeln!(buf, "{level} ({t}): {}", record.args()),
            }
        });
    }
    b.init();
}

/// How a log line of `level` starts.
fn level_word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// What successive Ctrl-Cs do while training: the first lets the epoch under way
/// finish and checkpoints it; the second stops at once.
const STOP_TRAINING: [&str; 2] = [
    "finishing the epoch under way and checkpointing it (Ctrl-C again to stop at once)",
    "now, after the current step or evaluation; what was trained since the last checkpoint is lost (Ctrl-C again to force)",
];
/// The same for `scarce cv`, whose folds may run as child processes.
const STOP_CV: [&str; 2] = [
    "the folds under way finish their epoch and checkpoint it, no further fold starts (Ctrl-C again to stop them at once)",
    STOP_TRAINING[1],
];
/// What the first Ctrl-C does while streaming.
const STOP_STREAM: &str = "ending the stream after the windows under way (Ctrl-C again to force)";

/// Successive Ctrl-Cs: each sets the next flag and says what it does; one more than
/// there are flags exits at once. A signal that comes twice within a moment (to the
/// process and to its group: a terminal, `timeout`, `scarce cv` forwarding it) counts
/// once.
struct CtrlC {
    levels: Vec<(&'static str, StopFlag)>,
    pressed: usize,
    last: Option<std::time::Instant>,
}

/// What one Ctrl-C does.
#[derive(Debug, PartialEq)]
enum Press {
    /// The same interrupt again.
    Repeat,
    /// The next flag was set; the words say what happens.
    Stopping(&'static str),
    /// Every flag is set already: exit.
    Force,
}

impl CtrlC {
    fn press(&mut self, now: std::time::Instant) -> Press {
        if let Some(t) = self.last {
            if now.duration_since(t) < std::time::Duration::from_secs(1) {
                return Press::Repeat;
            }
        }
        self.last = Some(now);
        match self.levels.get(self.pressed) {
            Some((what, flag)) => {
                self.pressed += 1;
                flag.stop();
                Press::Stopping(what)
            }
            None => Press::Force,
        }
    }
}

/// Installs the Ctrl-C handler over `levels` (see [`CtrlC`]).
fn on_ctrl_c(levels: Vec<(&'static str, StopFlag)>) {
    let state = std::sync::Mutex::new(CtrlC {
        levels,
        pressed: 0,
        last: None,
    });
    let _ = ctrlc::set_handler(move || {
        let press = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .press(std::time::Instant::now());
        match press {
            Press::Repeat => {}
            Press::Stopping(what) => eprintln!("\nstopping: {what}"),
            Press::Force => {
                eprintln!("forced stop: what was not checkpointed is lost");
                std::process::exit(130);
            }
        }
    });
}

/// The stop flags of a training command, set by Ctrl-C as `what` says.
fn train_stop_on_ctrl_c(what: [&'static str; 2]) -> TrainStop {
    let stop = TrainStop::new();
    on_ctrl_c(vec![
        (what[0], stop.at_epoch_end.clone()),
        (what[1], stop.now.clone()),
    ]);
    stop
}

/// A stop flag that the first Ctrl-C sets, saying `what` it does; a second one exits at
/// once.
fn stop_on_ctrl_c(what: &'static str) -> StopFlag {
    let stop = StopFlag::new();
    on_ctrl_c(vec![(what, stop.clone())]);
    stop
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train {
            pipeline,
            resume,
            out,
            run,
            stats,
        } => {
            let stop = train_stop_on_ctrl_c(STOP_TRAINING);
            let req = TrainRequest {
                pipeline,
                resume,
                out,
                data_dir: run.data_dir,
                seed: run.seed,
                epochs: run.epochs,
                fold: run.fold,
                device: run.device,
                quiet: run.quiet,
                epoch_note: None,
            };
            let outcome = session::train(&req, stop.clone())?;
            if stats {
                eprintln!("{}", outcome.report.table());
            }
            let s = &outcome.summary;
            println!("run folder: {}", outcome.run_dir.display());
            println!(
                "{} epoch{} of {} in {:.1} s (seed {}, device {})",
                s.epochs_done,
                if s.epochs_done == 1 { "" } else { "s" },
                s.epochs,
                s.elapsed_s,
                s.seed,
                s.device
            );
            println!("{:<16} {:>9} {:>9}", "data", "final", "best");
            for ((name, fin), (_, best, at)) in s.final_eval.iter().zip(&s.best_eval) {
                println!(
                    "{name:<16} {:>8.2}% {:>8.2}% (epoch {at})",
                    100.0 * fin,
                    100.0 * best
                );
            }
            print!(
                "{}",
                scarce::results::open_set_lines("open set (final)", &s.final_open_set)
            );
            // a stop during the last epoch's evaluation still leaves a finished run
            if s.status != "completed" {
                eprintln!("{}", resume_hint(&outcome.run_dir, s.epochs_done));
                return Ok(ExitCode::from(130));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            pipelines,
            out,
            run,
        } => {
            let stop = train_stop_on_ctrl_c(STOP_TRAINING);
            let chose_root = out.is_none();
            let root = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("compare-{}", session::timestamp()))
            });
            // every file, and what an earlier comparison left in OUT, is checked before
            // the first run starts
            let mut plan = Vec::new();
            for (i, p) in pipelines.iter().enumerate() {
                session::load_pipeline(p, run.epochs)?;
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("run{i}"));
                let dir = root.join(format!("{}-{stem}", i + 1));
                let wanted = session::Wanted {
                    seed: run.seed,
                    epochs: run.epochs,
                    fold: run.fold,
                    data_dir: run.data_dir.as_deref(),
                };
                let earlier = session::earlier_run(&dir, p, &wanted)?;
                plan.push((p, dir, earlier));
            }
            let planned: Vec<&std::path::Path> = plan.iter().map(|(_, d, _)| d.as_path()).collect();
            if let Some(other) = foreign_in_comparison(&root, &planned) {
                anyhow::bail!(
                    "{} holds {other}, which this comparison did not write: give --out a new or empty folder, or the folder of this same comparison",
                    root.display()
                );
            }
            let mut results = Vec::new();
            let last = plan.len();
            for (i, (p, dir, earlier)) in plan.into_iter().enumerate() {
                let step = format!("[{}/{last}] {}", i + 1, p.display());
                let resume = match earlier {
                    session::EarlierRun::Finished(r) => {
                        eprintln!("{step}: finished earlier ({})", dir.display());
                        results.push(*r);
                        continue;
                    }
                    // stopped between two runs: the next is not begun
                    _ if stop.requested() => {
                        eprintln!(
                            "stopped before {}: continue the comparison with {} (finished runs are kept)",
                            p.display(),
                            compare_continue_command(&root, chose_root)
                        );
                        return Ok(ExitCode::from(130));
                    }
                    session::EarlierRun::Interrupted => {
                        eprintln!("{step} -> {} (continuing it)", dir.display());
                        true
                    }
                    session::EarlierRun::Absent => {
                        eprintln!("{step} -> {}", dir.display());
                        false
                    }
                };
                let req = TrainRequest {
                    pipeline: (!resume).then(|| p.clone()),
                    resume: resume.then(|| dir.clone()),
                    out: (!resume).then(|| dir.clone()),
                    data_dir: run.data_dir.clone(),
                    // a resumed run keeps its own seed and fold (checked above)
                    seed: run.seed.filter(|_| !resume),
                    epochs: run.epochs,
                    fold: run.fold.filter(|_| !resume),
                    device: run.device.clone(),
                    quiet: run.quiet,
                    epoch_note: None,
                };
                let outcome = session::train(&req, stop.clone())?;
                let completed = outcome.summary.status == "completed";
                // a stop as the last run finished leaves nothing to continue: the table
                if !completed || (stop.requested() && i + 1 < last) {
                    eprintln!(
                        "{}: {}",
                        p.display(),
                        compare_resume_hint(&dir, &outcome.summary, &root, chose_root)
                    );
                    return Ok(ExitCode::from(130));
                }
                match scarce::results::read_run(&dir, None)? {
                    Some(r) => results.push(r),
                    None => anyhow::bail!("{} has no evaluation to compare", dir.display()),
                }
            }
            println!("run folders: {}", root.display());
            print!("{}", scarce::results::comparison(&results));
            let mut panels = Vec::new();
            for r in &results {
                let e = session::load_embedding(&r.dir)?;
                let title = format!(
                    "{}: {:.1}% on {} (epoch {})",
                    r.method,
                    100.0 * r.final_acc,
                    r.data,
                    r.epochs
                );
                panels.push((title, e.points));
            }
            let svg = scarce::sink::plot::embedding_panels_svg(&panels)?;
            let path = root.join(session::EMBED_FILE);
            scarce::fsutil::write_atomic(&path, svg.as_bytes())?;
            println!(
                "generator features side by side (t-SNE): {}",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cv {
            pipelines,
            folds,
            seeds,
            out,
            jobs,
            run,
        } => {
            let jobs = usize::from(jobs);
            anyhow::ensure!(
                run.fold.is_none(),
                "`scarce cv` chooses the folds itself: use --folds 1,2,... instead of --fold"
            );
            anyhow::ensure!(
                out.is_none() || pipelines.len() == 1,
                "--out names the folder of one pipeline's folds: with several pipelines each gets runs/cv-NAME (run them one at a time to choose the folders)"
            );
            if let Some(s) = named_twice(&seeds) {
                anyhow::bail!("--seeds names seed {s} twice");
            }
            if let Some(f) = named_twice(&folds) {
                anyhow::bail!("--folds names fold {f} twice");
            }
            let stop = train_stop_on_ctrl_c(STOP_CV);
            let started = std::time::Instant::now();
            let data_dir = resolve_data_dir(run.data_dir.as_deref());
            let mut plans = Vec::new();
            for pipeline in &pipelines {
                let plan = cv_jobs::CvPlan::new(
                    pipeline,
                    &folds,
                    &seeds,
                    out.clone(),
                    (run.seed, run.epochs),
                    &data_dir,
                    run.data_dir.as_deref(),
                )?;
                if let Some(other) = plans
                    .iter()
                    .find(|p: &&cv_jobs::CvPlan| p.base == plan.base)
                {
                    anyhow::bail!(
                        "{} and {} both write their folds to {}: give each pipeline its own name",
                        other.pipeline.display(),
                        pipeline.display(),
                        plan.base.display()
                    );
                }
                plans.push(plan);
            }
            let total: usize = plans.iter().map(cv_jobs::CvPlan::len).sum();
            let mut results = Vec::new();
            let mut tasks = Vec::new();
            let mut step = 0;
            for plan in &plans {
                let name = (plans.len() > 1).then_some(plan.name.as_str());
                plan.tasks(name, &mut step, total, &mut tasks, &mut results)?;
            }
            let jobs = jobs.min(tasks.len()).max(1);
            let trained = tasks.len();
            if jobs > 1 {
                // each child would report a bad --device on its own: say it once, first
                run.device
                    .parse::<scarce::model::device::DeviceChoice>()?
                    .device()?;
                let opts = cv_jobs::ChildOptions {
                    data_dir: run.data_dir.as_deref(),
                    epochs: run.epochs,
                    device: &run.device,
                    quiet: run.quiet,
                };
                let outcome = cv_jobs::run_parallel(&tasks, jobs, total, &opts, &stop, |i| {
                    let t = &tasks[i];
                    let r = evaluated_run(&t.dir)?;
                    let line = error_text(&r);
                    results.push((t.step, r));
                    Ok(line)
                })?;
                if let cv_jobs::Outcome::Interrupted = outcome {
                    eprintln!("interrupted: run the same command again to continue");
                    return Ok(ExitCode::from(130));
                }
            } else {
                let mut clock = cv_jobs::QueueClock::default();
                for (i, t) in tasks.iter().enumerate() {
                    if stop.requested() {
                        // stopped between two folds: the next is not begun
                        eprintln!("interrupted: run the same command again to continue");
                        return Ok(ExitCode::from(130));
                    }
                    eprintln!("{}", t.start_line(total));
                    let fold_started = std::time::Instant::now();
                    let req = TrainRequest {
                        pipeline: (!t.resume).then(|| t.pipeline.clone()),
                        resume: t.resume.then(|| t.dir.clone()),
                        out: (!t.resume).then(|| t.dir.clone()),
                        data_dir: run.data_dir.clone(),
                        seed: t.seed,
                        epochs: run.epochs,
                        fold: Some(t.fold),
                        device: run.device.clone(),
                        quiet: run.quiet,
                        epoch_note: Some(cv_jobs::queue_note(t, &clock, &tasks[i + 1..])),
                    };
                    let outcome = session::train(&req, stop.clone())?;
                    if outcome.summary.status != "completed" {
                        eprintln!(
                            "interrupted in {}fold {}: run the same command again to continue",
                            t.note, t.fold
                        );
                        return Ok(ExitCode::from(130));
                    }
                    let r = evaluated_run(&t.dir)?;
                    let minutes = fold_started.elapsed().as_secs_f64() / 60.0;
                    clock.finished(t, minutes);
                    let queued = &tasks[i + 1..];
                    let left = cv_jobs::left_note(queued.len(), clock.left(1, &[], queued));
                    eprintln!(
                        "[{}/{total}] {}fold {}: {} ({minutes:.1} min){left}",
                        t.step,
                        t.note,
                        t.fold,
                        error_text(&r)
                    );
                    results.push((t.step, r));
                }
            }
            results.sort_by_key(|(step, _)| *step);
            let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
            if trained > 0 {
                eprintln!(
                    "trained {trained} of {total} folds in {:.1} min",
                    started.elapsed().as_secs_f64() / 60.0
                );
            }
            println!(
                "run folders: {}",
                plans
                    .iter()
                    .flat_map(|p| p.roots.iter().map(|(_, root)| root.display().to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            print_cv_tables(&results)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices => {
            #[cfg(feature = "mic")]
            {
                print!(
                    "{}",
                    scarce::stream::mic::devices_report(&scarce::stream::mic::list_hosts())
                );
                Ok(ExitCode::SUCCESS)
            }
            #[cfg(not(feature = "mic"))]
            {
                anyhow::bail!("{}", scarce::stream::run::NO_MIC)
            }
        }
        Command::Run {
            run,
            input,
            serial,
            baud,
            tcp,
            stdin,
            input_device,
            duration,
            fast,
            hop,
            smooth,
            gate_db,
            threshold,
            fps,
            limit,
            invert,
            json,
            stats,
            skip_bad_files,
            device,
        } => {
            if threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
                anyhow::bail!(
                    "--threshold must be between 0 and 1 (got {})",
                    threshold.unwrap_or_default()
                );
            }
            if let Some(g) = gate_db.filter(|g| !g.is_finite()) {
                anyhow::bail!("--gate-db must be a level in dB, such as -60 (got {g})");
            }
            if baud.is_some() && serial.is_none() {
                anyhow::bail!("--baud sets the speed of a --serial port: give --serial PORT");
            }
            use scarce::stream::{images, run::Input, wire::WireInput, InputKind};
            let kind = input.as_deref().and_then(InputKind::of);
            let image_model = images::ImageModel::is_image_run(&run)?;
            // options of the other kind of model would be ignored: say so instead
            let given = |set: bool, name: &str| set.then(|| name.to_string());
            let (theirs, other) = if image_model {
                (
                    [
                        given(hop.is_some(), "--hop"),
                        given(smooth.is_some(), "--smooth"),
                        given(gate_db.is_some(), "--gate-db"),
                        given(duration.is_some(), "--duration"),
                        given(input_device.is_some(), "--input-device"),
                    ],
                    "a sound",
                )
            } else {
                (
                    [
                        given(fps.is_some(), "--fps"),
                        given(limit.is_some(), "--limit"),
                        given(invert, "--invert"),
                        None,
                        None,
                    ],
                    "an image",
                )
            };
            if let Some(flag) = theirs.into_iter().flatten().next() {
                anyhow::bail!(
                    "{flag} is for {other} model, and {} holds {}: see `scarce run --help`",
                    run.display(),
                    if image_model {
                        "an image model"
                    } else {
                        "a sound model"
                    }
                );
            }
            if image_model {
                let Some(input) = input.filter(|p| !scarce::stream::run::is_mic(p)) else {
                    anyhow::bail!(
                        "{} holds an image model: give it images with --input FILE|DIR (PNG or JPEG files, or an IDX file of images)",
                        run.display()
                    );
                };
                if kind == Some(InputKind::Wav) {
                    anyhow::bail!(
                        "{} is {}, but {} holds an image model: give it images (PNG or JPEG files, or an IDX file of images)",
                        input.display(),
                        InputKind::Wav.words(),
                        run.display()
                    );
                }
                let opts = images::ImageOptions {
                    input,
                    fps: fps.unwrap_or(10.0),
                    fast,
                    limit,
                    invert,
                    threshold,
                    json,
                    stats,
                    device,
                    skip_bad_files,
                };
                let stop = stop_on_ctrl_c(STOP_STREAM);
                let summary = images::run_images(&run, &opts, stop, Box::new(std::io::stdout()))?;
                if summary.output_closed {
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("{}", summary.line());
                if stats {
                    eprintln!("{}", summary.report.table());
                }
                return Ok(if summary.report.stopped {
                    ExitCode::from(130)
                } else {
                    ExitCode::SUCCESS
                });
            }
            if let (Some(k @ (InputKind::Image | InputKind::Idx | InputKind::Gzip)), Some(p)) =
                (kind, &input)
            {
                anyhow::bail!(
                    "{} is {}, but {} holds a sound model: give it a WAV file, a folder of them, or `--input mic`",
                    p.display(),
                    k.words(),
                    run.display()
                );
            }
            let baud = baud.unwrap_or(scarce::stream::wire::DEFAULT_BAUD);
            let input = match (input, serial, tcp) {
                (Some(p), _, _) => Input::from_arg(&p),
                (_, Some(port), _) => Input::Wire(WireInput::Serial { port, baud }),
                (_, _, Some(listen)) => Input::Wire(WireInput::Tcp { listen }),
                _ if stdin => Input::Wire(WireInput::Stdin),
                _ => anyhow::bail!(
                    "say what to listen to: --input FILE|DIR|mic, --serial PORT, --tcp HOST:PORT or --stdin"
                ),
            };
            let opts = scarce::stream::run::LiveOptions {
                input,
                input_device,
                duration_s: duration,
                fast,
                hop_s: hop.unwrap_or(0.25),
                post: scarce::stream::PostConfig {
                    smooth: smooth.map_or(3, |s| s as usize),
                    gate_db: gate_db.unwrap_or(scarce::stream::DEFAULT_GATE_DB),
                    threshold: threshold.unwrap_or(0.5),
                },
                json,
                stats,
                device,
                skip_bad_files,
            };
            let stop = stop_on_ctrl_c(STOP_STREAM);
            let summary = match scarce::stream::run::run_live(
                &run,
                &opts,
                stop.clone(),
                Box::new(std::io::stdout()),
            ) {
                Ok(s) => s,
                // stopped before the stream began (waiting for a device): an
                // interruption, not a failure
                Err(e) if stop.is_stopped() => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::from(130));
                }
                Err(e) => return Err(e),
            };
            if summary.output_closed {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("{}", summary.line());
            if stats {
                eprintln!("{}", summary.report.table());
            }
            if let Some(why) = &summary.input_failed {
                anyhow::bail!("{why}");
            }
            if let (Some((0, _, corrupt)), false) = (summary.device_frames, summary.report.stopped)
            {
                let what = match corrupt {
                    0 => "the input ended without one frame".to_string(),
                    1 => "only 1 corrupt frame".to_string(),
                    n => format!("only {n} corrupt frames"),
                };
                anyhow::bail!(
                    "no samples of the wire protocol came in ({what}): --stdin, --serial and --tcp read what scarce's firmware-host crate sends (its example `sim-device x.wav --stdout | scarce run RUN --stdin`); a WAV file is read with --input FILE"
                );
            }
            Ok(if summary.report.stopped {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Eval {
            run,
            data,
            data_dir,
            json,
            device,
        } => {
            // a set named twice is evaluated once, where it was first named
            let mut data = data;
            let mut seen = std::collections::HashSet::new();
            data.retain(|d| seen.insert(d.clone()));
            let evals = session::evaluate_run(&run, &data, data_dir.as_deref(), &device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&evals)?);
            } else {
                if let Ok(Some((_, state))) = scarce::train::checkpoint::latest(&run) {
                    println!(
                        "{}: the checkpoint of epoch {}\n",
                        run.display(),
                        state.epoch
                    );
                }
                for e in &evals {
                    println!("{}", e.render());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Embed {
            run,
            data_dir,
            device,
        } => {
            let path = session::embed_run(&run, data_dir.as_deref(), &device)?;
            println!(
                "wrote {} and its points, {}",
                path.display(),
                session::EMBED_POINTS_FILE
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Results {
            paths,
            threshold,
            curves,
            eval,
        } => {
            if let Some(missing) = paths.iter().find(|p| !p.exists()) {
                anyhow::bail!(
                    "{}: no such run folder or folder of runs",
                    missing.display()
                );
            }
            let dirs = scarce::results::find_runs(&paths);
            let mut runs = Vec::new();
            for d in &dirs {
                if let Some(r) = scarce::results::read_run_on(d, threshold, eval.as_deref())? {
                    runs.push(r);
                }
            }
            let (mut runs, repeats) = scarce::results::drop_repeats(runs);
            for (left_out, kept) in &repeats {
                log::warn!(
                    "{} and {} are runs of the same pipeline settings, seed, fold and device: counting the newer, {}",
                    left_out.display(),
                    kept.display(),
                    kept.display()
                );
            }
            if runs.is_empty() {
                anyhow::bail!(
                    "no finished runs{} under {}",
                    eval.as_deref()
                        .map(|e| format!(" evaluated on `{e}`"))
                        .unwrap_or_default(),
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // the picture first: a reader of the tables that stops early (`| head`) ends
            // the process
            if let Some(path) = curves {
                let c = scarce::results::cv_curves(&runs);
                if c.is_empty() {
                    anyhow::bail!("--curves: none of these runs is cross-validated (scarce cv)");
                }
                let svg = scarce::sink::plot::cv_curves_svg(&c)?;
                scarce::fsutil::write_atomic(&path, svg.as_bytes())
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            if eval.is_none() {
                // runs that are not cross-validated: a row for each further evaluation
                // set as well (the table has a column for the set)
                let mut further = Vec::new();
                for r in runs.iter().filter(|r| r.fold.is_none()) {
                    for name in r.evals.iter().filter(|n| **n != r.data) {
                        further.extend(scarce::results::read_run_on(
                            &r.dir,
                            threshold,
                            Some(name),
                        )?);
                    }
                }
                runs.extend(further);
            }
            if runs.iter().any(|r| r.fold.is_none()) {
                print!("{}", scarce::results::table(&runs, threshold));
                let open = scarce::results::open_set_table(&runs);
                if !open.is_empty() {
                    println!("\nOpen set (final epoch):\n");
                    print!("{open}");
                }
            }
            if runs.iter().any(|r| r.fold.is_some()) {
                if runs.iter().any(|r| r.fold.is_none()) {
                    println!();
                }
                if eval.is_some() {
                    print_cv_tables_of(&runs);
                } else {
                    print_cv_tables(&runs)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { pipeline, data_dir } => {
            let file = PipelineFile::load(&pipeline)?;
            let plan = file.validate()?;
            let dir = resolve_data_dir(data_dir.as_deref());
            file.check_data(&dir)?;
            println!("{}: ok ({})", pipeline.display(), file.spec.pipeline.name);
            if !file.spec.pipeline.description.is_empty() {
                println!("  {}", file.spec.pipeline.description);
            }
            print!("{}", plan.render());
            println!(
                "data directory: {} ({})",
                dir.path.display(),
                scarce::pipeline::origin_words(&dir)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Data {
            data_dir,
            action: Some(DataAction::Fetch { name, url, sha256 }),
        } => {
            let archive = scarce::fetch::find(&name)?;
            let dir = resolve_data_dir(data_dir.as_deref());
            if dir.origin == scarce::data::DataDirOrigin::BuiltIn {
                anyhow::bail!(
                    "say where to put {name}: --data-dir DIR or {DATA_DIR_ENV}=DIR (the built-in data/ folder holds only the small default subset)"
                );
            }
            scarce::fetch::check_destination(archive, &dir.path)?;
            eprintln!(
                "fetching {} ({}) from {}",
                archive.name,
                archive.about,
                url.as_deref().unwrap_or(archive.url)
            );
            let got = scarce::fetch::fetch(
                archive,
                &dir.path,
                url.as_deref(),
                sha256.as_deref(),
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            )?;
            println!(
                "{}: {} bytes, SHA-256 {} ({})",
                got.folder.display(),
                got.bytes,
                got.sha256,
                if got.verified {
                    "verified"
                } else {
                    "no checksum known: pin it with --sha256 next time"
                }
            );
            println!("licence: {}", archive.licence);
            Ok(ExitCode::SUCCESS)
        }
        Command::Data {
            data_dir,
            action: None,
        } => {
            let dir = resolve_data_dir(data_dir.as_deref());
            if !dir.path.is_dir() {
                anyhow::bail!(
                    "data directory {} ({}) is not a folder: give the folder that holds mnist/, usps/, fsdd/ and the other sets (`scarce data fetch fsdd --data-dir DIR` makes one)",
                    dir.path.display(),
                    scarce::pipeline::origin_words(&dir)
                );
            }
            println!(
                "data directory: {} ({})",
                dir.path.display(),
                scarce::pipeline::origin_words(&dir)
            );
            println!("  (choose with --data-dir DIR or {DATA_DIR_ENV}=DIR)");
            for set in [DigitsSet::Mnist, DigitsSet::Usps] {
                for split in [Split::Train, Split::Test] {
                    let files = digits_files(set, split);
                    let missing: Vec<&str> = files
                        .iter()
                        .copied()
                        .filter(|f| !dir.path.join(f).is_file())
                        .collect();
                    let status = if missing.is_empty() {
                        "present".to_string()
                    } else {
                        format!("missing {}", missing.join(", "))
                    };
                    println!(
                        "  {:<6} {:<6} {status}",
                        format!("{set:?}").to_lowercase(),
                        format!("{split:?}").to_lowercase()
                    );
                }
            }
            use scarce::data::sound::{self, SoundSetKind};
            for kind in [
                SoundSetKind::Fsdd,
                SoundSetKind::Esc50,
                SoundSetKind::Esc10,
                SoundSetKind::Us8k,
            ] {
                let status = match sound::list(kind, &dir.path) {
                    Ok(l) => format!(
                        "present: {} recordings, {} folds",
                        l.entries.len(),
                        l.folds.len()
                    ),
                    // the header already says how to point at another folder
                    Err(sound::SoundDataError::Missing { path, hint, .. }) => {
                        format!("missing: {} not found; {hint}", path.display())
                    }
                    Err(e) => format!("unreadable: {e}"),
                };
                println!("  {:<13} {status}", kind.name());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{resume_hint, shell_word, CtrlC, Press, TrainStop, STOP_TRAINING};

    #[test]
    fn shell_words_are_quoted_only_where_a_shell_needs_it() {
        assert_eq!(shell_word("pipelines/a-b.toml"), "pipelines/a-b.toml");
        assert_eq!(shell_word("--epochs=30"), "--epochs=30");
        assert_eq!(shell_word("my runs/x"), "'my runs/x'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }

    #[test]
    fn each_ctrl_c_goes_one_step_further_and_a_repeated_signal_counts_once() {
        use std::time::{Duration, Instant};
        let stop = TrainStop::new();
        let mut c = CtrlC {
            levels: vec![
                (STOP_TRAINING[0], stop.at_epoch_end.clone()),
                (STOP_TRAINING[1], stop.now.clone()),
            ],
            pressed: 0,
            last: None,
        };
        let t = Instant::now();
        assert_eq!(c.press(t), Press::Stopping(STOP_TRAINING[0]));
        assert!(stop.at_epoch_end.is_stopped() && !stop.now.is_stopped());
        // the same signal to the process and to its group
        assert_eq!(c.press(t + Duration::from_millis(300)), Press::Repeat);
        assert!(!stop.now.is_stopped());
        let t = t + Duration::from_secs(2);
        assert_eq!(c.press(t), Press::Stopping(STOP_TRAINING[1]));
        assert!(stop.now.is_stopped());
        assert_eq!(c.press(t + Duration::from_millis(500)), Press::Repeat);
        assert_eq!(c.press(t + Duration::from_secs(2)), Press::Force);
    }

    #[test]
    fn an_interrupted_run_is_told_where_resume_takes_it_up() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        // before the first checkpoint
        let hint = resume_hint(run, 3);
        assert!(hint.contains("before the first checkpoint"), "{hint}");
        assert!(hint.contains("from epoch 1"), "{hint}");
        // a checkpoint of epoch 2 (written every 2 epochs), stopped after epoch 3
        crate::cv_jobs::checkpoint_state_at(run, 2);
        let hint = resume_hint(run, 3);
        assert!(
            hint.contains("last checkpoint is of epoch 2") && hint.contains("from epoch 3"),
            "{hint}"
        );
        // the checkpoint of the last epoch trained
        let hint = resume_hint(run, 2);
        assert!(
            hint.starts_with("interrupted after epoch 2: continue with"),
            "{hint}"
        );
    }
}
