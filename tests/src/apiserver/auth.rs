//! Static bearer tokens mapped to users, as kube-apiserver's `--token-auth-file`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The authenticated user of a request (`authentication.k8s.io/v1` `UserInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `system:admin`, `system:node:n1`, …
    pub username: String,
    /// A stable id.
    #[serde(default)]
    pub uid: String,
    /// `system:masters`, `system:nodes`, … (`system:authenticated` is added to every user).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra attributes, such as a node agent's node name.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The cluster admin.
    pub fn admin() -> Self {
        Self {
            username: "system:admin".into(),
            uid: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    /// A node's kubelet or agent: `system:node:<node>` in `system:nodes`, the node name in
    /// `extra["stevedore.dev/node-name"]`.
    pub fn node(node: &str) -> Self {
        Self {
            username: format!("system:node:{node}"),
            uid: format!("node-{node}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            extra: BTreeMap::from([("stevedore.dev/node-name".into(), vec![node.into()])]),
        }
    }
}

impl UserInfo {
    /// The node agent's service account (`stevedore-system/stevedore-agent`) as
    /// kube-apiserver (1.30 and later) authenticates it: with a token bound to the
    /// agent's pod on `node` (the node's name in
    /// `extra["authentication.kubernetes.io/node-name"]`), or (`None`) with a token
    /// bound to no pod.
    pub fn agent_service_account(node: Option<&str>) -> Self {
        let mut extra = BTreeMap::new();
        if let Some(node) = node {
            extra.insert("authentication.kubernetes.io/node-name".to_owned(), vec![node.to_owned()]);
            extra.insert(
                "authentication.kubernetes.io/pod-name".to_owned(),
                vec![format!("stevedore-agent-{node}")],
            );
        }
        Self {
            username: "system:serviceaccount:stevedore-system:stevedore-agent".into(),
            uid: "agent-sa-uid".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:stevedore-system".into(),
                "system:authenticated".into(),
            ],
            extra,
        }
    }
}

/// Token → user.
#[derive(Debug, Clone, Default)]
pub struct Tokens(HashMap<String, UserInfo>);

impl Tokens {
    /// Adds or replaces one token.
    pub fn insert(&mut self, token: impl Into<String>, user: UserInfo) {
        self.0.insert(token.into(), user);
    }

    /// The user of an `Authorization` header value, if the token is known.
    pub fn authenticate(&self, header: Option<&str>) -> Option<UserInfo> {
        let token = header?.strip_prefix("Bearer ")?.trim();
        self.0.get(token).cloned()
    }

    /// Reads a JSON file `{"<token>": {"username": …, "groups": […], "extra": {…}}, …}`.
    ///
    /// # Errors
    /// The file cannot be read or is not that shape.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        Ok(Self(serde_json::from_str(text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut t = Tokens::default();
        t.insert("n1", UserInfo::node("n1"));
        assert_eq!(t.authenticate(Some("Bearer n1")).unwrap().username, "system:node:n1");
        assert!(t.authenticate(Some("Bearer nope")).is_none());
        assert!(t.authenticate(Some("Basic n1")).is_none());
        assert!(t.authenticate(None).is_none());
        let f = Tokens::from_json(r#"{"tk": {"username": "u", "extra": {"k": ["v"]}}}"#).unwrap();
        assert_eq!(f.authenticate(Some("Bearer tk")).unwrap().extra["k"], vec!["v".to_string()]);
    }
}
