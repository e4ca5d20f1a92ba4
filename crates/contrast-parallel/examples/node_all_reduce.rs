//! How long one all-reduce between two nodes takes: run it twice, as node 0 and node 1 of the
//! same layout (two terminals, or two machines with their own addresses):
//!
//! ```sh
//! cargo run --release -p contrast-parallel --example node_all_reduce -- 0 127.0.0.1:29541 127.0.0.1:29542 &
//! cargo run --release -p contrast-parallel --example node_all_reduce -- 1 127.0.0.1:29541 127.0.0.1:29542
//! ```
//!
//! Each node prints, per tensor size, the median time of an all-reduce (sum) of that many
//! floats over 20 operations, after 3 to warm up. One peer per node, on flex.

use std::time::{Duration, Instant};

use burn::backend::Flex;
use burn::tensor::Tensor;
use contrast_parallel::{GroupConfig, Peer, PeerError, Reduce};

fn main() -> Result<(), PeerError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: node_all_reduce RANK HOST:PORT HOST:PORT";
    let rank: usize = args.first().and_then(|r| r.parse().ok()).expect(usage);
    assert_eq!(args.len(), 3, "{usage}");
    let group = GroupConfig {
        local_peers: 1,
        nodes: 2,
        node_rank: rank,
        node_addresses: args[1..].to_vec(),
        timeout: Duration::from_secs(60),
    };
    let peer = Peer::group(group)?.remove(0);
    let device = Default::default();
    peer.register::<Flex>(&device)?;
    // A scalar, the gathered embeddings of a batch of 256 (d = 128), the small ResNet's
    // gradient (docs/multi-device.md), 16 MB.
    for n in [1usize, 32_768, 341_152, 4_000_000] {
        let t = Tensor::<Flex, 1>::ones([n], &device);
        let mut times = Vec::new();
        for i in 0..23 {
            let start = Instant::now();
            let _ = peer.all_reduce("timing", t.clone(), Reduce::Sum)?;
            if i >= 3 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let mb = n as f64 * 4.0 / 1e6;
        println!(
            "node {rank}: {n:>9} floats ({mb:>6.2} MB): median {:.3} ms",
            times[times.len() / 2]
        );
    }
    peer.finish::<Flex>()
}
