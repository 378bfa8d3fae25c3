//! Pseudo-terminals for `kubectl exec -t`.
//!
//! [`exec_in_tty`] starts a command in a running container as [`exec_in`](crate::exec_in)
//! does, but with the slave side of a new pseudo-terminal as its stdin, stdout and stderr
//! and as its controlling terminal: the command leads a new session and takes the terminal
//! with `TIOCSCTTY` between fork and exec, as `runc exec -t` does. In an isolated container
//! that happens in the exec helper's child, after the helper joined the container's
//! namespaces (so the command is the session leader inside the container's PID namespace).
//! The caller keeps only the master side: what the command writes is read there, what is
//! written there is the command's input, and [`set_window_size`] on it resizes the terminal
//! (the command gets `SIGWINCH`).

use crate::{EnvVar, ShimError, nsexec, sys};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A command started on a new terminal by [`exec_in_tty`].
#[derive(Debug)]
pub struct TtyExec {
    /// The process to wait for and to kill, as [`exec_in`](crate::exec_in) returns it: its
    /// exit code is the command's (128 + signal when a signal ended it).
    pub child: Child,
    /// The master side of the terminal, close-on-exec and non-blocking. Reads fail with
    /// `EIO` once no process holds the slave side any more.
    pub master: File,
}

/// Opens a new pseudo-terminal: `(master, slave)`, both close-on-exec (so no other child
/// inherits them) and blocking; neither becomes the caller's controlling terminal.
#[allow(unsafe_code)]
pub fn open_pty() -> io::Result<(File, File)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: posix_openpt takes integer flags and returns a new descriptor or -1.
    let fd = unsafe { libc::posix_openpt(flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by posix_openpt and is owned by nobody else.
    let master = unsafe { File::from_raw_fd(fd) };
    // SAFETY: grantpt and unlockpt take a descriptor we own and touch no memory of ours.
    if unsafe { libc::grantpt(master.as_raw_fd()) } != 0
        || unsafe { libc::unlockpt(master.as_raw_fd()) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // The slave through the master (no path lookup, Linux 4.13+), else by its name.
    // SAFETY: an ioctl with integer arguments on a descriptor we own; it returns a new
    // descriptor or -1.
    let peer = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let slave = if peer >= 0 {
        // SAFETY: `peer` was just returned by the ioctl and is owned by nobody else.
        unsafe { File::from_raw_fd(peer) }
    } else {
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: the buffer and its length are ours and valid for the call.
        let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        let path = std::ffi::OsStr::new(path.to_str().map_err(io::Error::other)?);
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)?
    };
    Ok((master, slave))
}

/// Sets the size of the terminal of `fd` (either side) to `cols` columns and `rows` rows
/// (`TIOCSWINSZ`); the terminal's foreground process group gets `SIGWINCH`.
#[allow(unsafe_code)]
pub fn set_window_size(fd: impl AsFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` that lives for the whole call.
    if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The size of the terminal of `fd`: `(columns, rows)` (`TIOCGWINSZ`).
#[allow(unsafe_code)]
pub fn window_size(fd: impl AsFd) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `winsize` that lives for the whole call.
    if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ws.ws_col, ws.ws_row))
}

/// Between fork and exec: makes the process the leader of a new session whose controlling
/// terminal is its stdin. Only syscalls, so it is sound in a child of a multi-threaded
/// process.
#[allow(unsafe_code)]
pub(crate) fn take_controlling_terminal() -> io::Result<()> {
    // SAFETY: setsid and an ioctl with integer arguments; no memory is touched.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts `cmd` with `slave` as its stdin, stdout, stderr and controlling terminal (in a
/// new session).
fn spawn_on_terminal(mut cmd: Command, slave: &File) -> io::Result<Child> {
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    sys::set_pre_exec(&mut cmd, take_controlling_terminal);
    cmd.spawn()
}

fn set_nonblocking(f: &File) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL)?);
    fcntl(f, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Runs `argv` in the container of the run whose state dir is `state_dir`, as
/// [`exec_in`](crate::exec_in) does, on a new terminal of `size` (columns, rows; the
/// terminal starts at 0x0 without one). The command's stdin, stdout and stderr are the
/// terminal, which is also its controlling terminal; its environment is the container's
/// plus `env`, and `TERM` is `xterm` unless set (as the kubelet's runtimes do).
///
/// An isolated container is entered through the exec helper
/// ([`set_exec_helper`](crate::set_exec_helper)); without one this fails (the fork-based
/// path of `exec_in` has no terminal support).
pub fn exec_in_tty(
    state_dir: &Path,
    argv: &[String],
    env: &[EnvVar],
    size: Option<(u16, u16)>,
) -> Result<TtyExec, ShimError> {
    let (state, mut full_env) = crate::control::exec_target(state_dir, argv, env)?;
    if !full_env.iter().any(|(k, _)| k == "TERM") {
        full_env.push(("TERM".into(), "xterm".into()));
    }

    let (master, slave) = open_pty().map_err(|e| ShimError::io("open a pseudo-terminal", e))?;
    if let Some((cols, rows)) = size {
        set_window_size(&master, cols, rows)
            .map_err(|e| ShimError::io("set the terminal size", e))?;
    }
    let child = if state.namespaces.is_empty() {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(full_env)
            .current_dir(&state.working_dir);
        spawn_on_terminal(cmd, &slave)
            .map_err(|e| ShimError::io(format!("exec {:?}", argv[0]), e))?
    } else {
        let helper = nsexec::exec_helper().ok_or_else(|| {
            ShimError::Config(
                "a terminal for exec in an isolated container needs the exec helper \
                 (set_exec_helper)"
                    .into(),
            )
        })?;
        let stdio = || {
            slave
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| ShimError::io("duplicate the terminal", e))
        };
        let stdio = (stdio()?, stdio()?, stdio()?);
        nsexec::spawn_helper(&helper, state_dir, &state, argv, full_env, stdio, true)?
    };
    // Only the command holds the slave now: the master reads EIO once it (and whatever it
    // left running on the terminal) is gone.
    drop(slave);
    set_nonblocking(&master).map_err(|e| ShimError::io("set the terminal non-blocking", e))?;
    Ok(TtyExec { child, master })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn read_until(master: &mut File, needle: &str) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&out).contains(needle) {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn window_size_round_trips() {
        let (master, slave) = open_pty().unwrap();
        set_window_size(&master, 123, 45).unwrap();
        assert_eq!(window_size(&slave).unwrap(), (123, 45));
        assert_eq!(window_size(&master).unwrap(), (123, 45));
    }

    #[test]
    fn command_gets_the_terminal_as_controlling_terminal() {
        let (mut master, slave) = open_pty().unwrap();
        set_window_size(&master, 91, 17).unwrap();
        let mut cmd = Command::new("/bin/sh");
        // `exec </dev/tty` only works with a controlling terminal.
        cmd.args([
            "-c",
            "test -t 0 && test -t 1 && echo IS_TTY; stty size; : </dev/tty && echo CTTY; read x; echo got=$x; exit 4",
        ]);
        let mut child = spawn_on_terminal(cmd, &slave).unwrap();
        drop(slave);
        let out = read_until(&mut master, "CTTY");
        assert!(out.contains("IS_TTY"), "{out}");
        assert!(out.contains("17 91"), "{out}");
        master.write_all(b"hello\n").unwrap();
        let out = read_until(&mut master, "got=hello");
        assert!(out.contains("got=hello"), "{out}");
        // Once the command is gone, the master reads EOF/EIO.
        let _ = read_until(&mut master, "\u{0}never");
        assert_eq!(child.wait().unwrap().code(), Some(4));
    }
}
