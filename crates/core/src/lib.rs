//! The I/O-free vocabulary every other Slipway crate shares: which resources the API serves
//! ([`resources`]), API errors that render as a Kubernetes `Status` ([`error`]), field-level
//! validation errors ([`field`]), metadata accessors on JSON objects ([`meta`]), and the
//! strategic-merge schema of the served types ([`merge_schema`]).

pub mod error;
pub mod field;
pub mod merge_schema;
pub mod meta;
pub mod resources;

pub use error::{ApiError, StatusCause};
pub use field::{FieldError, FieldErrorKind};
pub use resources::{ResourceInfo, Subresource};
