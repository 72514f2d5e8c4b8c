//! CRI clients of other gRPC stacks, for the transparency suite: grpcio (gRPC C-core,
//! from PyPI, with its default `:authority`), grpc-go (the stack of kubelet and
//! crictl, built offline from Debian's packages), tonic, and a raw HTTP/2 client of
//! our own that sends unusual but legal frames ([`raw`]).
//!
//! Each carries messages as bytes: the [`scenario`] encodes requests and decodes
//! answers with the CRI types, so every stack runs the same steps and what differs is
//! only the HTTP/2 and gRPC machinery under test. The Python and Go clients are child
//! processes driven by JSON lines on stdin/stdout; their builds (a venv with grpcio,
//! a Go binary) are cached once per machine under `/var/tmp/stevedore-testbed/`,
//! keyed by their source. A missing prerequisite is an error naming the package.

pub mod raw;
pub mod scenario;

use std::{
    collections::HashMap,
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use bytes::{Buf as _, BufMut as _, Bytes};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

use crate::testbed::procs;

const CACHE_BASE: &str = "/var/tmp/stevedore-testbed";
/// The grpcio release the Python client installs from PyPI.
pub const GRPCIO_VERSION: &str = "1.85.3";
const PYTHON_CLIENT: &str = include_str!("foreign/client.py");
const GO_CLIENT: &str = include_str!("foreign/client.go");
/// Debian's grpc-go and its dependencies, for a GOPATH build without modules.
const GOPATH: &str = "/usr/share/gocode";

/// A gRPC stack the suite drives CRI with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// Python grpcio (C-core), default authority (the socket path, percent-encoded).
    Grpcio,
    /// grpc-go, dialled as kubelet dials (authority `localhost`).
    GrpcGo,
    /// tonic, as the proxy's own tests and the agent use it.
    Tonic,
    /// Our raw HTTP/2 client: padding, CONTINUATION, large headers, odd authorities.
    RawH2,
}

/// The outcome of a unary call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The gRPC status code.
    pub code: i32,
    /// The status message.
    pub message: String,
    /// The answer's message, when the call succeeded.
    pub resp: Option<Bytes>,
}

/// What a server stream gave next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A message.
    Msg(Bytes),
    /// Nothing within the wait.
    Nothing,
    /// The stream ended with this status.
    End {
        /// The gRPC status code.
        code: i32,
        /// The status message.
        message: String,
    },
}

/// A client of one stack, connected to one socket.
#[derive(Debug)]
pub struct Client {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Process(LineProcess),
    Tonic { grpc: tonic::client::Grpc<Channel>, streams: HashMap<u32, TonicStream> },
    Raw(raw::RawClient),
}

impl Client {
    /// Connects a client of `stack` to the CRI socket at `socket`.
    ///
    /// # Errors
    /// The client cannot be built or started (missing packages are named).
    pub async fn connect(stack: Stack, socket: &Path) -> anyhow::Result<Client> {
        let inner = match stack {
            Stack::Grpcio => {
                let (python, script) = tokio::task::spawn_blocking(python_client).await??;
                let mut cmd = tokio::process::Command::new(python);
                cmd.arg(script).arg(format!("unix://{}", socket.display()));
                Inner::Process(LineProcess::start("grpcio client", cmd)?)
            }
            Stack::GrpcGo => {
                let bin = tokio::task::spawn_blocking(go_client).await??;
                let mut cmd = tokio::process::Command::new(bin);
                cmd.arg(socket);
                Inner::Process(LineProcess::start("grpc-go client", cmd)?)
            }
            Stack::Tonic => {
                let ch = crate::cri::connect(socket).await?;
                Inner::Tonic { grpc: tonic::client::Grpc::new(ch), streams: HashMap::new() }
            }
            Stack::RawH2 => Inner::Raw(raw::RawClient::connect(socket).await?),
        };
        Ok(Client { inner })
    }

    /// One unary call of `path` with `metadata` and a deadline.
    ///
    /// # Errors
    /// The client itself failed (not a gRPC error status, which is a [`Reply`]).
    pub async fn unary(
        &mut self,
        path: &str,
        metadata: &[(&str, &str)],
        req: Bytes,
    ) -> anyhow::Result<Reply> {
        match &mut self.inner {
            Inner::Process(p) => {
                let v = p
                    .ask(json!({ "op": "unary", "path": path, "req": B64.encode(&req),
                    "metadata": metadata, "timeout": CALL_TIMEOUT.as_secs_f64() }))
                    .await?;
                reply(&v)
            }
            Inner::Tonic { grpc, .. } => {
                grpc.ready().await?;
                let path: http::uri::PathAndQuery = path.parse()?;
                match grpc.unary(tonic_request(req, metadata)?, path, BytesCodec).await {
                    Ok(r) => Ok(Reply { code: 0, message: String::new(), resp: Some(r.into_inner()) }),
                    Err(s) => {
                        Ok(Reply { code: s.code() as i32, message: s.message().to_owned(), resp: None })
                    }
                }
            }
            Inner::Raw(r) => r.unary(path, metadata, req).await,
        }
    }

