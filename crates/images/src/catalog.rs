//! The image catalog: built-in sample images plus the user's `<data_dir>/images.yaml`.

use crate::reference::{ImageRef, sha256_digest};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file name of the user catalog inside the data dir.
pub const CATALOG_FILE: &str = "images.yaml";

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    /// A sample program built into the slipway binary.
    Builtin,
    /// An entry of `<data_dir>/images.yaml`.
    User,
}

/// What an image runs: its entrypoint (`executable` + `entrypoint_args`, like a Dockerfile
/// `ENTRYPOINT`), its default arguments (`args`, like `CMD`), environment and working dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// The catalog's reference for the image, in familiar form (`nginx:latest`).
    pub reference: String,
    pub source: ImageSource,
    /// The program: an absolute path, or a bare name to look up in `PATH`.
    pub executable: String,
    /// Fixed arguments that are part of the entrypoint: kept when the container sets
    /// `args`, dropped with the executable when it sets `command`.
    pub entrypoint_args: Vec<String>,
    /// Default arguments, replaced by the container's `args` or dropped by its `command`.
    pub args: Vec<String>,
    /// The image's environment, in order; the container's `env` overrides it.
    pub env: Vec<(String, String)>,
    /// The image's working directory (the container's `workingDir` overrides it).
    pub working_dir: Option<String>,
    /// The `imageID` to report in the container status.
    pub image_id: String,
    /// A human description for listings.
    pub description: Option<String>,
}

impl ImageEntry {
    /// The entrypoint argv: the executable followed by the fixed entrypoint arguments.
    pub fn entrypoint(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(1 + self.entrypoint_args.len() + self.args.len());
        argv.push(self.executable.clone());
        argv.extend(self.entrypoint_args.iter().cloned());
        argv
    }

    /// The argv run when the container sets neither `command` nor `args`.
    pub fn default_argv(&self) -> Vec<String> {
        let mut argv = self.entrypoint();
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// A built-in sample image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinImage {
    /// The reference (`k8spatterns/random-generator:1.0`).
    pub reference: &'static str,
    /// The sample program (`slipway sample <sample>`).
    pub sample: &'static str,
    /// Fixed arguments passed to the sample after its name.
    pub sample_args: &'static [&'static str],
    pub description: &'static str,
}

/// The built-in images, each run as `<slipway> sample <sample> <sample_args...>`.
pub const BUILTIN_IMAGES: &[BuiltinImage] = &[
    BuiltinImage {
        reference: "k8spatterns/random-generator:1.0",
        sample: "random-generator",
        sample_args: &["--version=1.0"],
        description: "HTTP server on :8080 answering GET / with a random number (version 1.0)",
    },
    BuiltinImage {
        reference: "k8spatterns/random-generator:2.0",
        sample: "random-generator",
        sample_args: &["--version=2.0"],
        description: "HTTP server on :8080 answering GET / with a random number (version 2.0; ERROR_RATE injects 500s)",
    },
    BuiltinImage {
        reference: "slipway/never-ready:1.0",
        sample: "never-ready",
        sample_args: &[],
        description: "HTTP server like random-generator that never creates its ready file",
    },
    BuiltinImage {
        reference: "slipway/crasher:1.0",
        sample: "crasher",
        sample_args: &[],
        description: "exits with code 1 after CRASH_AFTER_SECONDS (default 5)",
    },
    BuiltinImage {
        reference: "slipway/sleeper:1.0",
        sample: "sleeper",
        sample_args: &[],
        description: "sleeps until SIGTERM (IGNORE_SIGTERM=1 ignores it)",
    },
];

/// The `imageID` of a built-in image: `slipway-builtin://<name>@sha256:<sha256 of name:tag>`.
pub fn builtin_image_id(reference: &str) -> String {
    let r = ImageRef::parse(reference).expect("built-in references are valid");
    let canonical = r.familiar();
    format!(
        "slipway-builtin://{}@{}",
        r.familiar_name(),
        sha256_digest(canonical.as_bytes())
    )
}

/// An error loading the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the image catalog {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image catalog {}{}: {message}", path.display(), location(*line, *column))]
    Parse {
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        message: String,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l} column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

