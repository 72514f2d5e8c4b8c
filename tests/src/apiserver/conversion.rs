//! CRD conversion webhooks.
