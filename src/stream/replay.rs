//! Replay of WAV files as a live stream, for people without a microphone and for tests:
//! one file, or every `.wav` of a folder in name order, with silence between files,
//! at real-time pace or as fast as the graph takes it.

use super::{Chunk, Live};
use crate::audio::{read_wav, resample};
use crate::graph::{BoxError, Source};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The WAV files a replay plays: `path` itself, or the `.wav` files in folder `path`
/// sorted by name.
pub fn replay_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{}: no .wav files in this folder", path.display());
        }
        Ok(files)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        bail!("{}: no such file or folder", path.display())
    }
}

/// One replayed file's place in the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// Its first sample in the stream.
    pub start: u64,
    /// Samples of its audio (at the stream's rate, without the silence after it).
    pub len: u64,
    /// The file.
    pub path: PathBuf,
}

/// Where each file of a replay lies in the stream, filled in as the replay reaches it,
/// so that a decision can name the file it heard.
#[derive(Clone, Debug, Default)]
pub struct Timeline(Arc<Mutex<Vec<Placed>>>);

impl Timeline {
    fn push(&self, placed: Placed) {
        self.0.lock().expect("timeline lock").push(placed);
    }

    /// The file whose audio the samples `start..start + len` overlap most, if any
    /// (with at least a window of silence after each file, a window holds at most
    /// one file's audio).
    pub fn file_of(&self, start: u64, len: u64) -> Option<Placed> {
        let files = self.0.lock().expect("timeline lock");
        let end = start + len;
        let first = files.partition_point(|p| p.start + p.len <= start);
        files[first..]
            .iter()
            .take_while(|p| p.start < end)
            .map(|p| (p, end.min(p.start + p.len) - start.max(p.start)))
            .max_by_key(|&(_, overlap)| overlap)
            .map(|(p, _)| p.clone())
    }
}

/// Plays files as [`Chunk`]s at `rate`.
pub struct Replay {
    files: Vec<PathBuf>,
    next_file: usize,
    rate: u32,
    chunk: usize,
    gap: usize,
    fast: bool,
    /// Samples of the current file (resampled), then its trailing silence.
    pending: Vec<f32>,
    pos: usize,
    /// Samples of the current file's own audio in `pending` from `pos` on.
    audio_left: usize,
    /// Samples of silence emitted since the last sample of a file.
    silence_run: u64,
    /// The silence after a cut by the limit was emitted.
    tailed: bool,
    emitted: u64,
    started: Option<Instant>,
    counter: Option<Arc<AtomicU64>>,
    stream_counter: Option<Arc<AtomicU64>>,
    limit: Option<u64>,
    timeline: Option<Timeline>,
}

impl Replay {
    /// Replays `files` at `rate` Hz in chunks of `chunk` samples, `gap` samples of
    /// silence after each file, paced in real time unless `fast`.
    pub fn new(files: Vec<PathBuf>, rate: u32, chunk: usize, gap: usize, fast: bool) -> Self {
        Self {
            files,
            next_file: 0,
            rate: rate.max(1),
            chunk: chunk.max(1),
            gap,
            fast,
            pending: Vec::new(),
            pos: 0,
            audio_left: 0,
            silence_run: 0,
            tailed: false,
            emitted: 0,
            started: None,
            counter: None,
            stream_counter: None,
            limit: None,
            timeline: None,
        }
    }

