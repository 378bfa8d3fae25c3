//! Helper binary for the shim's tests (not shipped): it acts as the shim process, as the
//! process that spawns a shim, and as small container programs.
//!
//! - `slipway-shim-test shim CONFIG` — run the shim (what `slipway shim` will do);
//! - `slipway-shim-test nsexec ARGS...` — the exec helper (what `slipway nsexec` does);
//! - `slipway-shim-test zygote ARGS...` — the exec server (what `slipway zygote` does);
//! - `slipway-shim-test spawn CONFIG` — launch a shim for CONFIG (with this binary), print
//!   `launched <shim pid> <container pid>`, then block reading stdin until EOF;
//! - `slipway-shim-test listen PORT` — bind 127.0.0.1:PORT, print `listening`, answer each
//!   connection with the hostname;
//! - `slipway-shim-test connect PORT` — connect to 127.0.0.1:PORT and print the answer.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

fn main() {
    let args_os: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args_os
        .get(1)
        .is_some_and(|a| a == slipway_shim::NSEXEC_SUBCOMMAND)
    {
        std::process::exit(slipway_shim::nsexec_main(&args_os[2..]));
    }
    if args_os
        .get(1)
        .is_some_and(|a| a == slipway_shim::ZYGOTE_SUBCOMMAND)
    {
        std::process::exit(slipway_shim::zygote_main(&args_os[2..]));
    }
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("shim") if args.len() == 3 => slipway_shim::shim_main(Path::new(&args[2])),
        Some("spawn") if args.len() == 3 => spawn(Path::new(&args[2])),
        Some("listen") if args.len() == 3 => listen(&args[2]),
        Some("connect") if args.len() == 3 => connect(&args[2]),
        _ => {
            eprintln!(
                "usage: slipway-shim-test shim|spawn CONFIG | listen|connect PORT | nsexec ARGS..."
            );
            2
        }
    };
    std::process::exit(code);
}

fn spawn(config: &Path) -> i32 {
    let cfg = match slipway_shim::ShimConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.arg("shim");
    match slipway_shim::launch(cmd, &cfg) {
        Ok(state) => {
            println!("launched {} {}", state.shim_pid, state.container_pid);
            let _ = std::io::stdout().flush();
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn listen(port: &str) -> i32 {
    let listener = match std::net::TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            println!("bind failed: {e}");
            return 1;
        }
    };
    println!("listening");
    let _ = std::io::stdout().flush();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.write_all(host.trim().as_bytes());
    }
    0
}

fn connect(port: &str) -> i32 {
    match std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
        Ok(mut s) => {
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            println!("{answer}");
            0
        }
        Err(e) => {
            println!("connect failed: {e}");
            1
        }
    }
}