    /// Starts server stream `id` of `path`.
    ///
    /// # Errors
    /// The client failed to start it.
    pub async fn open(
        &mut self,
        id: u32,
        path: &str,
        metadata: &[(&str, &str)],
        req: Bytes,
    ) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::Process(p) => {
                p.ask(json!({ "op": "open", "id": id, "path": path, "req": B64.encode(&req),
                    "metadata": metadata, "timeout": CALL_TIMEOUT.as_secs_f64() }))
                    .await?;
            }
            Inner::Tonic { grpc, streams } => {
                let path: http::uri::PathAndQuery = path.parse()?;
                let request = tonic_request(req, metadata)?;
                // a server may send its response head only with its first message:
                // the call runs in a task of its own that hands over what arrives
                let mut grpc = grpc.clone();
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    let end = |s: Status| StreamEvent::End {
                        code: s.code() as i32,
                        message: s.message().to_owned(),
                    };
                    if let Err(e) = grpc.ready().await {
                        return drop(tx.send(end(Status::unavailable(e.to_string()))));
                    }
                    let mut stream = match grpc.server_streaming(request, path, BytesCodec).await {
                        Ok(r) => r.into_inner(),
                        Err(s) => return drop(tx.send(end(s))),
                    };
                    loop {
                        let event = match stream.message().await {
                            Ok(Some(m)) => StreamEvent::Msg(m),
                            Ok(None) => StreamEvent::End { code: 0, message: String::new() },
                            Err(s) => end(s),
                        };
                        let last = matches!(event, StreamEvent::End { .. });
                        if tx.send(event).is_err() || last {
                            return;
                        }
                    }
                });
                streams.insert(id, TonicStream { task, events: rx });
            }
            Inner::Raw(r) => r.open(id, path, metadata, req).await?,
        }
        Ok(())
    }

    /// The next event of stream `id`, waiting at most `wait` for a message.
    ///
    /// # Errors
    /// The client failed.
    pub async fn next(&mut self, id: u32, wait: Duration) -> anyhow::Result<StreamEvent> {
        match &mut self.inner {
            Inner::Process(p) => {
                let v = p.ask(json!({ "op": "next", "id": id, "wait": wait.as_secs_f64() })).await?;
                if v.get("none").is_some() {
                    return Ok(StreamEvent::Nothing);
                }
                if v.get("end").is_some() {
                    let r = reply(&v)?;
                    return Ok(StreamEvent::End { code: r.code, message: r.message });
                }
                Ok(StreamEvent::Msg(b64(&v["msg"])?))
            }
            Inner::Tonic { streams, .. } => {
                let s = streams.get_mut(&id).context("no such stream")?;
                match tokio::time::timeout(wait, s.events.recv()).await {
                    Err(_) => Ok(StreamEvent::Nothing),
                    Ok(Some(event)) => Ok(event),
                    Ok(None) => bail!("the stream's task ended without a status"),
                }
            }
            Inner::Raw(r) => r.next(id, wait).await,
        }
    }

    /// Cancels stream `id` (RST_STREAM CANCEL on the wire).
    ///
    /// # Errors
    /// The client failed.
    pub async fn cancel(&mut self, id: u32) -> anyhow::Result<()> {
        match &mut self.inner {
            Inner::Process(p) => {
                p.ask(json!({ "op": "cancel", "id": id })).await?;
            }
            Inner::Tonic { streams, .. } => {
                if let Some(s) = streams.remove(&id) {
                    // dropping the call resets its stream
                    s.task.abort();
                }
            }
            Inner::Raw(r) => r.cancel(id).await?,
        }
        Ok(())
    }
}

/// Every call's deadline (sent as `grpc-timeout`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A tonic server stream, read by a task of its own.
#[derive(Debug)]
struct TonicStream {
    task: tokio::task::JoinHandle<()>,
    events: tokio::sync::mpsc::UnboundedReceiver<StreamEvent>,
}

fn tonic_request(req: Bytes, metadata: &[(&str, &str)]) -> anyhow::Result<tonic::Request<Bytes>> {
    let mut r = tonic::Request::new(req);
    r.set_timeout(CALL_TIMEOUT);
    for (k, v) in metadata {
        r.metadata_mut().append(tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes())?, v.parse()?);
    }
    Ok(r)
}

fn b64(v: &Value) -> anyhow::Result<Bytes> {
    match v {
        Value::Null => Ok(Bytes::new()),
        Value::String(s) => Ok(B64.decode(s)?.into()),
        other => bail!("expected base64, got {other}"),
    }
}

