//! The attach socket of a container run (`<state dir>/attach.sock`), for `kubectl attach -i`
//! and `-t`. The shim listens on it while the container runs, when the container keeps its
//! stdin open (`stdin: true`) or runs on a terminal (`tty: true`).
//!
//! Protocol. A client (the agent, for an attach session) sends frames: one byte of kind, a
//! little-endian `u32` length, then the payload:
//! - [`STDIN`]: bytes for the container's stdin;
//! - [`RESIZE`]: the terminal's new size, columns then rows, each a little-endian `u16`;
//! - [`CLOSE_STDIN`]: the client's stdin ended.
//!
//! With a terminal the shim sends the client every byte the container writes to it, raw, as
//! it comes; without one it sends nothing (the output is read from the log). The shim closes
//! every connection when the container has exited.
//!
//! With `stdinOnce`, the container's stdin is closed (end of file; on a terminal, an EOT
//! character) when the first session that used it ends.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// A terminal size: columns, rows (`u16` little-endian each).
pub const RESIZE: u8 = 1;
/// The client's stdin ended.
pub const CLOSE_STDIN: u8 = 2;

/// The largest frame payload a client may send.
const MAX_FRAME: usize = 1 << 20;
/// The most stdin bytes the shim holds while the container does not read them; a client is
/// not read further until they are taken.
const MAX_PENDING: usize = 1 << 20;

/// One frame from a client to the shim.
pub fn encode_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A frame read from a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    kind: u8,
    payload: &'a [u8],
    /// Bytes of the buffer the frame took.
    taken: usize,
}

/// A frame longer than the protocol allows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameTooLong;

/// The complete frame at the start of `buf`, if there is one yet.
pub(crate) fn take_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameTooLong> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameTooLong);
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    Ok(Some(Frame {
        kind: buf[0],
        payload: &buf[5..5 + len],
        taken: 5 + len,
    }))
}

struct Client {
    stream: UnixStream,
    /// Received bytes not yet a whole frame.
    inbuf: Vec<u8>,
    /// This session sent stdin (or its end): with `stdinOnce`, its end closes stdin.
    used_stdin: bool,
}

/// The shim's side: the listener, the sessions, and the container's input.
pub(crate) struct AttachServer {
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Client>,
    /// Where stdin goes: the stdin pipe, or the terminal's master side. `None` once closed.
    input: Option<File>,
    /// Stdin bytes the container has not taken yet.
    pending: Vec<u8>,
    terminal: bool,
    stdin_once: bool,
    /// Stdin is to be closed once `pending` is delivered.
    closing: bool,
}

/// What one poll round needs watched, in the order [`AttachServer::poll_fds`] lists them.
pub(crate) enum Watched {
    Listener,
    Input,
    Client(usize),
}

impl AttachServer {
    /// Listens on `dir/attach.sock`. `input` is where stdin goes (`None`: nowhere, the
    /// container's stdin is not kept open); `terminal` says whether output is sent to the
    /// sessions.
    pub fn listen(
        dir: &Path,
        input: Option<File>,
        terminal: bool,
        stdin_once: bool,
    ) -> std::io::Result<AttachServer> {
        let path = dir.join(crate::files::ATTACH);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        if let Some(f) = &input {
            set_nonblocking(f)?;
        }
        Ok(AttachServer {
            path,
            listener,
            clients: Vec::new(),
            input,
            pending: Vec::new(),
            terminal,
            stdin_once,
            closing: false,
        })
    }

