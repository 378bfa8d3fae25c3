//! Sockets inside another process's network namespace.
//!
//! A [`NetnsHandle`] is a dedicated thread that joins the network namespace of one process
//! (`setns` on `/proc/<pid>/ns/net`, which affects only that thread) and creates sockets
//! there on request: TCP connections (`connect`) and listeners (`listen`). A socket belongs
//! to the namespace it was created in, so it works from any thread afterwards: probes, the
//! pod-IP forwarders and the service proxy use it like any other tokio socket. The thread
//! ends when the last handle is dropped.
//!
//! A handle on our own namespace (`NetnsHandle::start(std::process::id())`) behaves as
//! plain host sockets, which is what plain-process pods (no isolation) need.
//!
//! A pod's network namespace is *pinned*: [`create_pinned`] makes a namespace with `lo` up
//! and bind-mounts its nsfs file on a path (as `ip netns add` does), so it outlives every
//! process in it. The pod's containers join it, and so share `localhost` and the ports, as on
//! Kubernetes; [`remove_pinned`] unmounts it when the pod goes.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a connect inside the namespace may take (loopback: refused or accepted at
/// once, unless the listener's backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

enum Request {
    Connect(SocketAddr, oneshot::Sender<io::Result<TcpStream>>),
    Listen(SocketAddr, oneshot::Sender<io::Result<TcpListener>>),
}

/// A handle on the socket thread of one network namespace.
#[derive(Clone, Debug)]
pub struct NetnsHandle {
    tx: mpsc::Sender<Request>,
    pid: i32,
}

/// The former name, kept for the agent's probes and forwarders.
pub type NetnsDialer = NetnsHandle;

impl NetnsHandle {
    /// Starts a socket thread in the network namespace of process `pid`.
    pub fn start(pid: i32) -> io::Result<NetnsHandle> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        Self::start_in(ns, pid, format!("netns-{pid}"))
    }

    /// Starts a socket thread in the namespace pinned at `path` (see [`create_pinned`]).
    /// [`NetnsHandle::pid`] is then 0.
    pub fn start_pinned(path: &Path) -> io::Result<NetnsHandle> {
        if !is_pinned(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a pinned network namespace", path.display()),
            ));
        }
        let ns = std::fs::File::open(path)?;
        Self::start_in(ns, 0, "netns-pinned".into())
    }

    fn start_in(ns: std::fs::File, pid: i32, thread: String) -> io::Result<NetnsHandle> {
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        std::thread::Builder::new().name(thread).spawn(move || {
            if let Err(e) = setns(&ns, CloneFlags::CLONE_NEWNET) {
                let _ = ready_tx.send(Err(io::Error::from(e)));
                return;
            }
            drop(ns);
            let _ = ready_tx.send(Ok(()));
            for request in rx {
                match request {
                    Request::Connect(addr, reply) => {
                        let _ = reply.send(TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT));
                    }
                    Request::Listen(addr, reply) => {
                        let _ = reply.send(TcpListener::bind(addr));
                    }
                }
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the netns socket thread ended early"))??;
        Ok(NetnsHandle { tx, pid })
    }

    /// The process whose namespace this handle joined.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Connects to `127.0.0.1:port` inside the namespace.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        self.connect_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }

    /// Connects to `addr` inside the namespace.
    pub async fn connect_addr(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Connect(addr, reply))?;
        let stream = rx.await.map_err(|_| ended())??;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }

    /// Binds a TCP listener on `addr` inside the namespace (any 127.0.0.0/8 address is
    /// local on a namespace's `lo`).
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Listen(addr, reply))?;
        let listener = rx.await.map_err(|_| ended())??;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    }

    fn send(&self, request: Request) -> io::Result<()> {
        self.tx.send(request).map_err(|_| ended())
    }
}

fn ended() -> io::Error {
    io::Error::other("the netns socket thread has ended")
}

/// Whether `path` is a pinned network namespace (an nsfs bind mount).
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Creates a network namespace with `lo` up and pins it at `path` (an empty file is
/// created there and the namespace bind-mounted on it). Idempotent: a namespace already
/// pinned at `path` is kept. Needs CAP_SYS_ADMIN. Done on a short-lived thread, since
/// `unshare(CLONE_NEWNET)` moves only the calling thread.
pub fn create_pinned(path: &Path) -> io::Result<()> {
    if is_pinned(path) {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let target = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            loopback_up()?;
            let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            mount(
                Some(own.as_str()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })?
        .join()
        .map_err(|_| io::Error::other("the netns thread panicked"))?
}

/// Unpins the namespace at `path` (lazily: processes still in it keep it) and removes the
/// file. Nothing to do when `path` does not exist.
pub fn remove_pinned(path: &Path) -> io::Result<()> {
    if is_pinned(path) {
        umount2(path, MntFlags::MNT_DETACH)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Brings the loopback interface up in the calling thread's network namespace
/// (`SIOCGIFFLAGS` / `SIOCSIFFLAGS` on a datagram socket; no `ip` binary needed).
#[allow(unsafe_code)]
pub fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2) call; the descriptor is owned (and closed) by `OwnedFd`.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is not owned elsewhere.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags member of the `ifreq` we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the active union member is `ifru_flags`.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handle_in_our_own_namespace_connects_and_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = NetnsHandle::start(std::process::id() as i32).unwrap();
        let s = d.connect(port).await.unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
        let l = d.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        assert!(client.is_ok() && accepted.is_ok());
        assert!(NetnsHandle::start(i32::MAX).is_err());
    }

    #[tokio::test]
    async fn a_pinned_namespace_outlives_its_creator_and_is_shared() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: pinning a network namespace needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns");
        assert!(!is_pinned(&path));
        create_pinned(&path).unwrap();
        assert!(is_pinned(&path));
        create_pinned(&path).unwrap(); // idempotent
        // Two handles in the namespace see each other's listeners on 127.0.0.1 (lo is up),
        // and the host does not.
        let a = NetnsHandle::start_pinned(&path).unwrap();
        let b = NetnsHandle::start_pinned(&path).unwrap();
        let l = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (client, accepted) = tokio::join!(b.connect(port), l.accept());
        assert!(client.is_ok() && accepted.is_ok());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        drop((a, b, l));
        remove_pinned(&path).unwrap();
        assert!(!path.exists());
        remove_pinned(&path).unwrap();
        assert!(NetnsHandle::start_pinned(&path).is_err());
    }
}
