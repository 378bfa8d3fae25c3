//! Catalog loading and resolution through the public API.

use slipway_images::{
    BUILTIN_IMAGES, Catalog, CatalogError, ImageSource, ResolveError, builtin_image_id,
    effective_argv, sha256_digest,
};
use std::path::Path;

const EXE: &str = "/opt/slipway/bin/slipway";

fn catalog(yaml: &str) -> Result<Catalog, CatalogError> {
    Catalog::from_yaml(yaml, Path::new("/data"), EXE)
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

#[test]
fn builtins_resolve_to_the_slipway_executable() {
    let c = catalog("").unwrap();
    let e = c.resolve("k8spatterns/random-generator:1.0").unwrap();
    assert_eq!(e.source, ImageSource::Builtin);
    assert_eq!(e.reference, "k8spatterns/random-generator:1.0");
    assert_eq!(
        e.default_argv(),
        s(&[EXE, "sample", "random-generator", "--version=1.0"])
    );
    let hex = sha256_digest(b"k8spatterns/random-generator:1.0");
    assert_eq!(
        e.image_id,
        format!("slipway-builtin://k8spatterns/random-generator@{hex}")
    );
    assert_eq!(
        e.image_id,
        builtin_image_id("k8spatterns/random-generator:1.0")
    );

    let e2 = c
        .resolve("docker.io/k8spatterns/random-generator:2.0")
        .unwrap();
    assert_eq!(
        e2.entrypoint_args,
        s(&["sample", "random-generator", "--version=2.0"])
    );
    assert_ne!(e2.image_id, e.image_id);

    for (image, sample) in [
        ("slipway/never-ready:1.0", "never-ready"),
        ("slipway/crasher:1.0", "crasher"),
        ("slipway/sleeper:1.0", "sleeper"),
    ] {
        let e = c.resolve(image).unwrap();
        assert_eq!(e.default_argv(), s(&[EXE, "sample", sample]), "{image}");
    }
    assert_eq!(c.list().len(), BUILTIN_IMAGES.len());
    // No tag means :latest, which no built-in has.
    assert!(matches!(
        c.resolve("k8spatterns/random-generator"),
        Err(ResolveError::NotFound { .. })
    ));
}

#[test]
fn builtins_resolve_by_their_digest() {
    let c = catalog("").unwrap();
    let e = c.resolve("slipway/sleeper:1.0").unwrap();
    let digest = e.image_id.rsplit_once('@').unwrap().1;
    let by_digest = c.resolve(&format!("slipway/sleeper@{digest}")).unwrap();
    assert_eq!(by_digest, e);
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(c.resolve(&format!("slipway/sleeper@{other}")).is_err());
    // A tag with a digest: the digest decides.
    assert_eq!(
        c.resolve(&format!("slipway/sleeper:9.9@{digest}")).unwrap(),
        e
    );
}

#[test]
fn load_without_a_file_gives_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::load(dir.path()).unwrap();
    assert_eq!(c.list().len(), BUILTIN_IMAGES.len());
    assert_eq!(c.catalog_path(), dir.path().join("images.yaml"));
    // Built-ins run this executable.
    let exe = std::env::current_exe().unwrap();
    let e = c.resolve("slipway/crasher:1.0").unwrap();
    assert_eq!(Path::new(&e.executable), exe);
}

const USER: &str = r#"
# my images
images:
  "example.com/team/web:1.2":
    executable: /usr/local/bin/web
    entrypointArgs: [serve]
    args: ["--port", 8080, true]
    env:
      LOG_LEVEL: info
      WORKERS: 4
    workingDir: /srv/web
    description: the team's web app
  nginx:
    executable: nginx
    env:
      - name: A
        value: "1"
      - name: B
  tools/thing@sha256:1111111111111111111111111111111111111111111111111111111111111111:
    executable: bin/thing
  k8spatterns/random-generator:1.0:
    executable: /usr/bin/my-random
"#;

