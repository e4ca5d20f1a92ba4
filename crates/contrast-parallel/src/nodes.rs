//! The nodes of a group: processes, on one machine or several, that combine their peers'
//! tensors over Burn's `burn-communication` (a websocket server per node and its tensor data
//! service).
//!
//! Within a node, burn-collective's local all-reduce sums the peers' tensors. Across nodes,
//! every node's first peer *exposes* its node's sum under the operation's number, downloads the
//! other nodes' sums and adds them up in node order (the same additions in the same order on
//! every node), and hands the total to the node's other peers in a second local all-reduce (the
//! total from the first peer, zeros from the others): every peer of the group holds the same
//! values.
//!
//! A process keeps one link per layout for its whole life ([`link`]): a process that forms
//! several groups in turn (one per seed) reuses its server, so that a node that starts the next
//! group early meets the others on the same server rather than on one about to close. Transfer
//! ids carry the group's number, the operation's and the piece's: `group << 48 | op << 12 |
//! piece`.
//!
//! burn-collective's own global all-reduce is not used: in 0.21.0 it hangs on its second
//! operation (docs/multi-device.md, *Several machines*).

use std::any::Any;
use std::collections::BTreeSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use burn_communication::data_service::{TensorDataServer, TensorDataService};
use burn_communication::websocket::{WebSocket, WsServer};
use burn_communication::{Address, ProtocolServer};
use tokio_util::sync::CancellationToken;

use crate::group::{Failure, host_port};

/// This process's link to the other nodes: a websocket server exposing this node's sums, the
/// clients that download the others', and the runtime they run on.
pub(crate) struct NodeLink<I: Backend> {
    runtime: tokio::runtime::Runtime,
    service: Arc<TensorDataService<I, WebSocket>>,
    /// Every node's address, in rank order (`ws://host:port`).
    addresses: Vec<Address>,
    /// Every node in words, in rank order.
    names: Vec<String>,
    /// The `--node-addresses` it serves.
    layout: Vec<String>,
    rank: usize,
    cancel: CancellationToken,
    /// Nodes whose sum this node's first peer is waiting for.
    waiting: Arc<Mutex<BTreeSet<usize>>>,
    /// The current group's number (from 1) and its operations so far.
    counter: Mutex<(u64, u64)>,
}

/// Values per exposed piece: a websocket frame holds at most 512 MiB (burn-communication's
/// client setting), and a sum travels as one frame per piece.
const PIECE: usize = 1 << 25;

/// Every link this process opened, kept for its life (see the module's documentation).
static LINKS: Mutex<Vec<Arc<dyn Any + Send + Sync>>> = Mutex::new(Vec::new());

/// This process's link for the layout `addresses` as node `rank`: the one opened before, or a
/// new one ([`NodeLink::start`]).
///
/// # Errors
/// As [`NodeLink::start`].
pub(crate) fn link<I: Backend>(
    addresses: &[String],
    rank: usize,
    timeout: Duration,
) -> Result<Arc<NodeLink<I>>, String> {
    let mut links = LINKS.lock().unwrap_or_else(|p| p.into_inner());
    let found = links.iter().find_map(|l| {
        l.clone()
            .downcast::<NodeLink<I>>()
            .ok()
            .filter(|l| l.rank == rank && l.layout == addresses)
    });
    let link = match found {
        Some(l) => l,
        None => {
            let l = Arc::new(NodeLink::<I>::start(addresses, rank, timeout)?);
            links.push(l.clone());
            l
        }
    };
    Ok(link)
}

/// Node `rank` in words, with its address.
pub(crate) fn node_name(rank: usize, nodes: usize, address: &str) -> String {
    format!("node {rank} of {nodes} ({address})")
}

