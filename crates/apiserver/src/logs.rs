//! `pods/log`: the container's CRI-format log files (through [`PodIo`]), with `container`,
//! `tailLines`, `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`, `previous` and
//! `follow`. Without a [`PodIo`] (no pod processes), the log is empty.
//!
//! A CRI record is `<RFC3339Nano time> <stdout|stderr> <P|F> <payload>`; `P` (partial) records
//! are joined with the records that follow on the same stream up to the `F` record, and the
//! whole line carries the time of its first record. `follow` polls the file (a short interval,
//! no inotify), switches to the new file after a rotation, and ends when the run stops or the
//! client goes away.

use crate::http::AppState;
use crate::podio::{LogFiles, PodIo};
use crate::query::Query;
use crate::target::ResourceTarget;
use axum::body::{Body, Bytes};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http::{HeaderValue, header};
use serde_json::Value;
use slipway_core::ApiError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often a followed file is polled for new records.
const POLL: Duration = Duration::from_millis(50);
/// Every this many polls, [`PodIo::log_files`] is asked whether the run still runs.
const RUNNING_CHECK_EVERY: u32 = 4;

/// The names of a pod's containers (init containers first).
pub fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Checks the requested container against the pod, as the API server does, and returns the
/// container addressed (the only one when none is named).
pub fn choose_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let names = container_names(pod);
    match requested {
        Some(c) if !names.iter().any(|n| n == c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        Some(c) => Ok(Some(c.to_string())),
        None if names.len() > 1 => {
            let regular: Vec<String> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                regular.join(" ")
            )))
        }
        None => Ok(names.into_iter().next()),
    }
}

/// The pod's namespace, name and uid.
#[derive(Clone, Debug)]
pub struct PodIds {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

impl PodIds {
    /// The ids of a stored pod addressed by `t`.
    pub fn of(t: &ResourceTarget, pod: &Value) -> PodIds {
        PodIds {
            namespace: t.namespace.clone().unwrap_or_default(),
            name: t.name.clone().unwrap_or_default(),
            uid: pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }
    }
}

/// Formats a time like Go's `time.RFC3339Nano` in UTC (the fraction without trailing zeros),
/// as the kubelet prints `timestamps=true`.
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// The output stream of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// One parsed CRI record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriRecord<'a> {
    /// Its time.
    pub time: DateTime<Utc>,
    /// Its stream.
    pub stream: Stream,
    /// Whether the line continues in the next record of the stream (`P`).
    pub partial: bool,
    /// The content (without the newline).
    pub payload: &'a [u8],
}

/// Parses one CRI record (without its newline). `None` for a malformed line.
pub fn parse_cri(line: &[u8]) -> Option<CriRecord<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let tag = parts.next()?;
    let partial = tag.split(|&b| b == b':').next() == Some(b"P");
    Some(CriRecord {
        time,
        stream,
        partial,
        payload: parts.next().unwrap_or(b""),
    })
}

/// A complete log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The time of its first record.
    pub time: DateTime<Utc>,
    /// Its stream.
    pub stream: Stream,
    /// Its content, without the newline.
    pub content: Vec<u8>,
}

/// Turns bytes of a CRI file into complete lines: splits records, joins partial records.
#[derive(Default)]
pub struct Assembler {
    /// Bytes after the last newline read (a record being written).
    tail: Vec<u8>,
    /// The partial line of each stream (stdout, stderr).
    pending: [Option<LogLine>; 2],
}

impl Assembler {
    /// Feeds bytes read from a file; complete lines are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LogLine>) {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            if self.tail.is_empty() {
                self.record(&rest[..pos], out);
            } else {
                let mut line = std::mem::take(&mut self.tail);
                line.extend_from_slice(&rest[..pos]);
                self.record(&line, out);
            }
            rest = &rest[pos + 1..];
        }
        self.tail.extend_from_slice(rest);
    }

    /// The input ended: an unterminated record and unfinished partial lines are emitted.
    pub fn finish(&mut self, out: &mut Vec<LogLine>) {
        let tail = std::mem::take(&mut self.tail);
        if !tail.is_empty() {
            self.record(&tail, out);
        }
        let mut rest: Vec<LogLine> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by_key(|l| l.time);
        out.extend(rest);
    }

    fn record(&mut self, raw: &[u8], out: &mut Vec<LogLine>) {
        let Some(r) = parse_cri(raw) else { return };
        let slot = &mut self.pending[r.stream as usize];
        let line = match slot.take() {
            Some(mut line) => {
                line.content.extend_from_slice(r.payload);
                line
            }
            None => LogLine {
                time: r.time,
                stream: r.stream,
                content: r.payload.to_vec(),
            },
        };
        if r.partial {
            *slot = Some(line);
        } else {
            out.push(line);
        }
    }
}

