//! Stevedore test beds.
//!
//! - [`apiserver`]: a simulated Kubernetes API server that kube-rs and kubectl use unchanged.
//! - [`cluster`]: the simulator or, with `STEVEDORE_E2E_CLUSTER=kubeconfig`, a real
//!   cluster, and a fresh namespace per test.
//! - [`clients`]: kubectl and helm as a user runs them against a cluster.
//! - [`cri`]: tonic channels and CRI clients over a unix socket.
//! - [`testbed`]: a real containerd (CRI plugin) with a local registry and locally
//!   built images, one isolated instance per test.
//! - [`pods`]: CRI requests shaped as kubelet sends them; [`pod_objects`]: pods as
//!   API objects with a kubelet's status, for suites without a kubelet.
//! - [`kubelet`], [`scheduler`]: a simulated kubelet (CRI or hollow) and scheduler
//!   for the simulated API server.
//! - [`foreign`]: CRI clients of other gRPC stacks (grpcio, grpc-go, tonic, raw
//!   HTTP/2) and the transparency scenario they run.
//! - [`proxy_process`], [`controller_process`]: the real binaries as child processes;
//!   [`relay`]: socat between two unix sockets, the benchmark's baseline.
//! - [`mod@bench`], [`demo`]: the benchmark and the README's demo.

pub mod agent_process;
pub mod apiserver;
pub mod bench;
pub mod bins;
pub mod clients;
pub mod cluster;
pub mod controller_process;
pub mod cri;
pub mod demo;
pub mod foreign;
pub mod kubelet;
pub mod pod_objects;
pub mod pods;
pub mod proxy_process;
pub mod registry_front;
pub mod relay;
pub mod scheduler;
pub mod stack;
pub mod testbed;
pub mod transcript;
pub mod wait;

/// The allocator of this crate's binaries and suites. The simulated API server, the
/// hollow fleet and the in-process agents allocate and free JSON at a high rate: at
/// 1,000 nodes glibc's malloc took half of the benchmark's CPU (`malloc_consolidate`,
/// `unlink_chunk` and arena locks, in `perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