fn reply(v: &Value) -> anyhow::Result<Reply> {
    if let Some(e) = v.get("error") {
        bail!("client error: {e}");
    }
    let code = v["code"].as_i64().with_context(|| format!("no code in {v}"))? as i32;
    let message = v["message"].as_str().unwrap_or_default().to_owned();
    let resp = if code == 0 { Some(b64(&v["resp"])?) } else { None };
    Ok(Reply { code, message, resp })
}

/// A child process answering one JSON line per JSON line.
#[derive(Debug)]
struct LineProcess {
    name: &'static str,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl LineProcess {
    fn start(name: &'static str, mut cmd: tokio::process::Command) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting the {name}"))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Self { name, child, stdin, stdout })
    }

    async fn ask(&mut self, req: Value) -> anyhow::Result<Value> {
        let mut line = req.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(10), self.stdout.next_line())
            .await
            .with_context(|| format!("the {} did not answer {req}", self.name))??;
        let Some(answer) = answer else {
            let status = self.child.try_wait()?;
            bail!("the {} exited ({status:?}) before answering {req}", self.name);
        };
        let v: Value = serde_json::from_str(&answer).with_context(|| format!("{}: {answer}", self.name))?;
        if let Some(e) = v.get("error") {
            bail!("the {} failed on {req}: {e}", self.name);
        }
        Ok(v)
    }
}

/// Carries messages as they are.
#[derive(Debug, Clone, Copy, Default)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// FNV-1a 64 of the inputs: a cache key stable across Rust releases.
fn key(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Builds `dir` once per machine: under a lock, in a scratch dir renamed into place.
fn cached(dir: &Path, build: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<PathBuf> {
    let done = dir.join("complete");
    if done.is_file() {
        return Ok(dir.to_owned());
    }
    fs::create_dir_all(CACHE_BASE).with_context(|| format!("creating {CACHE_BASE}"))?;
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if done.is_file() {
        return Ok(dir.to_owned());
    }
    let work = dir.with_extension(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(&work)?;
    build(&work)?;
    fs::write(work.join("complete"), "")?;
    fs::rename(&work, dir)?;
    Ok(dir.to_owned())
}

/// The venv's python and the client script. Blocking.
fn python_client() -> anyhow::Result<(PathBuf, PathBuf)> {
    let python = Path::new("/usr/bin/python3");
    if !python.is_file() {
        bail!("the grpcio client needs /usr/bin/python3: apt-get install python3 python3-venv");
    }
    let dir = Path::new(CACHE_BASE).join(format!("grpcio-{GRPCIO_VERSION}-{}", key(&[PYTHON_CLIENT])));
    let dir = cached(&dir, |work| {
        let venv = procs::run(Command::new(python).args(["-m", "venv"]).arg(work.join("venv")));
        venv.context(
            "creating a Python venv failed: apt-get install python3-venv (or run tests/bed/install-deps.sh)",
        )?;
        eprintln!("foreign clients: installing grpcio=={GRPCIO_VERSION} from PyPI");
        procs::run(
            Command::new(work.join("venv/bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                ])
                .arg(format!("grpcio=={GRPCIO_VERSION}")),
        )
        .with_context(|| format!("pip could not install grpcio=={GRPCIO_VERSION} from PyPI"))?;
        fs::write(work.join("client.py"), PYTHON_CLIENT)?;
        Ok(())
    })?;
    Ok((dir.join("venv/bin/python"), dir.join("client.py")))
}

/// The grpc-go client binary, built offline in GOPATH mode. Blocking.
fn go_client() -> anyhow::Result<PathBuf> {
    let go = procs::which("go").context("the grpc-go client needs Go: apt-get install golang-go")?;
    if !Path::new(GOPATH).join("src/google.golang.org/grpc/clientconn.go").is_file() {
        bail!(
            "the grpc-go client needs Debian's grpc-go in {GOPATH}: apt-get install golang-google-grpc-dev"
        );
    }
    let version = procs::run(Command::new(&go).arg("version"))?;
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let dir = Path::new(CACHE_BASE).join(format!("grpc-go-client-{}", key(&[GO_CLIENT, &version])));
    let dir = cached(&dir, |work| {
        eprintln!("foreign clients: building the grpc-go client");
        fs::write(work.join("client.go"), GO_CLIENT)?;
        procs::run(
            Command::new(&go)
                .current_dir(work)
                .args(["build", "-o", "client", "client.go"])
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOCACHE", work.join("gocache"))
                .env("GOFLAGS", "")
                .env("CGO_ENABLED", "0"),
        )
        .context("building the grpc-go client failed (needs golang-go and golang-google-grpc-dev)")?;
        fs::remove_dir_all(work.join("gocache"))?;
        Ok(())
    })?;
    Ok(dir.join("client"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_stable() {
        assert_eq!(key(&["a"]), key(&["a"]));
        assert_ne!(key(&["a", "b"]), key(&["ab"]));
    }
}
