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

use nix::sched::{CloneFlags, setns};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
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
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        std::thread::Builder::new()
            .name(format!("netns-{pid}"))
            .spawn(move || {
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
}
