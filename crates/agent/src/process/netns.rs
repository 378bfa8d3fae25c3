//! Reaching a container's network namespace from the agent.
//!
//! A [`NetnsDialer`] is a dedicated thread that joins the network namespace of one container
//! run (`setns` on `/proc/<pid>/ns/net`, which affects only that thread) and opens TCP
//! connections to `127.0.0.1:<port>` there on request. A socket belongs to the namespace it
//! was created in, so the connected stream works from any thread: probes and the pod-IP
//! forwarders use it like any other tokio stream. The thread ends when the last handle is
//! dropped.

use nix::sched::{CloneFlags, setns};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a connect inside the namespace may take (loopback: refused or accepted at
/// once, unless the listener's backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type Request = (u16, oneshot::Sender<io::Result<TcpStream>>);

/// A handle on the dialer thread of one container run.
#[derive(Clone, Debug)]
pub struct NetnsDialer {
    tx: mpsc::Sender<Request>,
}

impl NetnsDialer {
    /// Starts a dialer in the network namespace of process `pid`.
    pub fn start(pid: i32) -> io::Result<NetnsDialer> {
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
                for (port, reply) in rx {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    let _ = reply.send(TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT));
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the netns dialer thread ended early"))??;
        Ok(NetnsDialer { tx })
    }

    /// Connects to `127.0.0.1:port` inside the namespace.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((port, reply))
            .map_err(|_| io::Error::other("the netns dialer has ended"))?;
        let stream = rx
            .await
            .map_err(|_| io::Error::other("the netns dialer has ended"))??;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dialer_in_our_own_namespace_connects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = NetnsDialer::start(std::process::id() as i32).unwrap();
        let s = d.connect(port).await.unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
        assert!(NetnsDialer::start(i32::MAX).is_err());
    }
}