/// An image that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The reference does not parse (Kubernetes' `InvalidImageName`).
    #[error(
        "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {reason}"
    )]
    InvalidReference { image: String, reason: String },
    /// The reference is not in the catalog (reported as `ErrImagePull`/`ImagePullBackOff`).
    #[error(
        "image {image:?} is not in the Slipway image catalog; add it to {}, for example: images: {{{}: {{executable: /path/to/program, args: []}}}}",
        catalog_path.display(),
        serde_json::to_string(image).unwrap_or_default()
    )]
    NotFound {
        image: String,
        catalog_path: PathBuf,
    },
}

impl ResolveError {
    /// The container waiting reason Kubernetes uses for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::InvalidReference { .. } => "InvalidImageName",
            ResolveError::NotFound { .. } => "ErrImagePull",
        }
    }
}

/// Built-in images plus the user's entries, indexed for resolution.
#[derive(Debug, Clone)]
pub struct Catalog {
    catalog_path: PathBuf,
    entries: Vec<ImageEntry>,
    /// (full name, tag) → index into `entries`.
    by_tag: HashMap<(String, String), usize>,
    /// (full name, digest) → index into `entries`.
    by_digest: HashMap<(String, String), usize>,
}

impl Catalog {
    /// Loads the catalog of `data_dir`: built-ins (run by this executable,
    /// `std::env::current_exe()`) plus `<data_dir>/images.yaml` if it exists.
    pub fn load(data_dir: &Path) -> Result<Catalog, CatalogError> {
        let exe = std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "slipway".to_string());
        Catalog::load_with_executable(data_dir, &exe)
    }

    /// Like [`Catalog::load`], with built-ins run by `slipway_exe`.
    pub fn load_with_executable(
        data_dir: &Path,
        slipway_exe: &str,
    ) -> Result<Catalog, CatalogError> {
        let path = data_dir.join(CATALOG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(CatalogError::Io { path, source }),
        };
        Catalog::from_yaml(&text, data_dir, slipway_exe)
    }

    /// The catalog of built-ins plus the images.yaml text `yaml` (relative executables are
    /// taken relative to `data_dir`).
    pub fn from_yaml(
        yaml: &str,
        data_dir: &Path,
        slipway_exe: &str,
    ) -> Result<Catalog, CatalogError> {
        let catalog_path = data_dir.join(CATALOG_FILE);
        let user = parse_file(yaml).map_err(|(line, column, message)| CatalogError::Parse {
            path: catalog_path.clone(),
            line,
            column,
            message,
        })?;
        let mut catalog = Catalog {
            catalog_path,
            entries: Vec::new(),
            by_tag: HashMap::new(),
            by_digest: HashMap::new(),
        };
        // User entries take precedence: a built-in one of whose keys a user entry takes is
        // left out altogether.
        let mut user_entries = Vec::new();
        for (r, e) in user {
            let executable =
                if !Path::new(&e.executable).is_absolute() && e.executable.contains('/') {
                    data_dir.join(&e.executable).to_string_lossy().into_owned()
                } else {
                    e.executable
                };
            let image_id = match &r.digest {
                Some(d) => format!("slipway-user://{}@{d}", r.familiar_name()),
                None => format!(
                    "slipway-user://{}@{}",
                    r.familiar_name(),
                    sha256_digest(r.familiar().as_bytes())
                ),
            };
            user_entries.push((
                r.clone(),
                ImageEntry {
                    reference: r.familiar(),
                    source: ImageSource::User,
                    executable,
                    entrypoint_args: e.entrypoint_args,
                    args: e.args,
                    env: e.env.0,
                    working_dir: e.working_dir,
                    image_id,
                    description: e.description,
                },
            ));
        }
        let user_keys: Vec<_> = user_entries.iter().flat_map(|(r, _)| keys(r)).collect();
        for b in BUILTIN_IMAGES {
            let mut r = ImageRef::parse(b.reference).expect("built-in references are valid");
            let image_id = builtin_image_id(b.reference);
            r.digest = Some(
                image_id
                    .rsplit_once('@')
                    .expect("has a digest")
                    .1
                    .to_string(),
            );
            if keys(&r).iter().any(|k| user_keys.contains(k)) {
                continue;
            }
            let mut entrypoint_args = vec!["sample".to_string(), b.sample.to_string()];
            entrypoint_args.extend(b.sample_args.iter().map(|s| s.to_string()));
            let entry = ImageEntry {
                reference: b.reference.to_string(),
                source: ImageSource::Builtin,
                executable: slipway_exe.to_string(),
                entrypoint_args,
                args: Vec::new(),
                env: Vec::new(),
                working_dir: None,
                image_id,
                description: Some(b.description.to_string()),
            };
            catalog.insert(&r, entry);
        }
        for (r, entry) in user_entries {
            catalog.insert(&r, entry);
        }
        Ok(catalog)
    }

    fn insert(&mut self, r: &ImageRef, entry: ImageEntry) {
        let index = self.entries.len();
        self.entries.push(entry);
        for key in keys(r) {
            match key {
                Key::Tag(k) => self.by_tag.insert(k, index),
                Key::Digest(k) => self.by_digest.insert(k, index),
            };
        }
    }

    /// Resolves a container's `image`. A reference with a digest matches only an entry with
    /// that digest; one without matches by tag (`latest` when it names none).
    pub fn resolve(&self, image: &str) -> Result<ImageEntry, ResolveError> {
        let r = ImageRef::parse(image).map_err(|reason| ResolveError::InvalidReference {
            image: image.to_string(),
            reason,
        })?;
        let found = match (&r.digest, r.effective_tag()) {
            (Some(d), _) => self.by_digest.get(&(r.full_name(), d.clone())),
            (None, Some(t)) => self.by_tag.get(&(r.full_name(), t.to_string())),
            (None, None) => None,
        };
        match found {
            Some(&i) => Ok(self.entries[i].clone()),
            None => Err(ResolveError::NotFound {
                image: image.to_string(),
                catalog_path: self.catalog_path.clone(),
            }),
        }
    }

    /// Every entry, built-ins first, then the user's in file order.
    pub fn list(&self) -> &[ImageEntry] {
        &self.entries
    }

    /// The path of the user catalog file (which need not exist).
    pub fn catalog_path(&self) -> &Path {
        &self.catalog_path
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Tag((String, String)),
    Digest((String, String)),
}

