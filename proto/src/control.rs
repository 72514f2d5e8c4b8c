//! The CRI proxy's control API (`stevedore.control.v1`, defined in
//! `proto/stevedore/control/v1/control.proto`): messages, the client the agent uses
//! and the server trait the proxy implements. The generated code is committed; the
//! `bootstrap` test keeps it current.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!("gen/stevedore.control.v1.rs");
}

pub use generated::*;
