//! Content negotiation, as kube-apiserver does it: request bodies in JSON, YAML or (for
//! built-in kinds) protobuf; responses in the first media type of `Accept` the server
//! can produce: JSON, YAML, protobuf (built-in kinds), or a `meta.k8s.io` Table
//! (`application/json;as=Table;v=v1;g=meta.k8s.io`, what `kubectl get` asks for).

use bytes::Bytes;
use http::{Response, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use super::{
    Status,
    fields::{self, Findings},
    protobuf,
    resources::ResourceInfo,
    server::Body,
};

/// What a response is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
    /// A `meta.k8s.io/v1` (or `v1beta1`) Table in JSON.
    Table {
        /// `true` for `v1beta1`.
        beta: bool,
    },
    /// `PartialObjectMetadata` (or its list) in JSON: only `metadata`, what
    /// metadata-only watchers ask for.
    Metadata {
        /// `true` for `v1beta1`.
        beta: bool,
    },
}

/// An object as `PartialObjectMetadata`, or a list as `PartialObjectMetadataList`
/// (`Status` objects and bookmarks' metadata pass as they are).
pub fn partial_metadata(v: Value, beta: bool) -> Value {
    let api_version = if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" };
    if v["kind"] == "Status" {
        return v;
    }
    if let Some(items) = v["items"].as_array() {
        let items: Vec<Value> = items.iter().map(|i| partial_metadata(i.clone(), beta)).collect();
        return serde_json::json!({"kind": "PartialObjectMetadataList", "apiVersion": api_version,
                                  "metadata": v["metadata"], "items": items});
    }
    serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": v["metadata"]})
}

fn media_base(m: &str) -> &str {
    m.split(';').next().unwrap_or_default().trim()
}

fn param<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// The format for `accept`: the first media range that can be served for `res`
/// (protobuf only for built-in kinds; Tables only when `table_ok`, i.e. for reads).
///
/// # Errors
/// 406 when none can.
pub fn choose(accept: &str, res: Option<&ResourceInfo>, table_ok: bool) -> Result<Format, Status> {
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    for m in accept.split(',') {
        let base = media_base(m);
        let meta_group = param(m, "g") == Some("meta.k8s.io");
        let beta = param(m, "v") == Some("v1beta1");
        let as_ = param(m, "as");
        match base {
            "application/json" if as_ == Some("Table") && meta_group && table_ok => {
                return Ok(Format::Table { beta });
            }
            "application/json"
                if matches!(as_, Some("PartialObjectMetadata" | "PartialObjectMetadataList"))
                    && meta_group =>
            {
                return Ok(Format::Metadata { beta });
            }
            "application/json" | "*/*" | "application/*" if param(m, "as").is_none() => {
                return Ok(Format::Json);
            }
            "application/yaml" if param(m, "as").is_none() => return Ok(Format::Yaml),
            protobuf::MEDIA_TYPE if param(m, "as").is_none() && res.is_some_and(|r| r.crd.is_none()) => {
                return Ok(Format::Protobuf);
            }
            _ => {}
        }
    }
    Err(Status::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/yaml{}",
            if res.is_some_and(|r| r.crd.is_none()) { ", application/vnd.kubernetes.protobuf" } else { "" }
        ),
    ))
}

/// Decodes a request body by its `Content-Type`: JSON (duplicates reported in
/// `findings`), YAML, or protobuf when the body is a built-in kind (`builtin`).
///
/// # Errors
/// 415 for other media types (protobuf for custom resources), 400 for a body that
/// does not decode.
pub fn decode_body(
    content_type: &str,
    body: &[u8],
    builtin: bool,
    findings: &mut Findings,
) -> Result<Value, Status> {
    match media_base(content_type) {
        "" | "application/json" | "*/*" => fields::parse_json(body, findings),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| Status::bad_request(format!("the request body is not valid YAML: {e}"))),
        protobuf::MEDIA_TYPE if builtin => protobuf::decode(body),
        other => Err(Status::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json, application/yaml{} (got {other})",
                if builtin { ", application/vnd.kubernetes.protobuf" } else { "" }
            ),
        )),
    }
}

/// Re-encodes a JSON response (a success or a `Status`) in `format`. Tables are made by
/// the caller; here they are JSON.
pub async fn encode(resp: Response<Body>, format: Format) -> Response<Body> {
    if matches!(format, Format::Json | Format::Table { .. }) {
        return resp;
    }
    let metadata_beta = match format {
        Format::Metadata { beta } => Some(beta),
        _ => None,
    };
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await;
    let bytes = collected.to_bytes();
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Full::new(bytes).boxed());
    };
    let (ct, out) = match format {
        Format::Metadata { .. } => (
            "application/json",
            serde_json::to_vec(&partial_metadata(v, metadata_beta.unwrap_or(false))).ok(),
        ),
        Format::Yaml => ("application/yaml", serde_yaml::to_string(&v).map(String::into_bytes).ok()),
        Format::Protobuf if protobuf::encodable(&v) => (protobuf::MEDIA_TYPE, protobuf::encode(&v).ok()),
        _ => ("application/json", None),
    };
    let Some(out) = out else {
        return Response::from_parts(parts, Full::new(bytes).boxed());
    };
    parts.headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(out)).boxed())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn kubectl_accept_headers() {
        let reg = Registry::new();
        let pods = reg.find("", "v1", "pods");
        let get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(choose(get, pods, true).unwrap(), Format::Table { beta: false });
        assert_eq!(choose(get, pods, false).unwrap(), Format::Json);
        let create = "application/vnd.kubernetes.protobuf,application/json";
        assert_eq!(choose(create, pods, false).unwrap(), Format::Protobuf);
        assert_eq!(choose("", pods, false).unwrap(), Format::Json);
        let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(choose(meta, pods, true).unwrap(), Format::Metadata { beta: false });
        let list = json!({"kind": "PodList", "metadata": {"resourceVersion": "3"},
                          "items": [{"kind": "Pod", "metadata": {"name": "p"}, "spec": {}}]});
        let partial = partial_metadata(list, false);
        assert_eq!(partial["kind"], "PartialObjectMetadataList");
        assert_eq!(
            partial["items"][0],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                               "metadata": {"name": "p"}})
        );
        assert_eq!(choose("text/html", pods, false).unwrap_err().code, 406);
        let mut cr = pods.unwrap().clone();
        cr.crd = Some("xs.example.com".into());
        assert_eq!(
            choose(create, Some(&cr), false).unwrap(),
            Format::Json,
            "no protobuf for custom resources"
        );
    }
}
