//! The table of served resources: the built-in ones and those registered by CRDs.

use std::collections::BTreeMap;

/// How a resource answers a field selector label it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldLabels {
    /// `"x" is not a known field selector: only "metadata.name", "metadata.namespace"`
    /// (resources without conversion functions of their own).
    Default,
    /// `field label not supported: x` (pods, nodes, events, custom resources, …).
    Own,
}

/// Where the Scale subresource reads and writes replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`.
    pub spec_replicas: String,
    /// `.status.replicas`.
    pub status_replicas: String,
    /// `.status.selector` (a string) for CRDs; built-ins read `.spec.selector`.
    pub label_selector: Option<String>,
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, empty for core.
    pub group: String,
    /// Version served.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural (the path segment).
    pub plural: String,
    /// Singular.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`po`, `deploy`).
    pub short_names: Vec<String>,
    /// `status`, `scale`, `binding`, `eviction`.
    pub subresources: Vec<String>,
    /// Whether `metadata.generation` is tracked.
    pub generation: bool,
    /// Field selector labels besides `metadata.name` and `metadata.namespace`, with the
    /// JSON path each reads.
    pub fields: Vec<(String, String)>,
    /// How unknown field labels are refused.
    pub field_labels: FieldLabels,
    /// Scale subresource paths.
    pub scale: Option<ScalePaths>,
    /// The CRD name (`plural.group`) for custom resources.
    pub crd: Option<String>,
    /// The version objects are stored in (custom resources may serve several).
    pub storage_version: String,
    /// Categories (`all`).
    pub categories: Vec<String>,
}

impl ResourceInfo {
    /// The storage key shared by every version of a resource.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// Whether the resource has this subresource.
    pub fn has(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// The status-subresource name qualifier used in messages.
    pub fn qualified(&self) -> super::status::Qualified<'_> {
        super::status::Qualified { group: &self.group, resource: &self.plural }
    }
}

/// `v1` for core, `group/version` otherwise.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// Built-in and CRD-registered resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    builtin: Vec<ResourceInfo>,
    /// CRD name → the resources it serves (one per served version).
    custom: BTreeMap<String, Vec<ResourceInfo>>,
}

impl Registry {
    /// The built-in table.
    pub fn new() -> Self {
        Self { builtin: builtin(), custom: BTreeMap::new() }
    }

    /// Every served resource.
    pub fn all(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.builtin.iter().chain(self.custom.values().flatten())
    }

    /// The resource at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.all().find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Every version of the resource stored under `key`.
    pub fn by_key(&self, key: &str) -> Option<&ResourceInfo> {
        self.all().find(|r| r.key() == key)
    }

    /// Registers (or replaces) what a CRD serves.
    pub fn set_custom(&mut self, crd: &str, resources: Vec<ResourceInfo>) {
        self.custom.insert(crd.to_string(), resources);
    }

    /// Forgets a CRD's resources.
    pub fn remove_custom(&mut self, crd: &str) -> Option<Vec<ResourceInfo>> {
        self.custom.remove(crd)
    }

    /// Groups with their versions, in discovery order (built-in first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all().filter(|r| !r.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
                Some(_) => {}
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }
}

struct B {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
    generation: bool,
}

fn scale_builtin() -> ScalePaths {
    ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: None,
    }
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.iter().map(|(l, p)| (l.to_string(), p.to_string())).collect()
}