    /// Also records where each file starts in the stream in `timeline`.
    pub fn placing(mut self, timeline: Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Also adds the number of the files' own samples emitted to `counter` (not the
    /// silence after each file).
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Also adds the number of all samples emitted at the stream's pace, the silence
    /// after each file too, to `counter` (not the silence after a cut by the limit,
    /// which is emitted at once).
    pub fn counting_stream(mut self, counter: Arc<AtomicU64>) -> Self {
        self.stream_counter = Some(counter);
        self
    }

    /// Ends the stream after `samples` samples. A cut within a file, or before the
    /// silence after it has run its course, is followed by the rest of that silence, so
    /// the windows that hold the file's last samples are scored; the samples after the
    /// cut are not placed in the file.
    pub fn limit(mut self, samples: u64) -> Self {
        self.limit = Some(samples);
        self
    }

    fn load_next(&mut self) -> Result<bool> {
        let Some(path) = self.files.get(self.next_file) else {
            return Ok(false);
        };
        self.next_file += 1;
        let clip = read_wav(path)?;
        let mut samples = resample(&clip.samples, clip.rate, self.rate)
            .with_context(|| format!("resampling {}", path.display()))?;
        if let Some(t) = &self.timeline {
            // the previous file and its silence have all been emitted
            let room = self
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(self.emitted));
            t.push(Placed {
                start: self.emitted,
                len: (samples.len() as u64).min(room),
                path: path.clone(),
            });
        }
        self.audio_left = samples.len();
        samples.resize(samples.len() + self.gap, 0.0);
        self.pending = samples;
        self.pos = 0;
        Ok(true)
    }
}

