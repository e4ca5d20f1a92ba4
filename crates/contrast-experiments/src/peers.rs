//! Every job's training on one device or on a data-parallel group of them.

use std::time::Duration;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::{DeviceSpec, Views};
use contrast_methods::{Method, Monitor, RunDir, TrainConfig, Trained, train, train_on_peers};
use contrast_parallel::{GroupConfig, Peer};

use crate::Error;

/// The devices of a data-parallel run, the other processes (nodes) it joins, what its peers
/// share, and how long they wait for each other (`--devices`, `--nodes`, `--node-rank`,
/// `--node-addresses`, `--local-negatives`, `--sync-batch-norm`, `--peer-timeout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerOptions {
    /// One peer per device (`flex,flex`, `cuda:0,cuda:1`); none or one for the job's device
    /// alone.
    pub devices: Vec<String>,
    /// Gather every peer's embeddings as the in-batch negatives (the global batch's loss); off,
    /// each peer's share has its own.
    pub gather_negatives: bool,
    /// Batch norm with the statistics of every peer's batch together
    /// ([`TrainConfig::sync_batch_norm`]).
    pub sync_batch_norm: bool,
    /// Seconds a peer waits for the others at a collective operation before naming the
    /// missing one (default 600: the lead peer may be evaluating).
    pub peer_timeout: Option<f64>,
    /// Processes in the group, each with `devices` (1: this process alone).
    pub nodes: usize,
    /// This process's rank among the nodes.
    pub node_rank: usize,
    /// Every node's `host:port`, in rank order, the same list on every node.
    pub node_addresses: Vec<String>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            devices: Vec::new(),
            gather_negatives: true,
            sync_batch_norm: false,
            peer_timeout: None,
            nodes: 1,
            node_rank: 0,
            node_addresses: Vec::new(),
        }
    }
}

impl PeerOptions {
    /// This process's devices and the group's layout, or `None` for one device alone.
    ///
    /// # Errors
    /// `InvalidConfig` for a list of devices of several backends, a non-positive timeout or a
    /// layout of nodes that cannot work.
    pub fn group(&self) -> Result<Option<(Vec<DeviceSpec>, GroupConfig)>, Error> {
        let alone = self.nodes == 1 && self.node_rank == 0 && self.node_addresses.is_empty();
        if self.devices.len() < 2 && alone {
            return Ok(None);
        }
        let specs = DeviceSpec::parse_list(&self.devices.join(","))?;
        let seconds = self.peer_timeout.unwrap_or(600.0);
        contrast_core::ensure_positive("peer_timeout", seconds)?;
        let mut group = GroupConfig::local(specs.len());
        group.timeout = Duration::from_secs_f64(seconds);
        group.nodes = self.nodes;
        group.node_rank = self.node_rank;
        group.node_addresses = self.node_addresses.clone();
        group
            .validate()
            .map_err(|e| Error::Train(contrast_methods::Error::from(e)))?;
        Ok(Some((specs, group)))
    }

    /// The devices in words for reports: `flex,flex (2 peers)`, with the node and the whole
    /// group's size for a run on several nodes.
    pub fn describe(&self) -> String {
        let list = self.devices.join(",");
        let world = self.devices.len().max(1) * self.nodes.max(1);
        let options = match (self.gather_negatives, self.sync_batch_norm) {
            (true, false) => "",
            (false, false) => ", local negatives",
            (true, true) => ", synchronised batch norm",
            (false, true) => ", local negatives, synchronised batch norm",
        };
        match (self.devices.len(), self.nodes) {
            (0 | 1, 0 | 1) => list,
            (_, 0 | 1) => format!("{list} ({world} peers{options})"),
            _ => format!(
                "{list} on node {} of {} ({world} peers in all{options})",
                self.node_rank, self.nodes
            ),
        }
    }
}

/// [`train`] on `device`, or [`train_on_peers`] on the devices of `peers` (the first of which
/// is `device`): the one place every job trains.
///
/// # Errors
/// As [`train`] and [`train_on_peers`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_with<B, M, Me, V>(
    peers: &PeerOptions,
    method: &mut Me,
    model: M,
    views: &V,
    monitors: &mut [Box<dyn Monitor<B, M> + '_>],
    config: &TrainConfig,
    run: &RunDir,
    device: &B::Device,
) -> Result<Trained<M>, Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = V::Batch<B>> + Clone + Send,
    V: Views,
{
    let Some((specs, group)) = peers.group()? else {
        return Ok(train(method, model, views, monitors, config, run, device)?);
    };
    let devices: Vec<B::Device> = specs.iter().map(|s| s.device::<B>()).collect();
    let config = config
        .clone()
        .with_gather_negatives(peers.gather_negatives)
        .with_sync_batch_norm(peers.sync_batch_norm);
    let group = Peer::group(group).map_err(contrast_methods::Error::from)?;
    Ok(train_on_peers(
        group, &devices, method, model, views, monitors, &config, run,
    )?)
}
