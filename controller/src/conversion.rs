//! CRD conversion between v1alpha1 and v1beta1 (the hub is v1beta1, as in
//! OpenKruise), one [`Convert`] per kind, registered in [`register`].
//!
//! Kinds whose two versions have the same fields (BroadcastJob, ImagePullJob,
//! ImageListPullJob) convert through their typed forms: the object is read as the
//! version it is in and written as the desired one, so a field either version lacks
//! is an error, never silently dropped.
//!
//! Kinds whose versions differ (Advanced StatefulSet and DaemonSet, SidecarSet,
//! AdvancedCronJob, NodeImage) convert through [`Hub`]: the object is read as its
//! version's type and the other version's is built field by field ([`Versions`]),
//! with OpenKruise v1.9.0's rules for what one version cannot express: carried in a
//! label or an annotation, mapped to an equivalent, dropped, or refused.

mod advanced_cron_job;
mod daemon_set;
mod node_image;
mod sidecar_set;
mod stateful_set;

use std::{marker::PhantomData, sync::Arc};

use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use stevedore_proto::crd::{APPS_GROUP, broadcast_job, image_list_pull_job, image_pull_job};

pub use self::{
    advanced_cron_job::AdvancedCronJob,
    daemon_set::{DaemonSet, PROGRESSIVE_CREATE_POD_ANNOTATION},
    node_image::NodeImage,
    sidecar_set::{CUSTOM_VERSION_LABEL, METADATA_NAME_LABEL, SidecarSet},
    stateful_set::StatefulSet,
};
use crate::webhook::{Convert, Registry};

/// Registers every kind's converter.
pub fn register(registry: &mut Registry) {
    registry.conversion(APPS_GROUP, "StatefulSet", Arc::new(Hub::<StatefulSet>::new()));
    registry.conversion(APPS_GROUP, "DaemonSet", Arc::new(Hub::<DaemonSet>::new()));
    registry.conversion(APPS_GROUP, "SidecarSet", Arc::new(Hub::<SidecarSet>::new()));
    registry.conversion(APPS_GROUP, "AdvancedCronJob", Arc::new(Hub::<AdvancedCronJob>::new()));
    registry.conversion(APPS_GROUP, "NodeImage", Arc::new(Hub::<NodeImage>::new()));
    registry.conversion(
        APPS_GROUP,
        "BroadcastJob",
        Arc::new(
            SameFields::<broadcast_job::v1alpha1::BroadcastJob, broadcast_job::v1beta1::BroadcastJob>::new(),
        ),
    );
    registry.conversion(
        APPS_GROUP,
        "ImagePullJob",
        Arc::new(
            SameFields::<image_pull_job::v1alpha1::ImagePullJob, image_pull_job::v1beta1::ImagePullJob>::new(
            ),
        ),
    );
    registry.conversion(
        APPS_GROUP,
        "ImageListPullJob",
        Arc::new(SameFields::<
            image_list_pull_job::v1alpha1::ImageListPullJob,
            image_list_pull_job::v1beta1::ImageListPullJob,
        >::new()),
    );
}

/// Converts a kind whose versions `A` and `B` have the same fields.
#[derive(Debug)]
pub struct SameFields<A, B>(PhantomData<fn() -> (A, B)>);

impl<A, B> SameFields<A, B> {
    /// The converter.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<A, B> Default for SameFields<A, B> {
    fn default() -> Self {
        Self::new()
    }
}

type Typed = dyn Fn(Value) -> Result<Value, String>;

/// Reads `object` as `S` and writes it as `T`.
fn via<S, T>(object: Value) -> Result<Value, String>
where
    S: DeserializeOwned + Serialize + Resource<DynamicType = ()>,
    T: DeserializeOwned + Serialize + Resource<DynamicType = ()>,
{
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let source: S = serde_json::from_value(object)
        .map_err(|e| format!("{} {name:?} is not a valid {}: {e}", S::kind(&()), S::api_version(&())))?;
    let mut value = serde_json::to_value(&source).map_err(|e| e.to_string())?;
    value["apiVersion"] = Value::from(T::api_version(&()).into_owned());
    let target: T = serde_json::from_value(value).map_err(|e| {
        format!("{} {name:?} cannot be expressed in {}: {e}", T::kind(&()), T::api_version(&()))
    })?;
    serde_json::to_value(&target).map_err(|e| e.to_string())
}