impl<I: Backend> NodeLink<I> {
    /// Opens this node's server on the port of `addresses[rank]` (`host:port` each) and waits
    /// up to `timeout` for every other node's server to accept connections.
    ///
    /// # Errors
    /// In words: the port cannot be opened, or a node did not answer in time.
    fn start(addresses: &[String], rank: usize, timeout: Duration) -> Result<Self, String> {
        let port = host_port("--node-addresses", &addresses[rank])
            .map_err(|e| e.to_string())?
            .1;
        // The server logs and returns when it cannot bind: check first for a clear error.
        std::net::TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
            format!(
                "node {rank} cannot listen on port {port} (its --node-addresses entry {}): {e}",
                addresses[rank]
            )
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("contrast-nodes")
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime for the node link: {e}"))?;
        // burn-communication's server installs a logger that prints every download at the
        // INFO level; a silent subscriber set first keeps a run's output to its progress (an
        // application that set its own keeps it).
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
        let cancel = CancellationToken::new();
        let service = Arc::new(TensorDataService::<I, WebSocket>::new(cancel.clone()));
        let server = WsServer::new(port).route_tensor_data_service(service.clone());
        runtime.spawn(server.serve(cancel.clone().cancelled_owned()));
        // The data service wakes a waiting download when a tensor is exposed, but a tensor
        // exposed between the download's look and its wait is missed until the next one: nudge
        // the waiters regularly so that no operation depends on a later one.
        let nudged = (service.clone(), cancel.clone());
        runtime.spawn(async move {
            let (service, cancel) = nudged;
            while !cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                service.new_tensor_notify.notify_waiters();
            }
        });
        let link = NodeLink {
            runtime,
            service,
            addresses: addresses
                .iter()
                .map(|a| Address::from_str(&format!("ws://{a}")).expect("any string parses"))
                .collect(),
            names: (0..addresses.len())
                .map(|r| node_name(r, addresses.len(), &addresses[r]))
                .collect(),
            layout: addresses.to_vec(),
            rank,
            cancel,
            waiting: Arc::default(),
            counter: Mutex::new((0, 0)),
        };
        let deadline = Instant::now() + timeout;
        for (r, address) in addresses.iter().enumerate() {
            while !reachable(address) {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{} did not answer within {:.0} s: start every node with the same \
                         --node-addresses, each with its own --node-rank",
                        link.names[r],
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(link)
    }

    /// The nodes whose sums this node's first peer is waiting for (kept up to date).
    pub(crate) fn waiting(&self) -> Arc<Mutex<BTreeSet<usize>>> {
        self.waiting.clone()
    }

    /// Starts a group: its operations are numbered afresh under a new group number (called by
    /// the node's first peer as it joins).
    pub(crate) fn begin_group(&self) {
        let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        *c = (c.0 + 1, 0);
    }

    /// The sum over every node of `local` (this node's sum), for the node's first peer: the
    /// group's next operation.
    pub(crate) fn all_reduce(
        &self,
        local: I::FloatTensorPrimitive,
    ) -> Result<I::FloatTensorPrimitive, Failure> {
        let base = {
            let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
            c.1 += 1;
            (c.0 << 48) | (c.1 << 12)
        };
        let device = I::float_device(&local);
        let nodes = self.addresses.len();
        let data = self
            .runtime
            .block_on(I::float_into_data(local))
            .map_err(|e| Failure::Refused(format!("reading this node's sum: {e:?}")))?;
        let (shape, dtype) = (data.shape.clone(), data.dtype);
        // Values are read in place (`as_slice`) wherever they need not move: a sum is copied
        // out of the device once, into each exposed piece once and into the total once.
        let data = data.convert::<f32>();
        let mine = data
            .as_slice::<f32>()
            .map_err(|e| Failure::Refused(format!("{e:?}")))?;
        // At least one piece, empty for an empty tensor.
        let pieces: Vec<&[f32]> = if mine.is_empty() {
            vec![&[]]
        } else {
            mine.chunks(PIECE).collect()
        };
        let count = pieces.len();
        let parts = self.runtime.block_on(async {
            for (k, piece) in pieces.into_iter().enumerate() {
                let piece = TensorData::new(piece.to_vec(), [piece.len()]);
                let id = (base | k as u64).into();
                self.service
                    .expose_data(piece, (nodes - 1) as u32, id)
                    .await;
            }
            let tasks: Vec<_> = (0..nodes)
                .filter(|&r| r != self.rank)
                .map(|r| {
                    let waiting = self.waiting.clone();
                    waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(r);
                    let (service, address) = (self.service.clone(), self.addresses[r].clone());
                    tokio::spawn(async move {
                        let mut pieces = Vec::with_capacity(count);
                        for k in 0..count {
                            let id = (base | k as u64).into();
                            let piece = service.download_tensor(address.clone(), id).await?;
                            pieces.push(piece.convert::<f32>());
                        }
                        waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&r);
                        Some(pieces)
                    })
                })
                .collect();
            let mut parts = Vec::with_capacity(tasks.len());
            for task in tasks {
                parts.push(task.await);
            }
            parts
        });
        let mut sum = vec![0.0f32; mine.len()];
        let mut parts = parts.into_iter();
        for r in 0..nodes {
            // In node order, from zero: the same additions on every node.
            if r == self.rank {
                sum.iter_mut().zip(mine).for_each(|(a, b)| *a += b);
                continue;
            }
            let got = parts
                .next()
                .expect("one download per other node, in node order");
            let node = self.names[r].clone();
            let pieces = match got {
                Ok(Some(p)) => p,
                Ok(None) => {
                    let reason = "it closed the connection".into();
                    return Err(Failure::Gone { node, reason });
                }
                Err(e) => {
                    let reason = format!("the connection to it failed ({e})");
                    return Err(Failure::Gone { node, reason });
                }
            };
            let slices = pieces
                .iter()
                .map(|p| p.as_slice::<f32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::Refused(format!("reading {}'s sum: {e:?}", self.names[r])))?;
            let len: usize = slices.iter().map(|s| s.len()).sum();
            if len != mine.len() {
                return Err(Failure::Refused(format!(
                    "{} sent {len} values where this node has {}: the nodes run different \
                     models or batches",
                    self.names[r],
                    mine.len()
                )));
            }
            for (total, piece) in sum.chunks_mut(PIECE).zip(slices) {
                total.iter_mut().zip(piece).for_each(|(a, b)| *a += b);
            }
        }
        let sum = TensorData::new(sum, shape).convert_dtype(dtype);
        Ok(I::float_from_data(sum, &device))
    }

    /// Waits up to `timeout` until the other nodes have asked for every sum this node exposed,
    /// then a moment more for the last bytes to leave (called after the group's last
    /// operation: a node downloads sums in order, so every node then holds all the earlier
    /// ones), and closes this node's connections to the others' servers with a closing
    /// handshake: a connection left open would be reset when this process exits, and
    /// burn-communication's server panics (and prints it) on a reset. The next group opens new
    /// ones.
    pub(crate) fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let service = self.service.clone();
        self.runtime.block_on(async move {
            while !service.exposed_tensors.lock().await.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // On a task of its own: closing a connection the other side already dropped
            // panics inside burn-communication, which must not reach the peer.
            let _ = tokio::spawn(async move { service.close().await }).await;
        });
    }
}

impl<I: Backend> Drop for NodeLink<I> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Whether a TCP connection to `host:port` opens within a second.
fn reachable(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}
