//! Container logs in the CRI format: `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <line>`.
//!
//! A line longer than [`MAX_LINE`] is cut into `P` (partial) records followed by a final `F`
//! record, as the kubelet expects. The file is rotated to `container.log.1` (one rotated file
//! kept) before a record would make it larger than the configured size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest line content written as one record; longer lines become partial records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// Formats a time like Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction
/// dropped, no fraction at all when it is zero), which is what CRI log readers parse.
pub fn rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike;
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// Writes CRI log records for both streams of one container into one file, with rotation.
pub struct CriLogWriter {
    path: PathBuf,
    rotated: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    pending: [Vec<u8>; 2],
}

impl CriLogWriter {
    /// Opens (appending) `path`; `max_bytes` is the rotation threshold.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        Ok(CriLogWriter {
            path: path.to_path_buf(),
            rotated: PathBuf::from(rotated),
            file,
            size,
            max_bytes,
            pending: [Vec::new(), Vec::new()],
        })
    }

    fn slot(stream: LogStream) -> usize {
        match stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        }
    }

    /// Feeds bytes read from a stream; complete lines are written at once.
    pub fn feed(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()> {
        let slot = Self::slot(stream);
        let mut buf = std::mem::take(&mut self.pending[slot]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line_end = start + pos;
            self.write_line(stream, &buf[start..line_end], true)?;
            start = line_end + 1;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.write_line(stream, &rest, false)?;
            rest = tail;
        }
        self.pending[slot] = rest;
        Ok(())
    }

    /// The stream ended: whatever is left is written as a final record.
    pub fn finish(&mut self, stream: LogStream) -> std::io::Result<()> {
        let slot = Self::slot(stream);
        let rest = std::mem::take(&mut self.pending[slot]);
        if !rest.is_empty() {
            self.write_line(stream, &rest, true)?;
        }
        Ok(())
    }

    fn write_line(&mut self, stream: LogStream, line: &[u8], full: bool) -> std::io::Result<()> {
        // A line longer than MAX_LINE that arrived in one piece is cut here too.
        if line.len() > MAX_LINE {
            let (head, tail) = line.split_at(MAX_LINE);
            self.write_line(stream, head, false)?;
            return self.write_line(stream, tail, full);
        }
        let mut record = Vec::with_capacity(line.len() + 48);
        record.extend_from_slice(rfc3339_nano(chrono::Utc::now()).as_bytes());
        record.push(b' ');
        record.extend_from_slice(stream.as_str().as_bytes());
        record.extend_from_slice(if full { b" F " } else { b" P " });
        record.extend_from_slice(line);
        record.push(b'\n');
        let len = record.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&record)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, &self.rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamp_like_go_rfc3339nano() {
        let t = chrono::Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        assert_eq!(rfc3339_nano(t), "2024-05-06T07:08:09Z");
        let t2 = t + chrono::Duration::nanoseconds(120_000_000);
        assert_eq!(rfc3339_nano(t2), "2024-05-06T07:08:09.12Z");
        let t3 = t + chrono::Duration::nanoseconds(1);
        assert_eq!(rfc3339_nano(t3), "2024-05-06T07:08:09.000000001Z");
        assert!(chrono::DateTime::parse_from_rfc3339(&rfc3339_nano(chrono::Utc::now())).is_ok());
    }

    fn records(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let ts = it.next().unwrap();
                assert!(
                    chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
                    "bad ts {ts}"
                );
                (
                    it.next().unwrap().to_string(),
                    it.next().unwrap().to_string(),
                    it.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_partials_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = CriLogWriter::open(&path, 1 << 30).unwrap();
        w.feed(LogStream::Stdout, b"hel").unwrap();
        w.feed(LogStream::Stderr, b"oops\n").unwrap();
        w.feed(LogStream::Stdout, b"lo\n\nworld").unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        w.feed(LogStream::Stderr, &long).unwrap();
        w.feed(LogStream::Stderr, b"\n").unwrap();
        w.finish(LogStream::Stdout).unwrap();
        w.finish(LogStream::Stderr).unwrap();
        let r = records(&path);
        let short: Vec<(&str, &str, usize)> = r
            .iter()
            .map(|(s, t, l)| (s.as_str(), t.as_str(), l.len()))
            .collect();
        assert_eq!(
            short,
            vec![
                ("stderr", "F", 4),
                ("stdout", "F", 5),
                ("stdout", "F", 0),
                ("stderr", "P", MAX_LINE),
                ("stderr", "F", 10),
                ("stdout", "F", 5),
            ]
        );
        assert_eq!(r[1].2, "hello");
        assert_eq!(r[5].2, "world");
    }

    #[test]
    fn rotation_keeps_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = CriLogWriter::open(&path, 300).unwrap();
        for i in 0..100 {
            w.feed(LogStream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let cur = std::fs::metadata(&path).unwrap().len();
        let old = std::fs::metadata(dir.path().join("c.log.1")).unwrap().len();
        assert!(cur <= 300 && old <= 300, "sizes {cur} {old}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
        let last = records(&path);
        assert_eq!(last.last().unwrap().2, "line 99");
    }
}
