//! Stevedore test beds.
//!
//! - [`cri`]: tonic channels and CRI clients over a unix socket.
//! - [`testbed`]: a real containerd (CRI plugin) with a local registry and locally
//!   built images, one isolated instance per test.

pub mod cri;
pub mod testbed;
