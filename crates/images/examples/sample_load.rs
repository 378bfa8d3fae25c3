//! Measures the random-generator sample's keep-alive throughput on loopback.
//!
//! `cargo run -p slipway-images --example sample_load [-- CONNECTIONS SECONDS]` starts the
//! sample as a child process (this binary re-run with `child`), pinned to CPU 0 when
//! `taskset` exists, drives it with CONNECTIONS keep-alive connections (default 4) for
//! SECONDS (default 3, bounded at 30) and prints requests per second. The log lines the
//! sample writes per request go through a pipe that is drained, as the shim would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        std::process::exit(slipway_images::run_sample(
            "random-generator",
            &["--version=1.0".to_string()],
        ));
    }
    let connections: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let seconds: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .min(30);
    let exe = std::env::current_exe().expect("current exe");
    let pin = Command::new("taskset").arg("--version").output().is_ok();
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let mut child = cmd
        .arg("child")
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("READY_FILE", std::env::temp_dir().join("sample-load-ready"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the sample");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the sample exited").expect("read");
        if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
        }
    };
    let log_lines = Arc::new(AtomicU64::new(0));
    let counted = log_lines.clone();
    std::thread::spawn(move || {
        for _ in lines {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, total) = (stop.clone(), total.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.set_nodelay(true).ok();
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        .expect("write");
                    // Responses are small: read until the whole body is in.
                    let mut have = 0;
                    loop {
                        let n = stream.read(&mut buf[have..]).expect("read");
                        assert!(n > 0, "connection closed");
                        have += n;
                        let text = &buf[..have];
                        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = std::str::from_utf8(&text[..end]).expect("utf8");
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .and_then(|v| v.parse().ok())
                                .expect("content-length");
                            if have >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    total.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    println!(
        "{n} requests over {connections} keep-alive connections in {elapsed:.2}s: {:.0} requests/s (server pinned to one CPU: {pin})",
        n as f64 / elapsed
    );
    child.kill().ok();
    child.wait().ok();
}
