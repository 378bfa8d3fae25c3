//! `/version`.

use serde_json::{Value, json};

/// The Kubernetes version Slipway reports. kubectl's dispatcher picks its client by `minor`.
pub const GIT_VERSION: &str = "v1.33.0";

/// Go's name for the architecture this binary was built for (a compile-time constant).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The `/version` body: major `1`, minor `33`, `gitVersion` `v1.33.0`, the 1.33 emulation
/// and compatibility fields, and build placeholders (kubectl ignores them).
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}
