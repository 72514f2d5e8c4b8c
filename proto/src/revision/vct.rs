//! The CloneSet claim-template hash (`kruise.io/cloneset-volumeclaimtemplate-hash`).
//!
//! OpenKruise turns each volume claim template into a bare claim (its name and spec,
//! nothing else), sorts them by name (stable), marshals the list with Go's struct
//! marshal (fields in Go declaration order, not sorted), and hashes the Go debug
//! dump of those bytes — `([]uint8)[` + decimal bytes separated by spaces + `]` —
//! with FNV-1a. The value is the plain decimal of the 32-bit sum, and `""` when
//! there are no templates.

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::gojson::{encode, write_string};
use super::quantity::{QuantityError, canonical};
use crate::crd::stateful_set::PersistentVolumeClaimTemplate;
use crate::hash::Fnv32a;

/// The claim-template hash of `templates` (`""` when there are none).
pub fn volume_claim_templates_hash(
    templates: &[PersistentVolumeClaimTemplate],
) -> Result<String, QuantityError> {
    if templates.is_empty() {
        return Ok(String::new());
    }
    let json = claims_json(templates)?;
    let mut h = Fnv32a::default().write(b"([]uint8)[");
    for (i, b) in json.bytes().enumerate() {
        if i > 0 {
            h = h.write(b" ");
        }
        h = h.write(b.to_string().as_bytes());
    }
    Ok(h.write(b"]").sum32().to_string())
}

/// The Go struct-order JSON of the bare claims, sorted by name.
pub fn claims_json(templates: &[PersistentVolumeClaimTemplate]) -> Result<String, QuantityError> {
    let mut sorted: Vec<&PersistentVolumeClaimTemplate> = templates.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = String::from("[");
    for (i, t) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metadata\":{");
        if let Some(name) = t.metadata.name.as_deref().filter(|n| !n.is_empty()) {
            out.push_str("\"name\":");
            write_string(&mut out, name);
            out.push(',');
        }
        out.push_str("\"creationTimestamp\":null},\"spec\":");
        write_spec(&mut out, t.spec.as_ref())?;
        out.push_str(",\"status\":{}}");
    }
    out.push(']');
    Ok(out)
}

