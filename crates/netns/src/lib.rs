//! Sockets inside another process's network namespace.
//!
//! A [`NetnsHandle`] holds an open descriptor of one network namespace (of a process,
//! `/proc/<pid>/ns/net`, or a pinned one) and creates TCP sockets in it: connections
//! (`connect`) and listeners (`listen`). Only the creation of a socket needs the namespace
//! (a socket belongs to the namespace it was created in); connecting, binding and all I/O
//! then happen on tokio like any other socket. One process-wide thread creates the sockets:
//! it `setns`es into the requested namespace (which affects only that thread), calls
//! `socket(2)`, and goes back to its own namespace. So a handle costs a descriptor, not a
//! thread, and a thousand pods need no thousand threads.
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
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a connect inside the namespace may take (loopback: refused or accepted at
/// once, unless the listener's backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The backlog of listeners made by [`NetnsHandle::listen`] (as `std`'s `TcpListener`).
const LISTEN_BACKLOG: u32 = 128;

/// A request to the socket thread: a TCP socket (non-blocking, close-on-exec) created in
/// the namespace `ns`.
struct Request {
    ns: Arc<File>,
    reply: oneshot::Sender<io::Result<OwnedFd>>,
}

/// A handle on one network namespace.
#[derive(Clone, Debug)]
pub struct NetnsHandle {
    ns: Arc<File>,
    pid: i32,
}

/// The former name, kept for the agent's probes and forwarders.
pub type NetnsDialer = NetnsHandle;

impl NetnsHandle {
    /// A handle on the network namespace of process `pid`.
    pub fn start(pid: i32) -> io::Result<NetnsHandle> {
        let ns = File::open(format!("/proc/{pid}/ns/net"))?;
        Ok(NetnsHandle {
            ns: Arc::new(ns),
            pid,
        })
    }

    /// A handle on the namespace pinned at `path` (see [`create_pinned`]).
    /// [`NetnsHandle::pid`] is then 0.
    pub fn start_pinned(path: &Path) -> io::Result<NetnsHandle> {
        if !is_pinned(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a pinned network namespace", path.display()),
            ));
        }
        Ok(NetnsHandle {
            ns: Arc::new(File::open(path)?),
            pid: 0,
        })
    }

    /// The process whose namespace this handle joined (0 for a pinned namespace).
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
        let socket = self.socket().await?;
        tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} in the namespace timed out"),
                )
            })?
    }

    /// Binds a TCP listener on `addr` inside the namespace (any 127.0.0.0/8 address is
    /// local on a namespace's `lo`).
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let socket = self.socket().await?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    }

    /// A TCP socket created in the namespace.
    async fn socket(&self) -> io::Result<tokio::net::TcpSocket> {
        let (reply, rx) = oneshot::channel();
        socket_thread()?
            .lock()
            .map_err(|_| ended())?
            .send(Request {
                ns: self.ns.clone(),
                reply,
            })
            .map_err(|_| ended())?;
        let fd = rx.await.map_err(|_| ended())??;
        Ok(tokio::net::TcpSocket::from_std_stream(
            std::net::TcpStream::from(fd),
        ))
    }
}

/// The process-wide socket thread, started on first use.
fn socket_thread() -> io::Result<&'static Mutex<mpsc::Sender<Request>>> {
    static THREAD: OnceLock<Result<Mutex<mpsc::Sender<Request>>, String>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Request>();
            let home = File::open("/proc/thread-self/ns/net")
                .map_err(|e| format!("opening our network namespace: {e}"))?;
            std::thread::Builder::new()
                .name("netns-sockets".into())
                .spawn(move || serve_sockets(&home, rx))
                .map_err(|e| format!("starting the netns socket thread: {e}"))?;
            Ok(Mutex::new(tx))
        })
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))
}

/// The socket thread: for each request, enter its namespace, create the socket, come back.
/// Ends (failing every later request) if it cannot come back to `home`.
fn serve_sockets(home: &File, rx: mpsc::Receiver<Request>) {
    for Request { ns, reply } in rx {
        let made = setns(&*ns, CloneFlags::CLONE_NEWNET)
            .map_err(io::Error::from)
            .and_then(|()| tcp_socket());
        if let Err(e) = setns(home, CloneFlags::CLONE_NEWNET) {
            let _ = reply.send(Err(io::Error::other(format!(
                "the netns socket thread cannot return to its namespace: {e}"
            ))));
            return;
        }
        let _ = reply.send(made);
    }
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)` in the calling thread's
/// network namespace.
#[allow(unsafe_code)]
fn tcp_socket() -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the descriptor is owned (and closed) by `OwnedFd`.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