    /// The descriptors to poll and what each one is, with the events wanted.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, Watched, bool)> {
        // (fd, what, wants POLLOUT rather than POLLIN)
        let mut out = vec![(self.listener.as_fd(), Watched::Listener, false)];
        if let (Some(input), false) = (&self.input, self.pending.is_empty()) {
            out.push((input.as_fd(), Watched::Input, true));
        }
        // Clients are not read while the container has stdin bytes to take.
        if self.pending.len() < MAX_PENDING {
            for (i, c) in self.clients.iter().enumerate() {
                out.push((c.stream.as_fd(), Watched::Client(i), false));
            }
        }
        out
    }

    /// Handles readiness of the watched descriptors (`ready[i]` for `watched[i]`). Returns a
    /// terminal size to apply, if a session sent one.
    pub fn on_ready(&mut self, ready: &[Watched]) -> Option<(u16, u16)> {
        let mut resize = None;
        let mut gone = Vec::new();
        for w in ready {
            match w {
                Watched::Listener => self.accept(),
                Watched::Input => self.flush_input(),
                Watched::Client(i) => match self.read_client(*i) {
                    Ok(size) => resize = size.or(resize),
                    Err(()) => gone.push(*i),
                },
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            let client = self.clients.remove(i);
            if client.used_stdin {
                self.session_ended();
            }
        }
        resize
    }

    /// Sends terminal output to every session; a session that cannot take it is dropped.
    pub fn broadcast(&mut self, data: &[u8]) {
        if !self.terminal {
            return;
        }
        let mut gone = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if write_fully(&mut c.stream, data).is_err() {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            let client = self.clients.remove(i);
            if client.used_stdin {
                self.session_ended();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream,
                            inbuf: Vec::new(),
                            used_stdin: false,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Reads what a session sent; `Err` when it has gone (or broke the protocol).
    fn read_client(&mut self, i: usize) -> Result<Option<(u16, u16)>, ()> {
        let mut buf = [0u8; 16 * 1024];
        let client = &mut self.clients[i];
        let n = match client.stream.read(&mut buf) {
            Ok(0) => return Err(()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                return Ok(None);
            }
            Err(_) => return Err(()),
        };
        client.inbuf.extend_from_slice(&buf[..n]);
        let mut resize = None;
        let mut taken = 0;
        let mut stdin = Vec::new();
        let mut close = false;
        loop {
            match take_frame(&client.inbuf[taken..]) {
                Err(FrameTooLong) => return Err(()),
                Ok(None) => break,
                Ok(Some(Frame {
                    kind,
                    payload,
                    taken: len,
                })) => {
                    match kind {
                        STDIN => {
                            client.used_stdin = true;
                            stdin.extend_from_slice(payload);
                        }
                        RESIZE if payload.len() == 4 => {
                            let cols = u16::from_le_bytes([payload[0], payload[1]]);
                            let rows = u16::from_le_bytes([payload[2], payload[3]]);
                            resize = Some((cols, rows));
                        }
                        CLOSE_STDIN => {
                            client.used_stdin = true;
                            close = true;
                        }
                        _ => return Err(()),
                    }
                    taken += len;
                }
            }
        }
        client.inbuf.drain(..taken);
        if self.input.is_some() {
            self.pending.extend_from_slice(&stdin);
            self.flush_input();
        }
        if close {
            // The client's stdin ended: end the container's stdin too when it is to be closed
            // after one session (else a later attach may still write to it).
            self.clients[i].used_stdin = false;
            self.session_ended();
        }
        Ok(resize)
    }

    /// Writes pending stdin bytes as far as the container takes them.
    fn flush_input(&mut self) {
        let Some(input) = &mut self.input else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match input.write(&self.pending) {
                Ok(0) => break,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The container closed its stdin: nothing more can go there.
                    self.pending.clear();
                    self.input = None;
                    return;
                }
            }
        }
        if self.pending.is_empty() && self.closing {
            self.close_input();
        }
    }

    /// A session that used stdin ended: with `stdinOnce`, stdin is closed (once what it
    /// sent has been delivered).
    fn session_ended(&mut self) {
        if self.stdin_once {
            self.closing = true;
            self.flush_input();
        }
    }

    fn close_input(&mut self) {
        if self.terminal {
            // A terminal stays open (it is also the output): an EOT ends the reader's input,
            // as ^D typed at the start of a line does.
            if let Some(input) = &mut self.input {
                let _ = input.write(&[0x04]);
            }
            self.stdin_once = false;
            self.closing = false;
            return;
        }
        self.input = None;
        self.closing = false;
    }
}

impl Drop for AttachServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes all of `data` to a non-blocking socket, waiting (at most a second in all) while
/// its buffer is full.
fn write_fully(stream: &mut UnixStream, mut data: &[u8]) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(e);
                }
                let mut fds = [nix::poll::PollFd::new(
                    stream.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn set_nonblocking(f: &File) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(f, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(f, FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_frames() {
        let mut buf = encode_frame(STDIN, b"hello");
        buf.extend(encode_frame(RESIZE, &[80, 0, 24, 0]));
        let first = take_frame(&buf).unwrap().unwrap();
        assert_eq!(
            first,
            Frame {
                kind: STDIN,
                payload: b"hello",
                taken: 10
            }
        );
        let second = take_frame(&buf[first.taken..]).unwrap().unwrap();
        assert_eq!(
            (second.kind, second.payload),
            (RESIZE, &[80u8, 0, 24, 0][..])
        );
        assert_eq!(take_frame(&buf[..7]).unwrap(), None);
        assert_eq!(take_frame(&[]).unwrap(), None);
        let mut huge = vec![STDIN];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(take_frame(&huge), Err(FrameTooLong));
    }
}
