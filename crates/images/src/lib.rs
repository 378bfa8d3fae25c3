//! `slipway-images`: what a container's `image` runs under the process runtime.
//!
//! - [`Catalog`]: the built-in sample images ([`BUILTIN_IMAGES`], run by the slipway binary
//!   itself as `slipway sample <name> ...`) plus user entries from `<data_dir>/images.yaml`;
//!   [`Catalog::resolve`] turns an image reference into an [`ImageEntry`].
//! - [`effective_argv`]: Kubernetes' `command`/`args` semantics with `$(VAR)` expansion.
//! - [`run_sample`]: the sample programs behind the built-in images.
//!
//! # `images.yaml`
//!
//! ```yaml
//! # <data_dir>/images.yaml: images the process runtime can run, besides the built-ins.
//! images:
//!   # The key is an image reference as pods name it. No tag means ":latest"; Docker Hub
//!   # names are normalised ("nginx" = "docker.io/library/nginx:latest"). A reference with
//!   # "@sha256:<64 hex>" is matched only by pods that name exactly that digest.
//!   "example.com/team/web:1.2":
//!     executable: /usr/local/bin/web     # required: absolute path, a path relative to the
//!                                        # data dir ("bin/web"), or a name found in PATH
//!     entrypointArgs: ["serve"]          # optional: kept when a pod sets only `args`
//!     args: ["--port", "8080"]           # optional: default args (a pod's `args` replace them)
//!     env:                               # optional: NAME: value, or a list of {name, value}
//!       LOG_LEVEL: info
//!     workingDir: /srv/web               # optional: absolute
//!     description: the team's web app    # optional: shown in listings
//! ```
//!
//! A user entry with the same reference as a built-in replaces it. Unknown fields, invalid
//! references and two keys naming the same image are errors that name the line.

mod argv;
mod catalog;
mod reference;
mod samples;

pub use argv::{effective_argv, expand, expand_env};
pub use catalog::{
    BUILTIN_IMAGES, BuiltinImage, CATALOG_FILE, Catalog, CatalogError, ImageEntry, ImageSource,
    ResolveError, builtin_image_id,
};
pub use reference::{DEFAULT_TAG, ImageRef, sha256_digest};
pub use samples::{SAMPLES, run_sample};
