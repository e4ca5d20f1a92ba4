//! The peers of a run: who they are, the collective operations they meet in, and what happens
//! when one of them dies.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};

use crate::PeerError;
use crate::nodes::{NodeLink, node_name};

/// How a data-parallel run is laid out: peers (devices) in this process, processes (nodes) in
/// the group, and how the nodes find each other.
///
/// Global rank of a peer: `node_rank * local_peers + local index`; every node runs the same
/// number of peers. One node is a group of threads in one process; several nodes (processes,
/// on one machine or several) each serve their node's sums on their own entry of
/// `node_addresses` and download the others' (burn-communication's websocket data service).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Peers in this process, one per device.
    pub local_peers: usize,
    /// Processes in the group (1: this process alone).
    pub nodes: usize,
    /// This process's rank among the nodes, `0..nodes`.
    pub node_rank: usize,
    /// Every node's address, `host:port`, in rank order (needed with several nodes; the same
    /// list on every node): where the other nodes reach node `r`. This node opens the port of
    /// its own entry on every interface.
    pub node_addresses: Vec<String>,
    /// How long a collective operation waits for the other peers before naming the missing
    /// ones and stopping.
    pub timeout: Duration,
}

impl GroupConfig {
    /// `peers` threads in this process, no other node, a timeout of ten minutes (a peer may be
    /// busy evaluating while the others wait).
    pub fn local(peers: usize) -> Self {
        GroupConfig {
            local_peers: peers,
            nodes: 1,
            node_rank: 0,
            node_addresses: Vec::new(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Every peer in the group.
    pub fn world(&self) -> usize {
        self.local_peers * self.nodes
    }

    /// Checks the layout.
    ///
    /// # Errors
    /// [`PeerError::Config`] naming the setting.
    pub fn validate(&self) -> Result<(), PeerError> {
        let bad = |m: String| Err(PeerError::Config(m));
        if self.local_peers == 0 {
            return bad("no device for this process: give at least one in --devices".into());
        }
        if self.nodes == 0 {
            return bad("--nodes is 0: a group has at least one node".into());
        }
        if self.node_rank >= self.nodes {
            return bad(format!(
                "--node-rank {} is out of range for --nodes {} (ranks 0..{})",
                self.node_rank,
                self.nodes,
                self.nodes - 1
            ));
        }
        if self.timeout.is_zero() {
            return bad("the peer timeout is 0 s".into());
        }
        if self.nodes > 1 {
            if self.node_addresses.len() != self.nodes {
                return bad(format!(
                    "--nodes {} needs --node-addresses with one HOST:PORT per node, in rank \
                     order, the same list on every node ({} given)",
                    self.nodes,
                    self.node_addresses.len()
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for a in &self.node_addresses {
                let (host, port) = host_port("--node-addresses", a)?;
                if !seen.insert((host, port)) {
                    return bad(format!("--node-addresses names {a} twice"));
                }
            }
        } else if !self.node_addresses.is_empty() {
            return bad("--node-addresses only applies with --nodes greater than 1".into());
        }
        Ok(())
    }

    /// burn-collective's part: the peers of this process (the nodes meet through their own
    /// link, `nodes.rs`).
    fn collective(&self) -> CollectiveConfig {
        CollectiveConfig::default().with_num_devices(self.local_peers)
    }
}

/// `text` split as `host:port`.
pub(crate) fn host_port(flag: &str, text: &str) -> Result<(String, u16), PeerError> {
    let bad = || {
        PeerError::Config(format!(
            "{flag} {text:?} is not HOST:PORT (for example 127.0.0.1:3000, or [::1]:3000 for \
             IPv6)"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    // An IPv6 address goes in brackets, `[::1]:3000`, as in URLs.
    let bare_v6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
    if host.is_empty() || port == 0 || bare_v6 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// What the peers of this process know about each other.
struct Board {
    /// Collective operations each local peer has entered.
    entered: Vec<u64>,
    /// Each local peer's failure, with the order in which failures happened.
    failed: Vec<Option<(u64, String)>>,
    /// Local peers busy with work the others wait for (evaluation, a checkpoint).
    busy: Vec<bool>,
    failures: u64,
}

struct Shared {
    config: GroupConfig,
    board: Mutex<Board>,
    /// The link to the other nodes (a `NodeLink` of the peers' backend), opened by the first
    /// peer of this process to join, or why it could not be.
    link: OnceLock<Result<Arc<dyn Any + Send + Sync>, String>>,
    /// The nodes this node's first peer is waiting for (kept by the link, once open).
    waiting: OnceLock<Arc<Mutex<BTreeSet<usize>>>>,
}

/// One peer of a data-parallel group: a device, its rank, and the collective operations it
/// meets the other peers in (see [`GroupConfig`]).
///
/// Every operation waits at most the group's timeout; it stops early, naming the culprit,
/// when another peer of this process has failed ([`Peer::fail`]). Clones share the peer.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
    local: usize,
    step: Arc<Mutex<StepState>>,
}

/// What the loop tells a peer's methods about the current step, and what they tell it back.
#[derive(Default)]
struct StepState {
    /// Instances of each rank in the step's global batch.
    split: Vec<usize>,
    /// The first collective error inside the method's step.
    error: Option<PeerError>,
    /// The error that ended this peer's part in the group: later operations fail with it
    /// at once (a second call while an abandoned one is pending would corrupt
    /// burn-collective's operation).
    broken: Option<PeerError>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How a collective operation combines the peers' tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Element-wise sum.
    Sum,
    /// Element-wise mean over every peer of the group.
    Mean,
}

impl Peer {
    /// The peers of this process, in local order.
    ///
    /// # Errors
    /// [`PeerError::Config`] from [`GroupConfig::validate`].
    pub fn group(config: GroupConfig) -> Result<Vec<Peer>, PeerError> {
        config.validate()?;
        let n = config.local_peers;
        let shared = Arc::new(Shared {
            config,
            board: Mutex::new(Board {
                entered: vec![0; n],
                failed: vec![None; n],
                busy: vec![false; n],
                failures: 0,
            }),
            link: OnceLock::new(),
            waiting: OnceLock::new(),
        });
        Ok((0..n)
            .map(|local| Peer {
                shared: shared.clone(),
                local,
                step: Arc::new(Mutex::new(StepState::default())),
            })
            .collect())
    }

    /// This peer's rank in the whole group.
    pub fn rank(&self) -> usize {
        self.shared.config.node_rank * self.shared.config.local_peers + self.local
    }

    /// Peers in the whole group.
    pub fn world(&self) -> usize {
        self.shared.config.world()
    }

    /// This peer's index among the peers of its process.
    pub fn local_index(&self) -> usize {
        self.local
    }

    /// Whether this is the group's first peer (it runs the monitors and reports).
    pub fn is_lead(&self) -> bool {
        self.rank() == 0
    }

    /// Whether this is its process's first peer (it writes the process's checkpoint).
    pub fn is_node_lead(&self) -> bool {
        self.local == 0
    }

    /// The group's layout.
    pub fn config(&self) -> &GroupConfig {
        &self.shared.config
    }

    /// This peer in words: `peer 1 of 2 (device 1 of node 0)`.
    pub fn describe(&self) -> String {
        describe(&self.shared.config, self.local)
    }

    /// Records that this peer stopped with `reason`: the other peers of this process stop at
    /// their next collective operation with an error naming it.
    pub fn fail(&self, reason: &str) {
        let mut b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        if b.failed[self.local].is_none() {
            b.failures += 1;
            let order = b.failures;
            b.failed[self.local] = Some((order, reason.to_string()));
        }
    }

    /// Marks this peer busy with work the other peers of its process wait for (the lead's
    /// evaluation, a checkpoint) until the guard drops: their waits do not time out meanwhile.
    /// Peers of other processes cannot see it: their timeout must cover such work.
    pub fn busy(&self) -> Busy {
        self.shared
            .board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .busy[self.local] = true;
        Busy(self.clone())
    }

    /// The order in which this peer failed among the peers of its process (1: first), if it did.
    pub fn failure_order(&self) -> Option<u64> {
        let b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        b.failed[self.local].as_ref().map(|(o, _)| *o)
    }

    /// Sets how many instances each rank holds in the current step's global batch (the loop
    /// calls it before every step; [`gather_rows`](crate::gather_rows) reads it).
    pub fn set_split(&self, per_rank: Vec<usize>) {
        assert_eq!(
            per_rank.len(),
            self.world(),
            "set_split: one count per rank"
        );
        self.step.lock().unwrap_or_else(|p| p.into_inner()).split = per_rank;
    }

    /// The current step's instances per rank (see [`set_split`](Self::set_split)).
    pub fn split(&self) -> Vec<usize> {
        self.step
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .split
            .clone()
    }

    /// Keeps `error` (the first one) for the loop: a method's step cannot return one, so it
    /// records it here and goes on with its local rows; the loop takes it after the step.
    pub fn record_error(&self, error: PeerError) {
        self.step
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .get_or_insert(error);
    }

    /// The error a method's step recorded, if any (cleared).
    pub fn take_error(&self) -> Option<PeerError> {
        self.step
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .take()
    }

    fn id(&self) -> PeerId {
        PeerId(self.rank() as u32)
    }

    /// Joins the group on `device` of backend `I` (every peer of the process calls it once,
    /// before any other operation; it returns when all of the group have joined). With several
    /// nodes, the first peer of this process opens its node's server and waits for the other
    /// nodes' (up to the group's timeout), and the nodes check that they run as many peers.
    ///
    /// # Errors
    /// [`PeerError::Timeout`] when a peer or node does not join in time,
    /// [`PeerError::Config`] when this node's port cannot be opened or the nodes run different
    /// numbers of peers, and [`PeerError::Collective`] when burn-collective refuses.
    pub fn register<I: Backend>(&self, device: &I::Device) -> Result<(), PeerError> {
        let (id, dev, config) = (self.id(), device.clone(), self.shared.config.collective());
        self.call("joining the group", move || {
            burn_collective::register::<I>(id, dev, config).map_err(refused)
        })?;
        let c = &self.shared.config;
        if c.nodes == 1 {
            return Ok(());
        }
        let link = self.link::<I>()?;
        if self.local == 0 {
            link.begin_group();
        }
        // Every node's number of peers, each node's first peer writing its own.
        let mut counts = vec![0.0f32; c.nodes];
        if self.local == 0 {
            counts[c.node_rank] = c.local_peers as f32;
        }
        let counts = self.all_reduce(
            "joining the group",
            Tensor::<I, 1>::from_floats(counts.as_slice(), device),
            Reduce::Sum,
        )?;
        let counts = counts.into_data().convert::<f32>().into_vec::<f32>();
        let counts = counts.map_err(|e| PeerError::Config(format!("{e:?}")))?;
        if let Some((r, &n)) = counts
            .iter()
            .enumerate()
            .find(|&(_, &n)| n != c.local_peers as f32)
        {
            return Err(PeerError::Config(format!(
                "{} runs {n} peers and {} runs {}: every node must run as many (--devices)",
                node_name(r, c.nodes, &c.node_addresses[r]),
                node_name(c.node_rank, c.nodes, &c.node_addresses[c.node_rank]),
                c.local_peers
            )));
        }
        Ok(())
    }

    /// This process's link to the other nodes, opened on first use.
    fn link<I: Backend>(&self) -> Result<Arc<NodeLink<I>>, PeerError> {
        let c = &self.shared.config;
        let link = self.shared.link.get_or_init(|| {
            crate::nodes::link::<I>(&c.node_addresses, c.node_rank, c.timeout).map(|l| {
                let _ = self.shared.waiting.set(l.waiting());
                l as Arc<dyn Any + Send + Sync>
            })
        });
        match link {
            Ok(l) => Ok(l
                .clone()
                .downcast::<NodeLink<I>>()
                .expect("every peer of a process registers on the same backend")),
            Err(e) => Err(PeerError::Config(e.clone())),
        }
    }

    /// Leaves the group (every peer calls it once at the end of a successful run). With
    /// several nodes, the node's first peer then waits (up to the group's timeout) until the
    /// other nodes have asked for its last sum: each node downloads the sums in order, so they
    /// then hold every earlier one, and none waits for a node that has gone.
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub fn finish<I: Backend>(&self) -> Result<(), PeerError> {
        let id = self.id();
        self.call("leaving the group", move || {
            burn_collective::finish_collective::<I>(id).map_err(refused)
        })?;
        if self.shared.config.nodes > 1 && self.local == 0 {
            self.link::<I>()?.drain(self.shared.config.timeout);
        }
        Ok(())
    }

    /// `tensor` combined with every peer's tensor of the same shape (every peer calls it in the
    /// same order, with the same `what`). With several nodes: summed within the node by
    /// burn-collective, across the nodes in node order by the node's first peer (over
    /// burn-communication, `nodes.rs`), and handed to the node's other peers by burn-collective
    /// again.
    ///
    /// # Errors
    /// [`PeerError::Timeout`], [`PeerError::PeerFailed`] (another peer of this process, or
    /// another node, stopped), or [`PeerError::Collective`] (shapes differ between peers).
    pub fn all_reduce<I: Backend, const D: usize>(
        &self,
        what: &str,
        tensor: Tensor<I, D>,
        op: Reduce,
    ) -> Result<Tensor<I, D>, PeerError> {
        if self.world() == 1 {
            return Ok(tensor);
        }
        let id = self.id();
        let nodes = self.shared.config.nodes > 1;
        let local_op = match op {
            Reduce::Mean if !nodes => ReduceOperation::Mean,
            _ => ReduceOperation::Sum,
        };
        let primitive = tensor.into_primitive().tensor();
        let link = if nodes { Some(self.link::<I>()?) } else { None };
        let (lead, several) = (self.local == 0, self.shared.config.local_peers > 1);
        let reduced = self.call(what, move || {
            let local =
                burn_collective::all_reduce::<I>(id, primitive, local_op).map_err(refused)?;
            let Some(link) = link else {
                return Ok(local);
            };
            // The node's first peer adds up the nodes' sums and hands the total to the others.
            let total = if lead {
                let total = link.all_reduce(local)?;
                Tensor::<I, D>::from_primitive(TensorPrimitive::Float(total))
            } else {
                Tensor::<I, D>::from_primitive(TensorPrimitive::Float(local)).zeros_like()
            };
            let total = total.into_primitive().tensor();
            if several {
                burn_collective::all_reduce::<I>(id, total, ReduceOperation::Sum).map_err(refused)
            } else {
                Ok(total)
            }
        })?;
        let reduced = Tensor::from_primitive(TensorPrimitive::Float(reduced));
        Ok(match op {
            Reduce::Mean if nodes => reduced.div_scalar(self.world() as f32),
            _ => reduced,
        })
    }

    /// Runs one collective call on a helper thread (burn-collective's calls block without a
    /// limit) and waits for it, watching the other local peers and the clock.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, PeerError> {
        if let Some(e) = &self.step.lock().unwrap_or_else(|p| p.into_inner()).broken {
            return Err(e.clone());
        }
        let out = self.wait_for(what, f);
        if let Err(e) = &out {
            self.step.lock().unwrap_or_else(|p| p.into_inner()).broken = Some(e.clone());
        }
        out
    }

    fn wait_for<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, PeerError> {
        {
            let mut b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
            b.entered[self.local] += 1;
        }
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("collective-{}", self.rank()))
            .spawn(move || {
                let _ = tx.send(f());
            })
            .expect("a thread for a collective call");
        let mut started = Instant::now();
        let timeout = self.shared.config.timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(Failure::Refused(reason))) => {
                    return Err(PeerError::Collective {
                        me: self.describe(),
                        what: what.into(),
                        reason,
                    });
                }
                Ok(Err(Failure::Gone { node, reason })) => {
                    return Err(PeerError::PeerFailed {
                        peer: node,
                        reason,
                        me: self.describe(),
                        what: what.into(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PeerError::Collective {
                        me: self.describe(),
                        what: what.into(),
                        reason: "its call ended without an answer".into(),
                    });
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some((peer, reason)) = self.failed_other() {
                return Err(PeerError::PeerFailed {
                    peer,
                    reason,
                    me: self.describe(),
                    what: what.into(),
                });
            }
            if self.other_busy() {
                started = Instant::now();
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(PeerError::Timeout {
                    me: self.describe(),
                    what: what.into(),
                    seconds: waited.as_secs_f64(),
                    missing: self.missing(),
                });
            }
        }
    }

    /// The first other local peer that failed, in words, and its reason.
    fn failed_other(&self) -> Option<(String, String)> {
        let b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        b.failed
            .iter()
            .enumerate()
            .filter(|(i, f)| *i != self.local && f.is_some())
            .min_by_key(|(_, f)| f.as_ref().map(|(o, _)| *o))
            .map(|(i, f)| {
                let (_, reason) = f.as_ref().expect("filtered");
                (describe(&self.shared.config, i), reason.clone())
            })
    }

    fn other_busy(&self) -> bool {
        let b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        b.busy
            .iter()
            .enumerate()
            .any(|(i, &busy)| busy && i != self.local)
    }

    /// Who has not reached this peer's current operation, in words.
    fn missing(&self) -> String {
        let b = self.shared.board.lock().unwrap_or_else(|p| p.into_inner());
        let mine = b.entered[self.local];
        let mut names: Vec<String> = (0..b.entered.len())
            .filter(|&i| b.entered[i] < mine)
            .map(|i| describe(&self.shared.config, i))
            .collect();
        drop(b);
        let c = &self.shared.config;
        if names.is_empty() && c.nodes > 1 {
            // The peers of this process are all there: a node is late.
            let waiting: Vec<String> = match self.shared.waiting.get() {
                Some(w) => (w.lock().unwrap_or_else(|p| p.into_inner()).iter())
                    .map(|&n| node_name(n, c.nodes, &c.node_addresses[n]))
                    .collect(),
                None => Vec::new(),
            };
            names = if waiting.is_empty() {
                (0..c.nodes)
                    .filter(|&n| n != c.node_rank)
                    .map(|n| node_name(n, c.nodes, &c.node_addresses[n]))
                    .collect()
            } else {
                waiting
            };
        }
        if names.is_empty() {
            "the other peers".into()
        } else {
            names.join(" and ")
        }
    }
}

/// Why a collective call failed, before it is put in words for [`PeerError`].
pub(crate) enum Failure {
    /// burn-collective or the nodes refused the operation (mismatched shapes or settings).
    Refused(String),
    /// Another node stopped answering (its connection closed or never opened).
    Gone {
        /// The node, in words.
        node: String,
        /// What happened.
        reason: String,
    },
}

fn refused(e: burn_collective::CollectiveError) -> Failure {
    Failure::Refused(format!("{e:?}"))
}

/// A peer's busy mark (see [`Peer::busy`]), cleared on drop.
#[derive(Debug)]
pub struct Busy(Peer);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut b = self
            .0
            .shared
            .board
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        b.busy[self.0.local] = false;
    }
}

fn describe(c: &GroupConfig, local: usize) -> String {
    let rank = c.node_rank * c.local_peers + local;
    if c.nodes > 1 {
        format!(
            "peer {rank} of {} (device {local} of node {})",
            c.world(),
            c.node_rank
        )
    } else {
        format!("peer {rank} of {}", c.world())
    }
}

/// Runs this process's peers, each on its own thread, and returns their results in local
/// order: `lead` for the first peer, on the calling thread (it may hold what cannot cross
/// threads: monitors, the caller's method), `other` for the rest.
///
/// A peer whose closure returns an error or panics is marked failed ([`Peer::fail`]) so that
/// the others stop instead of waiting for it; the error returned is the first failure's (the
/// others only report that they stopped because of it). `I` is the backend the peers
/// communicate on: after a failure its collective state is reset, so that the same process
/// can form a new group.
///
/// # Errors
/// The first failing peer's error.
///
/// # Panics
/// If `peers` is empty.
pub fn run_peers<I, T, E, L, F>(peers: Vec<Peer>, lead: L, other: F) -> Result<Vec<T>, E>
where
    I: Backend,
    T: Send,
    E: Send + std::fmt::Display + From<PeerError>,
    L: FnOnce(Peer) -> Result<T, E>,
    F: Fn(Peer) -> Result<T, E> + Sync,
{
    let mut peers = peers.into_iter();
    let first = peers.next().expect("run_peers: at least one peer");
    let results: Vec<(Peer, Result<T, E>)> = std::thread::scope(|s| {
        let handles: Vec<_> = peers
            .map(|peer| {
                let other = &other;
                std::thread::Builder::new()
                    .name(format!("peer-{}", peer.rank()))
                    .spawn_scoped(s, move || guarded(peer, other))
                    .expect("a thread per peer")
            })
            .collect();
        let mut all = vec![guarded(first, lead)];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("peer threads catch their panics")),
        );
        all
    });
    if results.iter().any(|(_, r)| r.is_err()) {
        // Calls still waiting inside burn-collective end when their operation is dropped.
        burn_collective::reset_collective::<I>();
        let first = results
            .into_iter()
            .filter(|(_, r)| r.is_err())
            .min_by_key(|(p, _)| p.failure_order().unwrap_or(u64::MAX))
            .expect("one failed");
        return Err(first.1.err().expect("filtered"));
    }
    Ok(results
        .into_iter()
        .map(|(_, r)| r.ok().expect("all ok"))
        .collect())
}

/// `f(peer)` with a panic turned into an error and any error recorded on the board.
fn guarded<T, E: std::fmt::Display + From<PeerError>>(
    peer: Peer,
    f: impl FnOnce(Peer) -> Result<T, E>,
) -> (Peer, Result<T, E>) {
    let me = peer.clone();
    let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(peer))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(E::from(PeerError::Panicked {
                me: me.describe(),
                message: msg,
            }))
        }
    };
    if let Err(e) = &out {
        me.fail(&e.to_string());
    }
    (me, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_that_cannot_work_are_named() {
        let mut c = GroupConfig::local(2);
        assert!(c.validate().is_ok());
        c.local_peers = 0;
        assert!(c.validate().unwrap_err().to_string().contains("--devices"));
        let mut c = GroupConfig::local(1);
        c.nodes = 2;
        c.node_rank = 2;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        c.node_rank = 1;
        let err = |c: &GroupConfig| c.validate().unwrap_err().to_string();
        assert!(err(&c).contains("one HOST:PORT per node"), "{}", err(&c));
        c.node_addresses = vec!["127.0.0.1:3000".into(), "127.0.0.1".into()];
        assert!(err(&c).contains("HOST:PORT"), "{}", err(&c));
        c.node_addresses[1] = "127.0.0.1:3000".into();
        assert!(err(&c).contains("twice"), "{}", err(&c));
        c.node_addresses[1] = "::1:3001".into();
        assert!(err(&c).contains("[::1]:3000 for IPv6"), "{}", err(&c));
        c.node_addresses[1] = "[::1]:3001".into();
        assert!(c.validate().is_ok());
        c.node_addresses[1] = "127.0.0.1:3001".into();
        assert!(c.validate().is_ok());
        let mut c = GroupConfig::local(1);
        c.node_addresses = vec!["127.0.0.1:3000".into()];
        assert!(err(&c).contains("only applies"), "{}", err(&c));
    }

    #[test]
    fn ranks_and_names() {
        let mut c = GroupConfig::local(2);
        c.nodes = 3;
        c.node_rank = 1;
        c.node_addresses = vec!["h:1".into(), "h:2".into(), "h:3".into()];
        let peers = Peer::group(c).unwrap();
        assert_eq!(peers[1].rank(), 3);
        assert_eq!(peers[1].world(), 6);
        assert_eq!(peers[1].describe(), "peer 3 of 6 (device 1 of node 1)");
        assert!(!peers[0].is_lead() && peers[0].is_node_lead());
    }
}