impl<A, B> Convert for SameFields<A, B>
where
    A: DeserializeOwned + Serialize + Resource<DynamicType = ()> + 'static,
    B: DeserializeOwned + Serialize + Resource<DynamicType = ()> + 'static,
{
    fn convert(&self, object: Value, desired: &str) -> Result<Value, String> {
        let from = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let (a, b) = (A::api_version(&()), B::api_version(&()));
        let step: &Typed = match (from.as_str(), desired) {
            (f, d) if f == d => return Ok(object),
            (f, d) if f == a && d == b => &via::<A, B>,
            (f, d) if f == b && d == a => &via::<B, A>,
            _ => return Err(format!("{} cannot be converted from {from:?} to {desired:?}", A::kind(&()))),
        };
        step(object)
    }
}

/// Why a v1beta1 object has no v1alpha1 form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct Refusal {
    /// The field's path, e.g. `spec.template.imageListPullJobTemplate`.
    pub field: &'static str,
    /// Why it cannot be expressed.
    pub reason: &'static str,
}

/// Why one step between the versions failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The target version cannot express the object.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The fields the versions share did not read as the target's (`copied`).
    #[error(transparent)]
    Copy(#[from] serde_json::Error),
}

/// One version's struct built from the other's, for structs whose fields share
/// names and types: through JSON, so a field only the target has is left unset and
/// one only the source has is dropped. Each kind then sets by hand what its
/// versions do differently.
fn copied<S: Serialize, T: DeserializeOwned>(source: S) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(source)?)
}

/// One kind's two versions, and the field-by-field conversion between them.
pub trait Versions: 'static {
    /// The v1alpha1 type.
    type Alpha: DeserializeOwned + Serialize + Resource<DynamicType = ()>;
    /// The v1beta1 type (the hub).
    type Beta: DeserializeOwned + Serialize + Resource<DynamicType = ()>;

    /// Up to the hub; every v1alpha1 object has a v1beta1 form (never
    /// [`StepError::Refused`]).
    fn to_beta(alpha: Self::Alpha) -> Result<Self::Beta, StepError>;

    /// Down from the hub, or the field v1alpha1 cannot express.
    fn to_alpha(beta: Self::Beta) -> Result<Self::Alpha, StepError>;
}

/// Why an object was not converted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither version, or not this kind's.
    #[error("{kind} cannot be converted from {from:?} to {to:?}")]
    Versions {
        /// The kind.
        kind: String,
        /// The object's apiVersion.
        from: String,
        /// The desired apiVersion.
        to: String,
    },
    /// The object does not parse as its version.
    #[error("{kind} {name:?} is not a valid {api_version}: {source}")]
    Invalid {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The object's apiVersion.
        api_version: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The desired version cannot express the object.
    #[error("{kind} {name:?} cannot be expressed in {api_version}: {refusal}")]
    Refused {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The desired apiVersion.
        api_version: String,
        /// The field, and why.
        #[source]
        refusal: Refusal,
    },
    /// The converted object does not serialize.
    #[error("failed to write {kind} {name:?}: {source}")]
    Write {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The serialization error.
        #[source]
        source: serde_json::Error,
    },
}

/// Converts a kind whose versions differ, through its [`Versions`].
#[derive(Debug)]
pub struct Hub<V>(PhantomData<fn() -> V>);

impl<V> Hub<V> {
    /// The converter.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<V> Default for Hub<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Versions> Hub<V> {
    /// Converts `object` to `desired` (`group/version`).
    pub fn try_convert(&self, object: Value, desired: &str) -> Result<Value, Error> {
        let kind = V::Beta::kind(&()).into_owned();
        let from = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let (alpha, beta) = (V::Alpha::api_version(&()), V::Beta::api_version(&()));
        let invalid = |source| Error::Invalid {
            kind: kind.clone(),
            name: name.clone(),
            api_version: from.clone(),
            source,
        };
        let write = |source| Error::Write { kind: kind.clone(), name: name.clone(), source };
        let step = |e| match e {
            StepError::Refused(refusal) => Error::Refused {
                kind: kind.clone(),
                name: name.clone(),
                api_version: desired.to_owned(),
                refusal,
            },
            StepError::Copy(source) => write(source),
        };
        if from == desired && (from == alpha || from == beta) {
            return Ok(object);
        }
        if from == alpha && desired == beta {
            let source: V::Alpha = serde_json::from_value(object).map_err(invalid)?;
            serde_json::to_value(V::to_beta(source).map_err(step)?).map_err(write)
        } else if from == beta && desired == alpha {
            let source: V::Beta = serde_json::from_value(object).map_err(invalid)?;
            serde_json::to_value(V::to_alpha(source).map_err(step)?).map_err(write)
        } else {
            Err(Error::Versions { kind, from, to: desired.to_owned() })
        }
    }
}

impl<V: Versions> Convert for Hub<V> {
    fn convert(&self, object: Value, desired: &str) -> Result<Value, String> {
        self.try_convert(object, desired).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
