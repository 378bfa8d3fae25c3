//! Query parameters of API requests (pure parsing). Unknown parameters are ignored, as the
//! Kubernetes API server ignores them.

use slipway_admission::FieldValidation;
use slipway_core::ApiError;
use slipway_printers::IncludeObject;

/// Every query parameter the server honours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation` (default `Warn`, as the API server).
    pub field_validation: FieldValidation,
    /// `force` (server-side apply).
    pub force: bool,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit` (0 = no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `watch=true` (or `watch=1`).
    pub watch: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `includeObject` for Tables.
    pub include_object: IncludeObject,
    /// `propagationPolicy` (DELETE).
    pub propagation_policy: Option<String>,
    /// `gracePeriodSeconds` (DELETE).
    pub grace_period_seconds: Option<i64>,
    /// Pod log: `container`.
    pub container: Option<String>,
    /// Pod log: `follow`.
    pub follow: bool,
    /// Pod log: `previous`.
    pub previous: bool,
    /// Pod log: `tailLines`.
    pub tail_lines: Option<i64>,
    /// Pod log: `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// Pod log: `sinceTime`.
    pub since_time: Option<String>,
    /// Pod log: `timestamps`.
    pub timestamps: bool,
    /// Pod log: `limitBytes`.
    pub limit_bytes: Option<i64>,
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" | "True" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value for {name}: {v:?}: must be true or false"
        ))),
    }
}

fn integer<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid value for {name}: {v:?}: must be an integer"
        ))
    })
}

impl Query {
    /// Parses a raw (percent-encoded) query string.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = v.as_ref();
            match k.as_ref() {
                "dryRun" => match v {
                    "All" => q.dry_run = true,
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "invalid dry run option: {other:?}: supported values: \"All\""
                        )));
                    }
                },
                "fieldManager" => q.field_manager = Some(v.to_string()),
                "fieldValidation" => {
                    q.field_validation = match v {
                        "Strict" => FieldValidation::Strict,
                        "Warn" | "" => FieldValidation::Warn,
                        "Ignore" => FieldValidation::Ignore,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
                            )));
                        }
                    }
                }
                "force" => q.force = boolean("force", v)?,
                "labelSelector" => q.label_selector = Some(v.to_string()),
                "fieldSelector" => q.field_selector = Some(v.to_string()),
                "limit" => {
                    q.limit = if v.is_empty() {
                        0
                    } else {
                        integer::<i64>("limit", v)?.max(0) as usize
                    }
                }
                "continue" => q.continue_token = Some(v.to_string()).filter(|s| !s.is_empty()),
                "resourceVersion" => {
                    q.resource_version = Some(v.to_string()).filter(|s| !s.is_empty())
                }
                "watch" => q.watch = boolean("watch", v)?,
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(integer::<i64>("timeoutSeconds", v)?.max(0) as u64)
                }
                "allowWatchBookmarks" => q.allow_bookmarks = boolean("allowWatchBookmarks", v)?,
                "includeObject" => {
                    q.include_object = match v {
                        "None" => IncludeObject::None,
                        "Metadata" | "" => IncludeObject::Metadata,
                        "Object" => IncludeObject::Object,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "includeObject must be one of None, Metadata or Object, got {other:?}"
                            )));
                        }
                    }
                }
                "propagationPolicy" => q.propagation_policy = Some(v.to_string()),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(integer("gracePeriodSeconds", v)?)
                }
                "container" => q.container = Some(v.to_string()).filter(|s| !s.is_empty()),
                "follow" => q.follow = boolean("follow", v)?,
                "previous" => q.previous = boolean("previous", v)?,
                "tailLines" => q.tail_lines = Some(integer("tailLines", v)?),
                "sinceSeconds" => q.since_seconds = Some(integer("sinceSeconds", v)?),
                "sinceTime" => q.since_time = Some(v.to_string()),
                "timestamps" => q.timestamps = boolean("timestamps", v)?,
                "limitBytes" => q.limit_bytes = Some(integer("limitBytes", v)?),
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kubectl_sends() {
        let q = Query::parse(Some(
            "allowWatchBookmarks=true&fieldSelector=metadata.name%3Dweb&resourceVersion=17&timeoutSeconds=342&watch=true",
        ))
        .unwrap();
        assert!(q.watch && q.allow_bookmarks);
        assert_eq!(q.field_selector.as_deref(), Some("metadata.name=web"));
        assert_eq!(q.resource_version.as_deref(), Some("17"));
        assert_eq!(q.timeout_seconds, Some(342));
        let w = Query::parse(Some(
            "fieldManager=kubectl-client-side-apply&fieldValidation=Strict&dryRun=All",
        ))
        .unwrap();
        assert_eq!(w.field_validation, FieldValidation::Strict);
        assert!(w.dry_run);
        assert_eq!(
            Query::parse(Some("limit=500&timeout=32s")).unwrap().limit,
            500
        );
    }

    #[test]
    fn rejects_bad_values_with_a_message() {
        assert_eq!(Query::parse(Some("limit=abc")).unwrap_err().code, 400);
        assert_eq!(Query::parse(Some("dryRun=Some")).unwrap_err().code, 400);
        assert_eq!(
            Query::parse(Some("fieldValidation=Loud")).unwrap_err().code,
            400
        );
    }
}