impl Source<Live> for Replay {
    fn next(&mut self) -> Result<Option<Live>, BoxError> {
        while self.pos >= self.pending.len() {
            if !self.load_next()? {
                return Ok(None);
            }
        }
        let left = self
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.emitted));
        if left == 0 {
            // cut: the silence a file gets after it, less what it already had
            let tail = (self.gap as u64).saturating_sub(self.silence_run);
            if self.tailed || tail == 0 || self.emitted == self.silence_run {
                return Ok(None);
            }
            self.tailed = true;
            let start = self.emitted;
            self.emitted += tail;
            return Ok(Some(Live::Chunk(Chunk {
                start,
                samples: vec![0.0; tail as usize],
                arrived: Instant::now(),
            })));
        }
        let end = (self.pos + self.chunk.min(left.min(usize::MAX as u64) as usize))
            .min(self.pending.len());
        let samples = self.pending[self.pos..end].to_vec();
        self.pos = end;
        let start = self.emitted;
        self.emitted += samples.len() as u64;
        let audio = samples.len().min(self.audio_left);
        self.audio_left -= audio;
        // silence since the last sample of a file (for the tail at a cut)
        self.silence_run = if audio == samples.len() {
            0
        } else if audio > 0 {
            (samples.len() - audio) as u64
        } else {
            self.silence_run + samples.len() as u64
        };
        if let Some(c) = &self.counter {
            c.fetch_add(audio as u64, Ordering::Relaxed);
        }
        if let Some(c) = &self.stream_counter {
            c.fetch_add(samples.len() as u64, Ordering::Relaxed);
        }
        let t0 = *self.started.get_or_insert_with(Instant::now);
        if !self.fast {
            // the chunk's last sample is due at its stream time
            let due = t0 + Duration::from_secs_f64(self.emitted as f64 / self.rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        Ok(Some(Live::Chunk(Chunk {
            start,
            samples,
            arrived: Instant::now(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::write_wav_i16;

    #[test]
    fn plays_a_folder_in_name_order_with_gaps_and_real_time_pace() {
        let dir = tempfile::tempdir().unwrap();
        write_wav_i16(&dir.path().join("b.wav"), &vec![0.5; 800], 8000).unwrap();
        write_wav_i16(&dir.path().join("a.wav"), &vec![-0.5; 400], 8000).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not audio").unwrap();
        let files = replay_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].ends_with("a.wav"));
        let (audio, stream) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut r = Replay::new(files, 8000, 160, 200, false)
            .counting(audio.clone())
            .counting_stream(stream.clone());
        let t = Instant::now();
        let mut all = Vec::new();
        let mut next_start = 0;
        while let Some(Live::Chunk(c)) = r.next().unwrap() {
            assert_eq!(c.start, next_start);
            next_start += c.samples.len() as u64;
            all.extend(c.samples);
        }
        // 400 + 200 silence + 800 + 200 silence = 1,600 samples = 200 ms at 8 kHz
        assert_eq!(all.len(), 1600);
        // the files' own audio, and everything streamed
        assert_eq!(audio.load(Ordering::Relaxed), 1200);
        assert_eq!(stream.load(Ordering::Relaxed), 1600);
        assert!((all[0] + 0.5).abs() < 1e-3 && all[450] == 0.0 && (all[700] - 0.5).abs() < 1e-3);
        assert!(
            t.elapsed() >= Duration::from_millis(195),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn the_timeline_names_the_file_a_window_heard() {
        let dir = tempfile::tempdir().unwrap();
        write_wav_i16(&dir.path().join("a.wav"), &vec![0.5; 400], 8000).unwrap();
        write_wav_i16(&dir.path().join("b.wav"), &vec![0.5; 800], 8000).unwrap();
        let timeline = Timeline::default();
        let files = replay_files(dir.path()).unwrap();
        let mut r = Replay::new(files, 8000, 160, 200, true).placing(timeline.clone());
        while r.next().unwrap().is_some() {}
        // a.wav: samples 0-399, silence 400-599; b.wav: 600-1399, silence to 1599
        let name = |start, len| {
            timeline.file_of(start, len).map(|p| {
                (
                    p.path.file_name().unwrap().to_str().unwrap().to_owned(),
                    p.start,
                )
            })
        };
        assert_eq!(name(0, 200), Some(("a.wav".into(), 0)));
        assert_eq!(name(350, 200), Some(("a.wav".into(), 0)));
        assert_eq!(name(450, 200), Some(("b.wav".into(), 600)));
        assert_eq!(name(1300, 200), Some(("b.wav".into(), 600)));
        // silence only: between the files and after the last
        assert_eq!(name(400, 200), None);
        assert_eq!(name(1400, 200), None);
        // overlapping both, the one it holds more of
        assert_eq!(name(250, 400), Some(("a.wav".into(), 0)));
        assert_eq!(name(350, 400), Some(("b.wav".into(), 600)));
        assert_eq!(timeline.file_of(0, 1600).unwrap().len, 800);
    }

    #[test]
    fn a_limit_ends_the_replay_after_that_many_samples() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wav");
        write_wav_i16(&f, &vec![0.5; 1000], 8000).unwrap();
        let chunks = |limit: u64| {
            let timeline = Timeline::default();
            let mut r = Replay::new(vec![f.clone()], 8000, 160, 200, true)
                .limit(limit)
                .placing(timeline.clone());
            let mut n = Vec::new();
            while let Some(Live::Chunk(c)) = r.next().unwrap() {
                n.push((c.start, c.samples.len(), c.samples[0]));
            }
            (n, timeline.file_of(0, 10_000).map(|p| p.len))
        };
        // cut inside the file: the silence a file gets after it follows the cut, and
        // the file is placed up to the cut
        let (n, placed) = chunks(330);
        assert_eq!(
            n,
            vec![
                (0, 160, 0.5),
                (160, 160, 0.5),
                (320, 10, 0.5),
                (330, 200, 0.0)
            ]
        );
        assert_eq!(placed, Some(330));
        // cut inside the silence after it: the rest of that silence
        let (n, _) = chunks(1100);
        assert_eq!(n.last(), Some(&(1100, 100, 0.0)));
        // past the end: the replay ends as it would
        let (n, placed) = chunks(5000);
        assert_eq!(n.last().map(|c| c.0 + c.1 as u64), Some(1200));
        assert_eq!(placed, Some(1000));
    }

    #[test]
    fn missing_inputs_and_empty_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = replay_files(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no .wav files"), "{e}");
        let e = replay_files(&dir.path().join("nope.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.wav") && e.contains("no such file"), "{e}");
        std::fs::write(dir.path().join("bad.wav"), "RIFF????").unwrap();
        let mut r = Replay::new(replay_files(dir.path()).unwrap(), 8000, 160, 0, true);
        let e = r.next().unwrap_err().to_string();
        assert!(e.contains("bad.wav"), "{e}");
    }
}