/// The options of a log request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogOptions {
    /// Only lines at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only the last this many lines (of what exists when the request starts).
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Keep streaming.
    pub follow: bool,
    /// The previous run.
    pub previous: bool,
}

impl LogOptions {
    /// The options of a query, validated as the API server validates `PodLogOptions`.
    pub fn from_query(q: &Query, now: DateTime<Utc>) -> Result<LogOptions, ApiError> {
        let invalid = |m: &str| ApiError::bad_request(m.to_string());
        if q.since_seconds.is_some() && q.since_time.is_some() {
            return Err(invalid(
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        let since = match (&q.since_seconds, &q.since_time) {
            (Some(s), _) if *s < 1 => return Err(invalid("sinceSeconds: must be greater than 0")),
            (Some(s), _) => Some(now - chrono::Duration::seconds(*s)),
            (None, Some(t)) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "sinceTime: invalid value {t:?}: must be an RFC 3339 time"
                        ))
                    })?
                    .with_timezone(&Utc),
            ),
            (None, None) => None,
        };
        let tail = match q.tail_lines {
            Some(n) if n < 0 => {
                return Err(invalid("tailLines: must be greater than or equal to 0"));
            }
            Some(n) => Some(n as usize),
            None => None,
        };
        let limit_bytes = match q.limit_bytes {
            Some(n) if n < 1 => return Err(invalid("limitBytes: must be greater than 0")),
            Some(n) => Some(n as u64),
            None => None,
        };
        Ok(LogOptions {
            since,
            tail,
            timestamps: q.timestamps,
            limit_bytes,
            follow: q.follow && !q.previous,
            previous: q.previous,
        })
    }
}

/// Formats lines as the kubelet writes them, counting `limitBytes`.
struct Formatter {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    left: Option<u64>,
}

impl Formatter {
    fn new(o: &LogOptions) -> Formatter {
        Formatter {
            timestamps: o.timestamps,
            since: o.since,
            left: o.limit_bytes,
        }
    }

    fn wanted(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|s| line.time >= s)
    }

    fn done(&self) -> bool {
        self.left == Some(0)
    }

    /// Appends `line` to `out` (if it passes `since`), cut at `limitBytes`.
    fn write(&mut self, line: &LogLine, out: &mut Vec<u8>) {
        if !self.wanted(line) || self.done() {
            return;
        }
        let start = out.len();
        if self.timestamps {
            out.extend_from_slice(rfc3339_nano(line.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.content);
        out.push(b'\n');
        if let Some(left) = &mut self.left {
            let len = (out.len() - start) as u64;
            if len >= *left {
                out.truncate(start + *left as usize);
                *left = 0;
            } else {
                *left -= len;
            }
        }
    }
}

/// An open followed file.
struct Tail {
    file: File,
    ino: u64,
}

fn ino(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(meta)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

fn open_tail(path: &Path) -> Option<Tail> {
    let file = File::open(path).ok()?;
    let ino = ino(&file.metadata().ok()?);
    Some(Tail { file, ino })
}

fn read_to_end(file: &mut File, asm: &mut Assembler, out: &mut Vec<LogLine>) {
    let mut buf = Vec::new();
    if file.read_to_end(&mut buf).is_ok() && !buf.is_empty() {
        asm.feed(&buf, out);
    }
}

/// Reads what the files hold now: the rotated file, then the current one. Returns the lines
/// and the current file, open at its end (to follow it).
pub fn read_existing(files: &LogFiles, asm: &mut Assembler) -> (Vec<LogLine>, FollowPos) {
    let mut lines = Vec::new();
    // The current file is opened first: if a rotation happens meanwhile, the rotated file is
    // the one already open and is read once only.
    let mut current = open_tail(&files.current);
    if let Ok(rotated) = File::open(&files.rotated) {
        let same = match (&current, rotated.metadata()) {
            (Some(c), Ok(m)) => c.ino == ino(&m),
            _ => false,
        };
        if !same {
            let mut rotated = rotated;
            read_to_end(&mut rotated, asm, &mut lines);
        }
    }
    if let Some(c) = &mut current {
        read_to_end(&mut c.file, asm, &mut lines);
    }
    (lines, FollowPos { tail: current })
}

/// Where a follow stands: the open current file, if it existed.
pub struct FollowPos {
    tail: Option<Tail>,
}

impl FollowPos {
    /// Starts at the end of the files as they are now (attach: only new output).
    pub fn at_end(files: &LogFiles) -> FollowPos {
        let mut tail = open_tail(&files.current);
        if let Some(t) = &mut tail {
            let _ = t.file.seek(SeekFrom::End(0));
        }
        FollowPos { tail }
    }

    /// Reads what was appended, following a rotation to the new file.
    fn poll(&mut self, path: &Path, asm: &mut Assembler, out: &mut Vec<LogLine>) {
        if let Some(t) = &mut self.tail {
            read_to_end(&mut t.file, asm, out);
        }
        let now = std::fs::metadata(path).ok().map(|m| ino(&m));
        let rotated = match (&self.tail, now) {
            (Some(t), Some(n)) => t.ino != n,
            (None, Some(_)) => true,
            _ => false,
        };
        if rotated {
            // The old file was read to its end above; the writer no longer appends to it.
            self.tail = open_tail(path);
            if let Some(t) = &mut self.tail {
                read_to_end(&mut t.file, asm, out);
            }
        }
    }
}

/// Follows a run's log until the run stops (as [`PodIo::log_files`] reports) or `emit`
/// returns false (the client went away). `emit` is called after every poll, with the new lines
/// (possibly none). Blocking: run it on its own thread.
pub fn follow(
    pod_io: &dyn PodIo,
    ids: &PodIds,
    container: &str,
    files: &LogFiles,
    mut pos: FollowPos,
    mut asm: Assembler,
    emit: &mut dyn FnMut(Vec<LogLine>) -> bool,
) {
    let mut polls: u32 = 0;
    loop {
        let mut lines = Vec::new();
        pos.poll(&files.current, &mut asm, &mut lines);
        if !emit(lines) {
            return;
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(RUNNING_CHECK_EVERY) {
            let still = matches!(
                pod_io.log_files(&ids.namespace, &ids.name, &ids.uid, container, false),
                Ok(Some(f)) if f.running && f.current == files.current
            );
            if !still {
                // The writer has finished: read what is left, then end.
                let mut lines = Vec::new();
                pos.poll(&files.current, &mut asm, &mut lines);
                asm.finish(&mut lines);
                if !lines.is_empty() {
                    emit(lines);
                }
                return;
            }
        }
        std::thread::sleep(POLL);
    }
}

/// The files of the addressed run, or the error the kubelet gives when there is none.
pub fn find_files(
    pod_io: &dyn PodIo,
    ids: &PodIds,
    container: &str,
    previous: bool,
) -> Result<LogFiles, ApiError> {
    match pod_io.log_files(&ids.namespace, &ids.name, &ids.uid, container, previous)? {
        Some(f) => Ok(f),
        None if previous => Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{}\" not found",
            ids.name
        ))),
        None => Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{}\" is waiting to start: ContainerCreating",
            ids.name
        ))),
    }
}

