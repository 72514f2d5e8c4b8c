//! The simulated Kubernetes API server's extension machinery: CRD structural
//! schemas ([`schema`]), admission webhook dispatch ([`admission`]) and CRD
//! conversion webhooks ([`conversion`]).

pub mod admission;
pub mod conversion;
pub mod schema;