/// Writes `"key":` after a comma when needed.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Fields<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_string(self.out, key);
        self.out.push(':');
        self.out
    }

    fn string(&mut self, key: &str, value: Option<&str>, omit_empty: bool) {
        match value {
            Some(v) if !(omit_empty && v.is_empty()) => write_string(self.key(key), v),
            None if !omit_empty => self.key(key).push_str("null"),
            _ => {}
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

fn write_spec(out: &mut String, spec: Option<&PersistentVolumeClaimSpec>) -> Result<(), QuantityError> {
    let default = PersistentVolumeClaimSpec::default();
    let spec = spec.unwrap_or(&default);
    let mut f = Fields::open(out);
    if let Some(modes) = spec.access_modes.as_ref().filter(|m| !m.is_empty()) {
        let arr = Value::from(modes.clone());
        f.key("accessModes").push_str(&encode(&arr));
    }
    if let Some(sel) = &spec.selector {
        write_selector(f.key("selector"), sel);
    }
    write_resources(f.key("resources"), spec.resources.as_ref())?;
    f.string("volumeName", spec.volume_name.as_deref(), true);
    if let Some(v) = &spec.storage_class_name {
        write_string(f.key("storageClassName"), v);
    }
    if let Some(v) = &spec.volume_mode {
        write_string(f.key("volumeMode"), v);
    }
    if let Some(ds) = &spec.data_source {
        let mut g = Fields::open(f.key("dataSource"));
        g.string("apiGroup", ds.api_group.as_deref(), false);
        g.string("kind", Some(&ds.kind), false);
        g.string("name", Some(&ds.name), false);
        g.close();
    }
    if let Some(ds) = &spec.data_source_ref {
        let mut g = Fields::open(f.key("dataSourceRef"));
        g.string("apiGroup", ds.api_group.as_deref(), false);
        g.string("kind", Some(&ds.kind), false);
        g.string("name", Some(&ds.name), false);
        if let Some(ns) = &ds.namespace {
            write_string(g.key("namespace"), ns);
        }
        g.close();
    }
    if let Some(v) = &spec.volume_attributes_class_name {
        write_string(f.key("volumeAttributesClassName"), v);
    }
    f.close();
    Ok(())
}

fn write_resources(out: &mut String, res: Option<&VolumeResourceRequirements>) -> Result<(), QuantityError> {
    let mut f = Fields::open(out);
    if let Some(res) = res {
        for (key, list) in [("limits", &res.limits), ("requests", &res.requests)] {
            if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
                let mut map = serde_json::Map::new();
                for (k, q) in list {
                    map.insert(k.clone(), Value::String(canonical(&q.0)?));
                }
                f.key(key).push_str(&encode(&Value::Object(map)));
            }
        }
    }
    f.close();
    Ok(())
}

fn write_selector(out: &mut String, sel: &LabelSelector) {
    let mut f = Fields::open(out);
    if let Some(labels) = sel.match_labels.as_ref().filter(|l| !l.is_empty()) {
        let map: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        f.key("matchLabels").push_str(&encode(&Value::Object(map)));
    }
    if let Some(exprs) = sel.match_expressions.as_ref().filter(|e| !e.is_empty()) {
        let out = f.key("matchExpressions");
        out.push('[');
        for (i, e) in exprs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut g = Fields::open(out);
            g.string("key", Some(&e.key), false);
            g.string("operator", Some(&e.operator), false);
            if let Some(values) = e.values.as_ref().filter(|v| !v.is_empty()) {
                g.key("values").push_str(&encode(&Value::from(values.clone())));
            }
            g.close();
        }
        out.push(']');
    }
    f.close();
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn template(name: &str) -> PersistentVolumeClaimTemplate {
        PersistentVolumeClaimTemplate {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_owned(), Quantity("1Gi".to_owned()))].into()),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaimTemplate::default()
        }
    }

    #[test]
    fn d3_struct_order_json_and_hash() {
        // D3 is a derived vector (computed by the spec's model, not by Go).
        let t = [template("www-data")];
        assert_eq!(
            claims_json(&t).expect("json"),
            r#"[{"metadata":{"name":"www-data","creationTimestamp":null},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}},"status":{}}]"#
        );
        assert_eq!(volume_claim_templates_hash(&t).expect("hash"), "858820154");
        // A non-canonical request hashes as its canonical form.
        let mut t2 = template("www-data");
        if let Some(r) = t2.spec.as_mut().and_then(|s| s.resources.as_mut()) {
            r.requests = Some([("storage".to_owned(), Quantity("1024Mi".to_owned()))].into());
        }
        assert_eq!(volume_claim_templates_hash(&[t2]).expect("hash"), "858820154");
    }

    #[test]
    fn d4_other_name() {
        // D4 is a derived vector.
        assert_eq!(volume_claim_templates_hash(&[template("data-vol")]).expect("hash"), "4001351501");
    }

    #[test]
    fn empty_and_order() {
        assert_eq!(volume_claim_templates_hash(&[]).expect("hash"), "");
        let a = volume_claim_templates_hash(&[template("b"), template("a")]).expect("hash");
        let b = volume_claim_templates_hash(&[template("a"), template("b")]).expect("hash");
        assert_eq!(a, b);
    }

    #[test]
    fn data_source_keeps_a_null_api_group() {
        let mut t = template("x");
        if let Some(spec) = t.spec.as_mut() {
            spec.data_source = Some(k8s_openapi::api::core::v1::TypedLocalObjectReference {
                api_group: None,
                kind: "PersistentVolumeClaim".to_owned(),
                name: "src".to_owned(),
            });
            spec.storage_class_name = Some(String::new());
        }
        let json = claims_json(&[t]).expect("json");
        assert!(
            json.contains(r#""storageClassName":"","dataSource":{"apiGroup":null,"kind":"PersistentVolumeClaim","name":"src"}"#),
            "{json}"
        );
    }
}