fn text_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Renders lines that exist now, with `tailLines` applied.
fn render_initial(lines: &[LogLine], opts: &LogOptions, fmt: &mut Formatter) -> Vec<u8> {
    let wanted: Vec<&LogLine> = lines.iter().filter(|l| fmt.wanted(l)).collect();
    let skip = opts.tail.map_or(0, |n| wanted.len().saturating_sub(n));
    let mut out = Vec::new();
    for l in &wanted[skip..] {
        fmt.write(l, &mut out);
    }
    out
}

/// The last `tail_lines` lines of the current (or last) run of `container`, as
/// `pods/log?tailLines=` returns them. Blocking.
pub fn read_tail(
    pod_io: &dyn PodIo,
    ids: &PodIds,
    container: &str,
    tail_lines: usize,
) -> Result<String, ApiError> {
    let files = find_files(pod_io, ids, container, false)?;
    let mut asm = Assembler::default();
    let (mut lines, _) = read_existing(&files, &mut asm);
    asm.finish(&mut lines);
    let opts = LogOptions {
        tail: Some(tail_lines),
        ..LogOptions::default()
    };
    let mut fmt = Formatter::new(&opts);
    let text = render_initial(&lines, &opts, &mut fmt);
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Serves a pod's log, checking the container name as the API server does.
pub async fn serve(
    state: &Arc<AppState>,
    t: &ResourceTarget,
    q: &Query,
) -> Result<Response, ApiError> {
    let pod = state.rest.get(t)?;
    let pod_name = t.name.as_deref().unwrap_or("");
    let container = choose_container(&pod, pod_name, q.container.as_deref())?;
    let opts = LogOptions::from_query(q, Utc::now())?;
    let (Some(pod_io), Some(container)) = (state.pod_io.clone(), container) else {
        return Ok(text_response(Body::from(Bytes::new())));
    };
    let ids = PodIds::of(t, &pod);
    let (first, follow_state) = {
        let pod_io = pod_io.clone();
        let (ids, container, opts) = (ids.clone(), container.clone(), opts.clone());
        tokio::task::spawn_blocking(move || {
            let files = find_files(pod_io.as_ref(), &ids, &container, opts.previous)?;
            let mut asm = Assembler::default();
            let (mut lines, pos) = read_existing(&files, &mut asm);
            let mut fmt = Formatter::new(&opts);
            if !opts.follow {
                asm.finish(&mut lines);
                return Ok((render_initial(&lines, &opts, &mut fmt), None));
            }
            let out = render_initial(&lines, &opts, &mut fmt);
            Ok((out, Some((files, pos, asm, fmt))))
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading the log failed: {e}")))??
    };
    let Some((files, pos, asm, mut fmt)) = follow_state else {
        return Ok(text_response(Body::from(first)));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let done = fmt.done();
    if !first.is_empty() {
        let _ = tx.try_send(Ok(Bytes::from(first)));
    }
    if !done {
        std::thread::Builder::new()
            .name("pod-log-follow".into())
            .spawn(move || {
                let mut emit = |lines: Vec<LogLine>| {
                    if tx.is_closed() {
                        return false;
                    }
                    let mut out = Vec::new();
                    for l in &lines {
                        fmt.write(l, &mut out);
                    }
                    if !out.is_empty() && tx.blocking_send(Ok(Bytes::from(out))).is_err() {
                        return false;
                    }
                    !fmt.done()
                };
                follow(
                    pod_io.as_ref(),
                    &ids,
                    &container,
                    &files,
                    pos,
                    asm,
                    &mut emit,
                );
            })
            .map_err(|e| ApiError::internal(format!("starting the log follower: {e}")))?;
    }
    Ok(text_response(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<LogLine> {
        let mut asm = Assembler::default();
        let mut out = Vec::new();
        asm.feed(text.as_bytes(), &mut out);
        asm.finish(&mut out);
        out
    }

    #[test]
    fn parses_records_and_joins_partials() {
        let text = "2024-05-06T07:08:09.5Z stdout P hel\n\
                    2024-05-06T07:08:10Z stderr F oops\n\
                    2024-05-06T07:08:11Z stdout F lo world\n\
                    2024-05-06T07:08:12Z stdout F \n\
                    garbage\n\
                    2024-05-06T07:08:13Z stdout F last";
        let l = lines_of(text);
        let got: Vec<(Stream, String)> = l
            .iter()
            .map(|l| (l.stream, String::from_utf8_lossy(&l.content).into_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops".into()),
                (Stream::Stdout, "hello world".into()),
                (Stream::Stdout, "".into()),
                (Stream::Stdout, "last".into()),
            ]
        );
        assert_eq!(rfc3339_nano(l[1].time), "2024-05-06T07:08:09.5Z");
    }

    #[test]
    fn feeding_in_pieces_gives_the_same_lines() {
        let text = "2024-05-06T07:08:09Z stdout P ab\n2024-05-06T07:08:10Z stdout F cd\n2024-05-06T07:08:11Z stderr F e\n";
        let whole = lines_of(text);
        let mut asm = Assembler::default();
        let mut out = Vec::new();
        for b in text.as_bytes().chunks(3) {
            asm.feed(b, &mut out);
        }
        asm.finish(&mut out);
        assert_eq!(out, whole);
    }

    #[test]
    fn options_filter_tail_limit_and_timestamps() {
        let text = "2024-05-06T07:00:00Z stdout F one\n\
                    2024-05-06T08:00:00Z stdout F two\n\
                    2024-05-06T09:00:00.123Z stdout F three\n";
        let lines = lines_of(text);
        let render = |q: &str| {
            let q = Query::parse(Some(q)).unwrap();
            let now = DateTime::parse_from_rfc3339("2024-05-06T09:30:00Z")
                .unwrap()
                .with_timezone(&Utc);
            let o = LogOptions::from_query(&q, now).unwrap();
            let mut f = Formatter::new(&o);
            String::from_utf8(render_initial(&lines, &o, &mut f)).unwrap()
        };
        assert_eq!(render(""), "one\ntwo\nthree\n");
        assert_eq!(render("tailLines=2"), "two\nthree\n");
        assert_eq!(render("tailLines=0"), "");
        assert_eq!(render("sinceSeconds=3600"), "three\n");
        assert_eq!(render("sinceTime=2024-05-06T08:00:00Z"), "two\nthree\n");
        assert_eq!(render("limitBytes=6"), "one\ntw");
        assert_eq!(
            render("timestamps=true&tailLines=1"),
            "2024-05-06T09:00:00.123Z three\n"
        );
        let bad = |q: &str| {
            LogOptions::from_query(&Query::parse(Some(q)).unwrap(), Utc::now()).unwrap_err()
        };
        assert_eq!(bad("sinceSeconds=0").code, 400);
        assert_eq!(bad("limitBytes=0").code, 400);
        assert_eq!(bad("tailLines=-1").code, 400);
        assert_eq!(
            bad("sinceSeconds=5&sinceTime=2024-05-06T08:00:00Z").code,
            400
        );
    }
}
