//! Content negotiation (pure): which representation a client accepts, and what a request body
//! is.

use slipway_core::ApiError;
use slipway_discovery::AggregatedVersion;

/// The representation of a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The object or list as JSON.
    Json,
    /// The object or list as YAML.
    Yaml,
    /// A `meta.k8s.io` Table (`v1` or `v1beta1`).
    Table(&'static str),
    /// Aggregated discovery.
    Aggregated(AggregatedVersion),
}

impl Representation {
    /// The `Content-Type` of a response in this representation.
    pub fn content_type(self) -> &'static str {
        match self {
            Representation::Json => "application/json",
            Representation::Yaml => "application/yaml",
            Representation::Table("v1beta1") => "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
            Representation::Table(_) => "application/json;as=Table;v=v1;g=meta.k8s.io",
            Representation::Aggregated(AggregatedVersion::V2) => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            Representation::Aggregated(AggregatedVersion::V2Beta1) => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }
}

/// One media range of an Accept header: type/subtype and parameters.
struct MediaRange<'a> {
    essence: String,
    params: Vec<(String, &'a str)>,
}

impl<'a> MediaRange<'a> {
    fn parse(s: &'a str) -> MediaRange<'a> {
        let mut parts = s.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().trim_matches('"')))
            })
            .collect();
        MediaRange { essence, params }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn is_json(&self) -> bool {
        matches!(
            self.essence.as_str(),
            "application/json" | "*/*" | "application/*" | "*"
        )
    }
}

/// Chooses the representation for `accept` (in the client's order of preference). `allow`
/// says which special representations the endpoint can produce. Protobuf and anything
/// unknown are skipped; JSON is the fallback when the header is absent. 406 if nothing fits.
pub fn choose(
    accept: Option<&str>,
    allow_table: bool,
    allow_aggregated: bool,
) -> Result<Representation, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Representation::Json);
    };
    for range in accept.split(',').map(MediaRange::parse) {
        let as_kind = range.param("as");
        match as_kind {
            Some("Table")
                if range.is_json() && allow_table && range.param("g") == Some("meta.k8s.io") =>
            {
                match range.param("v") {
                    Some("v1") => return Ok(Representation::Table("v1")),
                    Some("v1beta1") => return Ok(Representation::Table("v1beta1")),
                    _ => {}
                }
            }
            Some("APIGroupDiscoveryList")
                if range.is_json()
                    && allow_aggregated
                    && range.param("g") == Some("apidiscovery.k8s.io") =>
            {
                match range.param("v") {
                    Some("v2") => return Ok(Representation::Aggregated(AggregatedVersion::V2)),
                    Some("v2beta1") => {
                        return Ok(Representation::Aggregated(AggregatedVersion::V2Beta1));
                    }
                    _ => {}
                }
            }
            Some(_) => {}
            None if range.is_json() => return Ok(Representation::Json),
            None if matches!(range.essence.as_str(), "application/yaml" | "text/yaml") => {
                return Ok(Representation::Yaml);
            }
            None => {}
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (asked for {accept})"
    )))
}

/// The format of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
    /// `application/json-patch+json`.
    JsonPatch,
    /// `application/merge-patch+json`.
    MergePatch,
    /// `application/strategic-merge-patch+json`.
    StrategicMergePatch,
    /// `application/apply-patch+yaml` (server-side apply).
    ApplyPatch,
}

const OBJECT_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";
const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// The body format of a create or update (`patch == false`) or a patch (`patch == true`).
pub fn body_format(content_type: Option<&str>, patch: bool) -> Result<BodyFormat, ApiError> {
    let essence = content_type
        .map(|c| MediaRange::parse(c).essence)
        .unwrap_or_default();
    let format = match (patch, essence.as_str()) {
        (false, "application/json" | "") => Some(BodyFormat::Json),
        (false, "application/yaml" | "text/yaml") => Some(BodyFormat::Yaml),
        (false, "application/vnd.kubernetes.protobuf") => Some(BodyFormat::Protobuf),
        (true, "application/json-patch+json") => Some(BodyFormat::JsonPatch),
        (true, "application/merge-patch+json") => Some(BodyFormat::MergePatch),
        (true, "application/strategic-merge-patch+json") => Some(BodyFormat::StrategicMergePatch),
        (true, "application/apply-patch+yaml") => Some(BodyFormat::ApplyPatch),
        _ => None,
    };
    format.ok_or_else(|| {
        let accepted = if patch { PATCH_TYPES } else { OBJECT_TYPES };
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {accepted}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGG: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn negotiates_like_the_apiserver() {
        assert_eq!(
            choose(Some(AGG), false, true).unwrap(),
            Representation::Aggregated(AggregatedVersion::V2)
        );
        // kubectl 1.28 offers only v2beta1: exact matching must not hand it v2.
        let old = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            choose(Some(old), false, true).unwrap(),
            Representation::Aggregated(AggregatedVersion::V2Beta1)
        );
        assert_eq!(
            choose(Some(AGG), false, false).unwrap(),
            Representation::Json
        );
        assert_eq!(
            choose(Some(TABLE), true, false).unwrap(),
            Representation::Table("v1")
        );
        assert_eq!(
            choose(Some(TABLE), false, false).unwrap(),
            Representation::Json
        );
        assert_eq!(
            choose(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                true,
                false
            )
            .unwrap(),
            Representation::Json
        );
        assert_eq!(choose(None, true, true).unwrap(), Representation::Json);
        assert_eq!(
            choose(Some("application/json, */*"), true, true).unwrap(),
            Representation::Json
        );
        assert_eq!(
            choose(Some("application/yaml"), true, true).unwrap(),
            Representation::Yaml
        );
        assert_eq!(choose(Some("image/png"), true, true).unwrap_err().code, 406);
    }

    #[test]
    fn classifies_bodies() {
        assert_eq!(
            body_format(Some("application/json"), false).unwrap(),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some("application/strategic-merge-patch+json"), true).unwrap(),
            BodyFormat::StrategicMergePatch
        );
        assert_eq!(
            body_format(Some("application/apply-patch+yaml; charset=utf-8"), true).unwrap(),
            BodyFormat::ApplyPatch
        );
        assert_eq!(
            body_format(Some("text/plain"), false).unwrap_err().code,
            415
        );
        assert_eq!(
            body_format(Some("application/json"), true)
                .unwrap_err()
                .code,
            415
        );
    }
}
