//! One endpoint for a kind served at several versions, as OpenKruise has for
//! StatefulSet, DaemonSet and others: the request's resource version picks the
//! handler.

use std::{fmt, sync::Arc};

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse},
};

use super::Admit;

/// Hands each request to the handler of its resource's version.
#[derive(Default)]
pub struct ByVersion {
    handlers: Vec<(String, Arc<dyn Admit>)>,
}

impl fmt::Debug for ByVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.handlers.iter().map(|(v, _)| v)).finish()
    }
}

impl ByVersion {
    /// No versions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles `version` with `handler`.
    #[must_use]
    pub fn version(mut self, version: &str, handler: Arc<dyn Admit>) -> Self {
        self.handlers.push((version.to_owned(), handler));
        self
    }
}

impl Admit for ByVersion {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let version = &req.resource.version;
        match self.handlers.iter().find(|(v, _)| v == version) {
            Some((_, handler)) => handler.admit(req),
            None => super::refused(req, 400, format!("unsupported version: {version}")),
        }
    }
}
