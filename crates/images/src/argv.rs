//! Kubernetes' command/args semantics and `$(VAR)` expansion, as pure functions.
//!
//! From "Define a Command and Arguments for a Container":
//!
//! | container `command` | container `args` | the process runs |
//! | --- | --- | --- |
//! | not set | not set | the image's entrypoint with the image's default args |
//! | set | not set | `command` alone (the image's default args are dropped) |
//! | not set | set | the image's entrypoint with `args` |
//! | set | set | `command` with `args` |
//!
//! An empty list counts as not set, as in Kubernetes. `$(VAR)` references in `command` and
//! `args` (not in the image's own entrypoint or default args) are replaced by the value of the
//! container's environment variable `VAR`; a reference to an undefined variable is left as
//! written, and `$$` is an escaped `$` (`$$(VAR)` gives the literal `$(VAR)`).

use crate::catalog::ImageEntry;
use std::collections::HashMap;

/// The argv (program first) a container runs: `entry` is its resolved image, `command` and
/// `args` come from the container spec (empty means not set), and `env` is the container's
/// environment (`name`, `value`) used to expand `$(VAR)`; a later duplicate name wins.
pub fn effective_argv(
    entry: &ImageEntry,
    command: &[String],
    args: &[String],
    env: &[(String, String)],
) -> Vec<String> {
    let vars: HashMap<&str, &str> = env
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let lookup = |name: &str| vars.get(name).map(|v| (*v).to_string());
    let expand_all =
        |items: &[String]| -> Vec<String> { items.iter().map(|s| expand(s, lookup)).collect() };
    if !command.is_empty() {
        let mut argv = expand_all(command);
        argv.extend(expand_all(args));
        return argv;
    }
    let mut argv = entry.entrypoint();
    if args.is_empty() {
        argv.extend(entry.args.iter().cloned());
    } else {
        argv.extend(expand_all(args));
    }
    argv
}

/// Expands `$(VAR)` references in `input` with `lookup`, as Kubernetes does: `$$` becomes
/// `$`; `$(NAME)` becomes `lookup(NAME)` or stays as written when that is `None`; any other
/// `$` (including an unterminated `$(`) is kept literally.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.chars().next() {
            None => {
                // A trailing '$' is literal.
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    // Unterminated: keep "$(" and go on scanning after it.
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands the values of a container's `env` list the way Kubernetes does: each value may
/// refer to variables defined earlier in the list (or in `base`, e.g. Service variables),
/// never to later ones.
pub fn expand_env(base: &[(String, String)], env: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars: HashMap<String, String> = base.iter().cloned().collect();
    let mut out = Vec::with_capacity(env.len());
    for (name, value) in env {
        let expanded = expand(value, |n| vars.get(n).cloned());
        vars.insert(name.clone(), expanded.clone());
        out.push((name.clone(), expanded));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ImageEntry, ImageSource};

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|x| x.to_string()).collect()
    }

    fn entry() -> ImageEntry {
        ImageEntry {
            reference: "example/app:1".into(),
            source: ImageSource::User,
            executable: "/bin/app".into(),
            entrypoint_args: s(&["--mode", "server"]),
            args: s(&["--port", "80"]),
            env: vec![],
            working_dir: None,
            image_id: "x".into(),
            description: None,
        }
    }

    #[test]
    fn command_and_args_table() {
        let env = vec![("PORT".to_string(), "9090".to_string())];
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            // neither: image entrypoint + image default args
            (&[], &[], &["/bin/app", "--mode", "server", "--port", "80"]),
            // command only: the image's default args are dropped
            (
                &["/bin/sh", "-c", "echo hi"],
                &[],
                &["/bin/sh", "-c", "echo hi"],
            ),
            // args only: image entrypoint + container args
            (
                &[],
                &["--port", "$(PORT)"],
                &["/bin/app", "--mode", "server", "--port", "9090"],
            ),
            // both: command + args
            (
                &["/bin/other"],
                &["x", "$(PORT)"],
                &["/bin/other", "x", "9090"],
            ),
        ];
        for (command, args, want) in cases {
            let got = effective_argv(&entry(), &s(command), &s(args), &env);
            assert_eq!(got, s(want), "command={command:?} args={args:?}");
        }
    }

    #[test]
    fn image_defaults_are_not_expanded() {
        let mut e = entry();
        e.args = s(&["$(PORT)"]);
        let env = vec![("PORT".to_string(), "1".to_string())];
        assert_eq!(
            effective_argv(&e, &[], &[], &env),
            s(&["/bin/app", "--mode", "server", "$(PORT)"])
        );
    }

    #[test]
    fn expansion_table() {
        let env = vec![
            ("A".to_string(), "alpha".to_string()),
            ("B".to_string(), "".to_string()),
            ("A".to_string(), "second".to_string()),
            ("X_1".to_string(), "$(A)".to_string()),
        ];
        let cases = [
            ("$(A)", "second"),
            ("pre-$(A)-post", "pre-second-post"),
            ("$(B)", ""),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$second"),
            ("$$", "$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("$($(A)", "$($(A)"), // the first ")" closes "$($(A" (undefined)
            ("$(A$(A))", "$(A$(A))"),
            ("$(A $(A)", "$(A $(A)"),
            ("$()", "$()"),
            ("$(X_1)", "$(A)"),
            ("$(A)$(A)", "secondsecond"),
            ("ünï$(A)cödé", "ünïsecondcödé"),
            ("$é", "$é"),
            ("no vars", "no vars"),
        ];
        for (input, want) in cases {
            let got = effective_argv(&entry(), &s(&["cmd", input]), &[], &env);
            assert_eq!(got[1], want, "input {input:?}");
        }
    }

    #[test]
    fn env_values_see_only_earlier_variables() {
        let base = vec![("SVC_HOST".to_string(), "10.0.0.1".to_string())];
        let env = vec![
            ("URL".to_string(), "http://$(SVC_HOST):$(PORT)".to_string()),
            ("PORT".to_string(), "80".to_string()),
            ("URL2".to_string(), "http://$(SVC_HOST):$(PORT)".to_string()),
        ];
        let got = expand_env(&base, &env);
        assert_eq!(got[0].1, "http://10.0.0.1:$(PORT)");
        assert_eq!(got[2].1, "http://10.0.0.1:80");
    }
}
