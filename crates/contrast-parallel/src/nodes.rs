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
//! burn-collective's own global all-reduce is not used: in 0.21.0 it hangs on its second
//! operation (docs/multi-device.md, *Several machines*).

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

/// Why a node-level operation failed.
#[derive(Debug)]
pub(crate) enum NodeFailure {
    /// Another node stopped answering (its connection closed or never opened).
    Gone {
        /// The node, in words.
        node: String,
        /// What happened.
        reason: String,
    },
    /// The nodes disagree (tensors of different sizes).
    Mismatch(String),
}

/// This process's link to the other nodes: a websocket server exposing this node's sums, the
/// clients that download the others', and the runtime they run on.
pub(crate) struct NodeLink<I: Backend> {
    runtime: tokio::runtime::Runtime,
    service: Arc<TensorDataService<I, WebSocket>>,
    /// Every node's address, in rank order (`ws://host:port`).
    addresses: Vec<Address>,
    /// Every node in words, in rank order.
    names: Vec<String>,
    rank: usize,
    cancel: CancellationToken,
    /// Nodes whose sum a peer of this process is waiting for.
    waiting: Arc<Mutex<BTreeSet<usize>>>,
}

/// Node `rank` in words, with its address.
pub(crate) fn node_name(rank: usize, nodes: usize, address: &str) -> String {
    format!("node {rank} of {nodes} ({address})")
}

impl<I: Backend> NodeLink<I> {
    /// Opens this node's server on the port of `addresses[rank]` (`host:port` each) and waits
    /// up to `timeout` for every other node's server to accept connections. `waiting` is
    /// kept up to date with the nodes whose sums are awaited.
    ///
    /// # Errors
    /// In words: the port cannot be opened, or a node did not answer in time.
    pub(crate) fn start(
        addresses: &[String],
        rank: usize,
        timeout: Duration,
        waiting: Arc<Mutex<BTreeSet<usize>>>,
    ) -> Result<Self, String> {
        let port = addresses[rank]
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| format!("{:?} has no port", addresses[rank]))?;
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
            rank,
            cancel,
            waiting,
        };
        let deadline = Instant::now() + timeout;
        for (r, address) in addresses.iter().enumerate() {
            while !reachable(address) {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "{} did not answer within {:.0} s: start every node with the same \
                         --node-addresses, each with its own --node-rank",
                        node_name(r, addresses.len(), address),
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(link)
    }

    /// The sum over every node of `local` (this node's sum), for the node's first peer:
    /// operation number `op` of the group.
    pub(crate) fn all_reduce(
        &self,
        local: I::FloatTensorPrimitive,
        op: u64,
    ) -> Result<I::FloatTensorPrimitive, NodeFailure> {
        let device = I::float_device(&local);
        let nodes = self.addresses.len();
        let data = self
            .runtime
            .block_on(I::float_into_data(local))
            .map_err(|e| NodeFailure::Mismatch(format!("reading this node's sum: {e:?}")))?;
        let shape = data.shape.clone();
        let mine = data
            .clone()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| NodeFailure::Mismatch(format!("{e:?}")))?;
        let id = op.into();
        let parts = self.runtime.block_on(async {
            self.service.expose_data(data, (nodes - 1) as u32, id).await;
            let tasks: Vec<_> = (0..nodes)
                .filter(|&r| r != self.rank)
                .map(|r| {
                    self.waiting
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(r);
                    let (service, address) = (self.service.clone(), self.addresses[r].clone());
                    (
                        r,
                        tokio::spawn(async move { service.download_tensor(address, id).await }),
                    )
                })
                .collect();
            let mut parts = Vec::with_capacity(tasks.len());
            for (r, task) in tasks {
                let got = task.await;
                self.waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&r);
                parts.push((r, got));
            }
            parts
        });
        let mut sum: Option<Vec<f32>> = None;
        let mut add = |values: &[f32]| match &mut sum {
            None => sum = Some(values.to_vec()),
            Some(s) => s.iter_mut().zip(values).for_each(|(a, b)| *a += b),
        };
        let mut parts = parts.into_iter();
        for r in 0..nodes {
            if r == self.rank {
                add(&mine);
                continue;
            }
            let (r, got) = parts.next().expect("one download per other node");
            let name = &self.names[r];
            let data = match got {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return Err(NodeFailure::Gone {
                        node: name.clone(),
                        reason: "it closed the connection".into(),
                    });
                }
                Err(e) => {
                    return Err(NodeFailure::Gone {
                        node: name.clone(),
                        reason: format!("the connection to it failed ({e})"),
                    });
                }
            };
            let values = data.convert::<f32>().into_vec::<f32>().map_err(|e| {
                NodeFailure::Mismatch(format!("{name} sent unreadable data: {e:?}"))
            })?;
            if values.len() != mine.len() {
                return Err(NodeFailure::Mismatch(format!(
                    "{name} sent {} values where this node has {}: the nodes run different \
                     models or batches",
                    values.len(),
                    mine.len()
                )));
            }
            add(&values);
        }
        let sum = sum.expect("at least this node");
        Ok(I::float_from_data(TensorData::new(sum, shape), &device))
    }

    /// Waits up to `timeout` until the other nodes have downloaded every sum this node
    /// exposed (so that none of them waits for a node that has left), then closes the server.
    pub(crate) fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.runtime.block_on(async {
            while !self.service.exposed_tensors.lock().await.is_empty() && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        self.cancel.cancel();
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