fn keys(r: &ImageRef) -> Vec<Key> {
    let mut keys = Vec::new();
    if let Some(t) = r.effective_tag() {
        keys.push(Key::Tag((r.full_name(), t.to_string())));
    }
    if let Some(d) = &r.digest {
        keys.push(Key::Digest((r.full_name(), d.clone())));
    }
    keys
}

// ---- images.yaml --------------------------------------------------------------------------

type ParseFailure = (Option<usize>, Option<usize>, String);

fn parse_file(yaml: &str) -> Result<Vec<(ImageRef, UserEntry)>, ParseFailure> {
    let to_failure = |e: serde_yaml::Error| {
        let loc = e.location();
        let message = strip_location(&e.to_string());
        (
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
            message,
        )
    };
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(to_failure)?;
    if value.is_null() {
        return Ok(Vec::new());
    }
    let file: CatalogFile = serde_yaml::from_str(yaml).map_err(to_failure)?;
    let raw = file.images.map(|m| m.0).unwrap_or_default();
    // Keys are checked here rather than while deserializing, where serde_yaml would report
    // the line of the enclosing mapping instead of the key's.
    let mut out: Vec<(ImageRef, UserEntry)> = Vec::with_capacity(raw.len());
    let mut seen: Vec<(Key, &str)> = Vec::new();
    for (i, (key, entry)) in raw.iter().enumerate() {
        let occurrence = raw[..i].iter().filter(|(k, _)| k == key).count();
        let fail = |message: String| {
            let line = find_key_line(yaml, key, occurrence);
            (
                line,
                line.map(|_| 1 + indent_of(yaml, line)),
                format!("images: {message}"),
            )
        };
        let r = ImageRef::parse(key)
            .map_err(|e| fail(format!("invalid image reference {key:?}: {e}")))?;
        for k in keys(&r) {
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == k) {
                return Err(fail(format!("{key:?} names the same image as {other:?}")));
            }
            seen.push((k, key));
        }
        out.push((r, entry.clone()));
    }
    Ok(out)
}