fn builtin() -> Vec<ResourceInfo> {
    const NS: bool = true;
    const CL: bool = false;
    let t = |group, version, kind, plural, namespaced, short, sub, generation| B {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        sub,
        generation,
    };
    let table = [
        t("", "v1", "Pod", "pods", NS, &["po"][..], &["status", "binding", "eviction", "log"][..], false),
        t("", "v1", "Node", "nodes", CL, &["no"], &["status"], false),
        t("", "v1", "Namespace", "namespaces", CL, &["ns"], &["status"], false),
        t("", "v1", "Service", "services", NS, &["svc"], &["status"], false),
        t("", "v1", "ConfigMap", "configmaps", NS, &["cm"], &[], false),
        t("", "v1", "Secret", "secrets", NS, &[], &[], false),
        t("", "v1", "Event", "events", NS, &["ev"], &[], false),
        t("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", NS, &["pvc"], &["status"], false),
        t("", "v1", "PersistentVolume", "persistentvolumes", CL, &["pv"], &["status"], false),
        t("", "v1", "ServiceAccount", "serviceaccounts", NS, &["sa"], &[], false),
        t("", "v1", "Endpoints", "endpoints", NS, &["ep"], &[], false),
        t("apps", "v1", "Deployment", "deployments", NS, &["deploy"], &["status", "scale"], true),
        t("apps", "v1", "StatefulSet", "statefulsets", NS, &["sts"], &["status", "scale"], true),
        t("apps", "v1", "DaemonSet", "daemonsets", NS, &["ds"], &["status"], true),
        t("apps", "v1", "ReplicaSet", "replicasets", NS, &["rs"], &["status", "scale"], true),
        t("apps", "v1", "ControllerRevision", "controllerrevisions", NS, &[], &[], false),
        t("batch", "v1", "Job", "jobs", NS, &[], &["status"], true),
        t("batch", "v1", "CronJob", "cronjobs", NS, &["cj"], &["status"], true),
        t("coordination.k8s.io", "v1", "Lease", "leases", NS, &[], &[], false),
        t("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", NS, &["pdb"], &["status"], true),
        t(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            CL,
            &[],
            &[],
            true,
        ),
        t(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            CL,
            &[],
            &[],
            true,
        ),
        t(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            CL,
            &["crd", "crds"],
            &["status"],
            true,
        ),
        t("events.k8s.io", "v1", "Event", "events", NS, &["ev"], &[], false),
        t("rbac.authorization.k8s.io", "v1", "Role", "roles", NS, &[], &[], false),
        t("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", NS, &[], &[], false),
        t("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", CL, &[], &[], false),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            CL,
            &[],
            &[],
            false,
        ),
        t("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", NS, &[], &[], false),
        t("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", CL, &["pc"], &[], true),
        t("storage.k8s.io", "v1", "StorageClass", "storageclasses", CL, &["sc"], &[], false),
    ];
    table
        .into_iter()
        .map(|b| {
            let (fields, field_labels) = builtin_fields(b.group, b.plural);
            let all = [
                "pods",
                "services",
                "deployments",
                "statefulsets",
                "daemonsets",
                "replicasets",
                "jobs",
                "cronjobs",
            ];
            ResourceInfo {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                subresources: b.sub.iter().map(|s| s.to_string()).collect(),
                generation: b.generation,
                fields,
                field_labels,
                scale: b.sub.contains(&"scale").then(scale_builtin),
                crd: None,
                storage_version: b.version.into(),
                categories: if all.contains(&b.plural) { vec!["all".into()] } else { vec![] },
            }
        })
        .collect()
}

/// The field selectors of built-in resources (kubernetes `pkg/apis/*/v1/conversion.go`).
fn builtin_fields(group: &str, plural: &str) -> (Vec<(String, String)>, FieldLabels) {
    let own = FieldLabels::Own;
    match (group, plural) {
        ("", "pods") => (
            pairs(&[
                ("spec.nodeName", "spec.nodeName"),
                ("spec.restartPolicy", "spec.restartPolicy"),
                ("spec.schedulerName", "spec.schedulerName"),
                ("spec.serviceAccountName", "spec.serviceAccountName"),
                ("spec.hostNetwork", "spec.hostNetwork"),
                ("status.phase", "status.phase"),
                ("status.podIP", "status.podIP"),
                ("status.podIPs", "status.podIP"),
                ("status.nominatedNodeName", "status.nominatedNodeName"),
            ]),
            own,
        ),
        ("", "nodes") => (pairs(&[("spec.unschedulable", "spec.unschedulable")]), own),
        ("", "namespaces") => (pairs(&[("status.phase", "status.phase")]), own),
        ("", "secrets") => (pairs(&[("type", "type")]), own),
        ("", "events") => (
            pairs(&[
                ("involvedObject.kind", "involvedObject.kind"),
                ("involvedObject.namespace", "involvedObject.namespace"),
                ("involvedObject.name", "involvedObject.name"),
                ("involvedObject.uid", "involvedObject.uid"),
                ("involvedObject.apiVersion", "involvedObject.apiVersion"),
                ("involvedObject.resourceVersion", "involvedObject.resourceVersion"),
                ("involvedObject.fieldPath", "involvedObject.fieldPath"),
                ("reason", "reason"),
                ("reportingComponent", "reportingComponent"),
                ("source", "source.component"),
                ("type", "type"),
            ]),
            own,
        ),
        ("apps", "replicasets") => (pairs(&[("status.replicas", "status.replicas")]), own),
        ("batch", "jobs") => (pairs(&[("status.successful", "status.successful")]), own),
        _ => (Vec::new(), FieldLabels::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookups() {
        let r = Registry::new();
        let pods = r.find("", "v1", "pods").unwrap();
        assert!(pods.namespaced && pods.has("binding") && pods.has("eviction"));
        let d = r.find("apps", "v1", "deployments").unwrap();
        assert_eq!(d.key(), "apps/deployments");
        assert!(d.scale.is_some() && d.generation);
        assert!(!r.find("", "v1", "nodes").unwrap().namespaced);
        assert!(r.groups().iter().any(|(g, v)| g == "batch" && v == &["v1"]));
        assert!(r.find("apps", "v2", "deployments").is_none());
    }
}