#[test]
fn user_entries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("images.yaml"), USER).unwrap();
    let c = Catalog::load_with_executable(dir.path(), EXE).unwrap();

    let web = c.resolve("example.com/team/web:1.2").unwrap();
    assert_eq!(web.source, ImageSource::User);
    assert_eq!(web.executable, "/usr/local/bin/web");
    assert_eq!(web.entrypoint_args, s(&["serve"]));
    assert_eq!(web.args, s(&["--port", "8080", "true"]));
    assert_eq!(
        web.env,
        vec![
            ("LOG_LEVEL".to_string(), "info".to_string()),
            ("WORKERS".to_string(), "4".to_string())
        ]
    );
    assert_eq!(web.working_dir.as_deref(), Some("/srv/web"));
    assert_eq!(web.description.as_deref(), Some("the team's web app"));
    assert!(
        web.image_id
            .starts_with("slipway-user://example.com/team/web@sha256:")
    );
    assert_eq!(
        effective_argv(&web, &[], &s(&["--port", "9"]), &[]),
        s(&["/usr/local/bin/web", "serve", "--port", "9"])
    );

    // No tag means latest, Docker Hub names are normalised.
    for name in [
        "nginx",
        "nginx:latest",
        "docker.io/library/nginx",
        "library/nginx:latest",
    ] {
        let e = c.resolve(name).unwrap();
        assert_eq!(e.reference, "nginx:latest", "{name}");
        assert_eq!(e.executable, "nginx");
        assert_eq!(
            e.env,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), String::new())
            ]
        );
    }
    assert!(c.resolve("nginx:1.27").is_err());

    // A digest entry matches exactly that digest, and relative executables are taken
    // relative to the data dir.
    let digest = format!("sha256:{}", "1".repeat(64));
    let thing = c.resolve(&format!("tools/thing@{digest}")).unwrap();
    assert_eq!(Path::new(&thing.executable), dir.path().join("bin/thing"));
    assert_eq!(
        thing.image_id,
        format!("slipway-user://tools/thing@{digest}")
    );
    assert!(c.resolve("tools/thing").is_err());
    assert!(
        c.resolve(&format!("tools/thing@sha256:{}", "2".repeat(64)))
            .is_err()
    );

    // A user entry replaces the built-in with the same reference; the others stay.
    let mine = c.resolve("k8spatterns/random-generator:1.0").unwrap();
    assert_eq!(mine.source, ImageSource::User);
    assert_eq!(mine.executable, "/usr/bin/my-random");
    assert_eq!(
        c.resolve("k8spatterns/random-generator:2.0")
            .unwrap()
            .source,
        ImageSource::Builtin
    );
    let listed: Vec<&str> = c.list().iter().map(|e| e.reference.as_str()).collect();
    assert_eq!(listed.len(), BUILTIN_IMAGES.len() - 1 + 4);
    assert_eq!(
        listed
            .iter()
            .filter(|r| **r == "k8spatterns/random-generator:1.0")
            .count(),
        1
    );
}

#[test]
fn missing_image_message_says_how_to_add_it() {
    let c = catalog("").unwrap();
    let err = c.resolve("foo:1").unwrap_err();
    assert_eq!(err.reason(), "ErrImagePull");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "image \"foo:1\" is not in the Slipway image catalog; add it to /data/images.yaml, for example: "
        ),
        "{msg}"
    );
    // The example is valid images.yaml that makes the image resolve.
    let example = msg.split_once("for example: ").unwrap().1;
    let c2 = catalog(example).unwrap();
    assert_eq!(c2.resolve("foo:1").unwrap().executable, "/path/to/program");
}

#[test]
fn invalid_image_names() {
    let c = catalog("").unwrap();
    for bad in ["Foo:1", "foo bar", "foo@sha256:xyz", ""] {
        let err = c.resolve(bad).unwrap_err();
        assert_eq!(err.reason(), "InvalidImageName", "{bad:?}");
        assert!(matches!(err, ResolveError::InvalidReference { .. }));
    }
}

#[test]
fn empty_and_comment_only_files() {
    for yaml in ["", "\n", "# nothing yet\n", "images:\n", "images: {}\n"] {
        let c = catalog(yaml).unwrap();
        assert_eq!(c.list().len(), BUILTIN_IMAGES.len(), "{yaml:?}");
    }
}

fn parse_error(yaml: &str) -> (Option<usize>, String) {
    match catalog(yaml) {
        Err(e @ CatalogError::Parse { line, .. }) => (line, e.to_string()),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{yaml:?} should not parse"),
    }
}

#[test]
fn parse_errors_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "images:\n  app:1:\n    executable: /bin/a\n    args: [a, b\n",
            5,
            "",
        ),
        (
            "images:\n  app:1:\n    args: [a]\n",
            3,
            "missing field `executable`",
        ),
        (
            "images:\n  app:1:\n    executable: /a\n    working_dir: /x\n",
            4,
            "working_dir",
        ),
        (
            "images:\n  app:1:\n    executable: /a\n  Bad:1:\n    executable: /b\n",
            4,
            "\"Bad:1\"",
        ),
        (
            "images:\n  nginx:\n    executable: /a\n  docker.io/library/nginx:latest:\n    executable: /b\n",
            4,
            "names the same image as \"nginx\"",
        ),
        // Value checks name the entry's first line and the field.
        (
            "images:\n  app:1:\n    executable: /a\n    workingDir: rel\n",
            3,
            "workingDir must be an absolute path",
        ),
        (
            "images:\n  app:1:\n    executable: \"\"\n",
            3,
            "must not be empty",
        ),
        (
            "images:\n  app:1:\n    executable: /a\n    args: [1.5]\n",
            4,
            "quote",
        ),
        ("imagez: {}\n", 1, "imagez"),
        ("- just a list\n", 1, ""),
    ];
    for (yaml, line, needle) in cases {
        let (got_line, msg) = parse_error(yaml);
        assert!(
            msg.starts_with("invalid image catalog /data/images.yaml, line "),
            "{msg}"
        );
        assert_eq!(got_line, Some(*line), "{yaml:?}: {msg}");
        assert!(
            msg.contains(needle),
            "{yaml:?}: {msg} should mention {needle:?}"
        );
        println!("{msg}");
    }
}

#[test]
fn unreadable_catalog_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be cannot be read as one.
    std::fs::create_dir(dir.path().join("images.yaml")).unwrap();
    let err = Catalog::load(dir.path()).unwrap_err();
    assert!(matches!(err, CatalogError::Io { .. }), "{err}");
    assert!(err.to_string().contains("images.yaml"));
}