/// The 1-based line where `key` appears as a mapping key for the `occurrence`-th time (0 is
/// the first): a line whose text starts with the key, plain or quoted, and a colon; failing
/// that, any line that contains it quoted (flow style).
fn find_key_line(yaml: &str, key: &str, occurrence: usize) -> Option<usize> {
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let block = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| forms.iter().any(|f| l.trim_start().starts_with(f.as_str())))
        .nth(occurrence)
        .map(|(i, _)| i + 1);
    block.or_else(|| {
        let quoted = [format!("\"{key}\""), format!("'{key}'")];
        yaml.lines()
            .position(|l| quoted.iter().any(|q| l.contains(q.as_str())))
            .map(|i| i + 1)
    })
}

fn indent_of(yaml: &str, line: Option<usize>) -> usize {
    line.and_then(|l| yaml.lines().nth(l - 1))
        .map(|text| text.len() - text.trim_start().len())
        .unwrap_or(0)
}

/// Removes serde_yaml's " at line L column C" (the location is reported separately).
fn strip_location(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_string();
    };
    let tail = &message[start + " at line ".len()..];
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let mut end = start + " at line ".len() + digits(tail);
    if let Some(rest) = message[end..].strip_prefix(" column ") {
        end += " column ".len() + digits(rest);
    }
    format!("{}{}", &message[..start], &message[end..])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with the key `images`")]
struct CatalogFile {
    #[serde(default)]
    images: Option<ImagesMap>,
}

struct ImagesMap(Vec<(String, UserEntry)>);

impl<'de> Deserialize<'de> for ImagesMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ImagesMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a mapping from image references to {executable, args, env, workingDir}",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImagesMap, A::Error> {
                let mut out: Vec<(String, UserEntry)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let entry: UserEntry = map.next_value()?;
                    out.push((key, entry));
                }
                Ok(ImagesMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserEntry {
    #[serde(deserialize_with = "non_empty_string")]
    executable: String,
    #[serde(default, deserialize_with = "string_list")]
    entrypoint_args: Vec<String>,
    #[serde(default, deserialize_with = "string_list")]
    args: Vec<String>,
    #[serde(default)]
    env: EnvList,
    #[serde(default, deserialize_with = "absolute_path")]
    working_dir: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A string, or an integer or boolean taken as its text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (quote numbers like \"1.0\")")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Option<Vec<Scalar>> = Option::deserialize(d)?;
    Ok(items.unwrap_or_default().into_iter().map(|s| s.0).collect())
}

fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(de::Error::custom("executable must not be empty"));
    }
    Ok(s)
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    if let Some(p) = &s
        && !p.starts_with('/')
    {
        return Err(de::Error::custom(format!(
            "workingDir must be an absolute path, got {p:?}"
        )));
    }
    Ok(s)
}

/// `env` as a mapping (`NAME: value`) or as a Kubernetes-style list (`- name: N, value: v`).
#[derive(Default, Clone)]
struct EnvList(Vec<(String, String)>);

impl<'de> Deserialize<'de> for EnvList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Item {
            name: String,
            #[serde(default)]
            value: Option<Scalar>,
        }
        fn check_name<E: de::Error>(name: &str) -> Result<(), E> {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(E::custom(format!(
                    "invalid environment variable name {name:?}"
                )));
            }
            Ok(())
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping NAME: value, or a list of {name, value}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<EnvList, E> {
                Ok(EnvList::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvList, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    check_name(&name)?;
                    let value: Option<Scalar> = map.next_value()?;
                    out.push((name, value.map(|s| s.0).unwrap_or_default()));
                }
                Ok(EnvList(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EnvList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Item>()? {
                    check_name(&item.name)?;
                    out.push((item.name, item.value.map(|s| s.0).unwrap_or_default()));
                }
                Ok(EnvList(out))
            }
        }
        d.deserialize_any(V)
    }
}
