//! The benchmark's events: one clean scenario (no faults, default schema mix) sized to the
//! requested count, generated once into a temporary file before anything is timed so that the
//! Kafka producer and the COPY loaders read exactly the same bytes without holding them in
//! memory. The embedded path regenerates the same scenario (the generator is deterministic).
//!
//! File format, per event: key length (u32 LE), key, producer timestamp in ms (i64 LE),
//! payload length (u32 LE), payload.

use super::progress::Progress;
use anyhow::Context;
use chrono::{DateTime, Utc};
use heal_generator::{Generator, Scenario};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Seed of the benchmark scenario.
pub const SEED: u64 = 20_240_601;
/// Simulated days the events are spread over.
pub const DAYS: f64 = 7.0;

/// The clean scenario whose volume is about `events`: `DAYS` simulated days ending at the
/// start of the current UTC day (recent timestamps, so no broker expires them by age).
pub fn scenario(events: u64) -> Scenario {
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let start: DateTime<Utc> = today - chrono::Duration::days(DAYS as i64);
    Scenario::clean("bench-ingest", SEED, start, DAYS, events as f64 / DAYS)
}

/// One stored event.
pub struct StoredEvent {
    pub key: Vec<u8>,
    pub produced_at_ms: i64,
    pub payload: Vec<u8>,
}

/// The generated events on disk; the file is removed on drop.
pub struct EventFile {
    path: PathBuf,
    pub events: u64,
    pub payload_bytes: u64,
    /// Time to generate and write them.
    pub generate_secs: f64,
}

impl EventFile {
    /// Generates every event of `scenario` into `path` (blocking: call from a blocking task).
    pub fn generate(
        scenario: &Scenario,
        path: &Path,
        mut progress: Progress,
    ) -> anyhow::Result<EventFile> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        // From here on, dropping `stored` removes the file, also on error.
        let mut stored = EventFile {
            path: path.to_path_buf(),
            events: 0,
            payload_bytes: 0,
            generate_secs: 0.0,
        };
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let started = Instant::now();
        let mut generator = Generator::new(scenario);
        let expected = generator.expected_events();
        let mut next_report = 10_000;
        for ev in generator.by_ref() {
            out.write_all(&(ev.key.len() as u32).to_le_bytes())?;
            out.write_all(ev.key.as_bytes())?;
            out.write_all(&ev.produced_at.timestamp_millis().to_le_bytes())?;
            out.write_all(&(ev.payload.len() as u32).to_le_bytes())?;
            out.write_all(&ev.payload)?;
            stored.events += 1;
            stored.payload_bytes += ev.payload.len() as u64;
            if stored.events >= next_report {
                next_report += 10_000;
                progress.set(stored.events, expected);
            }
        }
        out.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        stored.generate_secs = started.elapsed().as_secs_f64();
        progress.finish();
        Ok(stored)
    }

    pub fn reader(&self) -> anyhow::Result<EventReader> {
        let file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        Ok(EventReader {
            inner: BufReader::with_capacity(1 << 20, file),
        })
    }
}

impl Drop for EventFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads an [`EventFile`] front to back.
pub struct EventReader {
    inner: BufReader<File>,
}

impl EventReader {
    /// The next event, or `None` at the end of the file.
    pub fn next_event(&mut self) -> io::Result<Option<StoredEvent>> {
        let mut len = [0u8; 4];
        match self.inner.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        self.inner.read_exact(&mut key)?;
        let mut ts = [0u8; 8];
        self.inner.read_exact(&mut ts)?;
        self.inner.read_exact(&mut len)?;
        let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
        self.inner.read_exact(&mut payload)?;
        Ok(Some(StoredEvent {
            key,
            produced_at_ms: i64::from_le_bytes(ts),
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_generated_events() {
        let scenario = scenario(700);
        let dir = std::env::temp_dir().join(format!("heal-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events");
        let file = EventFile::generate(&scenario, &path, Progress::new("test", 0)).unwrap();
        assert!(file.events > 300 && file.events < 1400, "{}", file.events);
        let mut reader = file.reader().unwrap();
        let expected: Vec<_> = Generator::new(&scenario).collect();
        for ev in &expected {
            let stored = reader.next_event().unwrap().unwrap();
            assert_eq!(stored.key, ev.key.as_bytes());
            assert_eq!(stored.payload, ev.payload);
            assert_eq!(stored.produced_at_ms, ev.produced_at.timestamp_millis());
        }
        assert!(reader.next_event().unwrap().is_none());
        assert_eq!(expected.len() as u64, file.events);
        drop(file);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
