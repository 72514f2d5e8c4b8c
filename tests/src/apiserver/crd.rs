//! CustomResourceDefinitions: what they serve, and the status the real server sets.

use serde_json::{Value, json};

use super::{
    Status,
    resources::{FieldLabels, ResourceInfo, ScalePaths},
    store::{name_of, now},
};

fn invalid(name: &str, field: &str, value: &Value, detail: &str) -> Status {
    Status::invalid(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        name,
        vec![Status::invalid_value(field, value, detail)],
    )
}

/// The resources a CRD serves (one per served version).
///
/// # Errors
/// 422 Invalid when the name, scope or versions are wrong.
pub fn resources_of(crd: &Value) -> Result<Vec<ResourceInfo>, Status> {
    let name = name_of(crd);
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if plural.is_empty() || kind.is_empty() {
        return Err(Status::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            vec![Status::required("spec.names.plural", "")],
        ));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            name,
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(invalid(
                name,
                "spec.scope",
                &json!(other),
                "supported values: \"Cluster\", \"Namespaced\"",
            ));
        }
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage: Vec<&str> =
        versions.iter().filter(|v| v["storage"] == true).filter_map(|v| v["name"].as_str()).collect();
    if storage.len() != 1 {
        return Err(invalid(
            name,
            "spec.versions",
            &json!(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
    };
    let mut out = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == true) {
        let subs = &v["subresources"];
        let mut subresources = Vec::new();
        if subs.get("status").is_some() {
            subresources.push("status".to_string());
        }
        let scale = subs.get("scale").map(|s| ScalePaths {
            spec_replicas: s["specReplicasPath"].as_str().unwrap_or(".spec.replicas").into(),
            status_replicas: s["statusReplicasPath"].as_str().unwrap_or(".status.replicas").into(),
            label_selector: s["labelSelectorPath"].as_str().map(String::from),
        });
        if scale.is_some() {
            subresources.push("scale".to_string());
        }
        let fields = v["selectableFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["jsonPath"].as_str())
            .map(|p| {
                let p = p.trim_start_matches('.');
                (p.to_string(), p.to_string())
            })
            .collect();
        out.push(ResourceInfo {
            group: group.into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: names["singular"].as_str().map_or_else(|| kind.to_lowercase(), String::from),
            namespaced,
            short_names: list(&names["shortNames"]),
            subresources,
            generation: true,
            fields,
            field_labels: FieldLabels::Own,
            scale,
            crd: Some(name.into()),
            storage_version: storage[0].into(),
            categories: list(&names["categories"]),
        });
    }
    Ok(out)
}

/// Sets what the real server's controllers set soon after a CRD is written:
/// `NamesAccepted` and `Established` conditions, `acceptedNames`, `storedVersions`.
pub fn set_status(crd: &mut Value, old_status: Option<&Value>) {
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let mut stored: Vec<Value> =
        old_status.and_then(|s| s["storedVersions"].as_array().cloned()).unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let mut accepted = crd["spec"]["names"].clone();
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", accepted["kind"].as_str().unwrap_or_default()));
    }
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(accepted["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    let t = now();
    let cond = |ty: &str, reason: &str, msg: &str| json!({"type": ty, "status": "True", "lastTransitionTime": t, "reason": reason, "message": msg});
    crd["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.ex.io"}, "spec": {"group": "ex.io", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {},
                  "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                 "selectableFields": [{"jsonPath": ".spec.color"}]}]}})
    }

    #[test]
    fn served_versions() {
        let rs = resources_of(&crd()).unwrap();
        assert_eq!(rs.len(), 2);
        assert!(rs.iter().all(|r| r.storage_version == "v1" && r.namespaced));
        assert!(rs[1].has("status") && rs[1].scale.as_ref().unwrap().spec_replicas == ".spec.size");
        assert_eq!(rs[1].fields, vec![("spec.color".to_string(), "spec.color".to_string())]);
        let mut bad = crd();
        bad["metadata"]["name"] = json!("nope");
        assert_eq!(resources_of(&bad).unwrap_err().code, 422);
        let mut c = crd();
        set_status(&mut c, None);
        assert_eq!(c["status"]["conditions"][1]["type"], "Established");
        assert_eq!(c["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
    }
}
