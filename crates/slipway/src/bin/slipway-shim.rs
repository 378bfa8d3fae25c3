//! `slipway-shim`: the per-container supervisor (`slipway-shim shim <config>`) and the exec
//! helpers (`slipway-shim nsexec ...` and the per-container exec server `slipway-shim zygote
//! ...`) as a small executable: the same modes as
//! `slipway shim` and `slipway nsexec`, without the rest of Slipway. The supervisor stays
//! beside every container and the helper starts for every exec probe, so both map and
//! relocate a binary a fraction of the size of `slipway`. `slipway serve` uses it when it is
//! installed beside `slipway` (the build puts it there), and falls back to itself.

use std::path::Path;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mode = args.next();
    let code = match mode.as_deref().and_then(|m| m.to_str()) {
        Some("shim") => match (args.next(), args.next()) {
            (Some(config), None) => slipway_shim::shim_main(Path::new(&config)),
            _ => usage(),
        },
        Some(slipway_shim::NSEXEC_SUBCOMMAND) => {
            slipway_shim::nsexec_main(&args.collect::<Vec<_>>())
        }
        Some(slipway_shim::ZYGOTE_SUBCOMMAND) => {
            slipway_shim::zygote_main(&args.collect::<Vec<_>>())
        }
        _ => usage(),
    };
    std::process::exit(code)
}

fn usage() -> i32 {
    eprintln!(
        "usage: slipway-shim shim <config.json> | slipway-shim nsexec|zygote <args> \
         (internal: started by slipway serve)"
    );
    2
}
