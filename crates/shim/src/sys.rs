//! The few operations that need `unsafe`: forking, pre-exec hooks, an ioctl and a raw
//! syscall. Everything else goes through `nix`'s safe wrappers.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Result of [`fork_process`].
pub(crate) enum Forked {
    Parent { child: i32 },
    Child,
}

/// Forks the calling process.
///
/// Callers must ensure the process is single-threaded (see
/// [`current_thread_count`]): the child only has the calling thread.
#[allow(unsafe_code)]
pub(crate) fn fork_process() -> io::Result<Forked> {
    // SAFETY: the only caller (`run_shim`) checks that the process has exactly one thread
    // before calling, so no lock (allocator, stdio) can be held by another thread in the
    // child, and the child may run ordinary Rust code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Ends a forked helper process at once, without running exit handlers or unwinding
/// (which belong to the process it was forked from).
#[allow(unsafe_code)]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer and never returns; skipping exit handlers is the
    // point (they belong to the shim this helper was forked from).
    unsafe { libc::_exit(code) }
}

/// Number of threads of the calling process (from `/proc/self/status`).
pub(crate) fn current_thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Registers `hook` to run in the child between fork and exec.
///
/// The hook must only do what is sound in a forked child of the process that spawns: in
/// the shim (single-threaded) that is anything; in the agent (multi-threaded) the hook must
/// not allocate or take locks.
#[allow(unsafe_code)]
pub(crate) fn set_pre_exec<F>(cmd: &mut Command, hook: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: see the contract above; both hooks in this crate follow it (the container hook
    // runs in the single-threaded shim; the exec hook only makes syscalls on data prepared
    // before the fork).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Inside a pre-exec hook: forks once more so that a PID namespace joined with `setns`
/// applies. The grandchild returns `Ok(())` (and goes on to exec); the intermediate child
/// waits for it and exits with its status (128 + signal when a signal ended it). The
/// grandchild is killed if the intermediate dies (so killing the handle's process kills
/// the exec'd command).
///
/// Only syscalls: no allocation, so it is sound in a child of a multi-threaded process.
#[allow(unsafe_code)]
pub(crate) fn fork_into_joined_pid_namespace() -> io::Result<()> {
    // SAFETY: called from a pre-exec hook in a freshly forked (single-threaded) child; both
    // sides only make async-signal-safe syscalls until exec or _exit.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // Grandchild: die with the intermediate.
            // SAFETY: prctl with integer arguments has no memory effects.
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
            }
            Ok(())
        }
        child => {
            // Intermediate: close every descriptor (std's error-report pipe and the stdio
            // ends) so readers see EOF when the grandchild ends, then mirror its status.
            // SAFETY: raw syscalls on integers and a local status word; _exit never returns.
            unsafe {
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                let mut status: libc::c_int = 0;
                loop {
                    let r = libc::waitpid(child, &mut status, 0);
                    if r == child {
                        break;
                    }
                    if r == -1 && *libc::__errno_location() != libc::EINTR {
                        libc::_exit(127);
                    }
                }
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
                libc::_exit(127)
            }
        }
    }
}

/// A pidfd for `pid` (`pidfd_open(2)`): it becomes readable when the process ends, without
/// reaping it.
#[allow(unsafe_code)]
pub(crate) fn pidfd_open(pid: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a raw syscall with integer arguments; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by pidfd_open(2) and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Start time of a process (field 22 of `/proc/<pid>/stat`), or None if it does not exist.
/// Used with the PID to recognise a process despite PID reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    // `after` starts at field 3 (state); start time is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// State letter of a process (`R`, `S`, `Z`, ...), or None if it does not exist.
pub(crate) fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.chars().next()
}

/// Parent PID of a process.
pub(crate) fn process_parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// True when `pid` is a live (not zombie) process started at `start_time`.
pub fn is_same_live_process(pid: i32, start_time: u64) -> bool {
    pid > 0
        && process_start_time(pid) == Some(start_time)
        && !matches!(process_state(pid), Some('Z') | Some('X') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert!(is_same_live_process(me, process_start_time(me).unwrap()));
        assert!(!is_same_live_process(
            me,
            process_start_time(me).unwrap() + 1
        ));
        assert_eq!(process_parent(me), Some(nix::unistd::getppid().as_raw()));
        assert!(current_thread_count().unwrap() >= 1);
    }
}
