//! Admission webhook dispatch.
