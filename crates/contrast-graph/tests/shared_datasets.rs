//! The loaders against the real files of the project's shared `datasets` folder. They run
//! when `CONTRAST_SHARED_DATASETS` names that folder (`.ci/run` sets it when the folder is
//! there) and are skipped with a message otherwise.

use std::path::PathBuf;

use contrast_core::{ViewMode, Views};
use contrast_graph::{
    GraphClAugment, GraphViews, NodeFeatures, PprConfig, TuOptions, load_planetoid, load_tu,
    ppr_sparse,
};

fn datasets(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CONTRAST_SHARED_DATASETS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!(
                "{test}: skipped, set CONTRAST_SHARED_DATASETS to the shared datasets folder to run it"
            );
            None
        }
    }
}

#[test]
fn tu_sets_have_their_published_sizes() {
    let Some(root) = datasets("tu_sets_have_their_published_sizes") else {
        return;
    };
    // (name, graphs, classes, feature columns, features from)
    let expected = [
        ("MUTAG", 188, 2, 7, "labels"),
        ("PTC_MR", 344, 2, 18, "labels"),
        ("ENZYMES", 600, 6, 3, "labels"),
        ("PROTEINS", 1113, 2, 3, "labels"),
        ("NCI1", 4110, 2, 37, "labels"),
        ("IMDB-BINARY", 1000, 2, 136, "degree"),
        ("IMDB-MULTI", 1500, 3, 89, "degree"),
    ];
    for (name, graphs, classes, feat, kind) in expected {
        let d = load_tu(&root.join("tu").join(name), name, &TuOptions::default()).unwrap();
        let found = match d.features {
            NodeFeatures::Labels { .. } => "labels",
            NodeFeatures::Degree { .. } => "degree",
            NodeFeatures::Attributes => "attributes",
        };
        let nodes: usize = d.graphs.iter().map(|g| g.nodes).sum();
        let edges: usize = d.graphs.iter().map(|g| g.undirected_edges()).sum();
        eprintln!(
            "{name}: {} graphs, {} classes, {} features ({found}), {nodes} nodes, {edges} undirected edges, {} duplicate and {} self-loop lines dropped",
            d.len(),
            d.classes,
            d.feat_dim,
            d.duplicate_edges,
            d.self_loops
        );
        assert_eq!(
            (d.len(), d.classes, d.feat_dim, found),
            (graphs, classes, feat, kind),
            "{name}"
        );
        assert!(d.labels.iter().all(|&l| (l as usize) < d.classes));
        for g in &d.graphs {
            assert!(g.nodes > 0 && g.x.len() == g.nodes * d.feat_dim, "{name}");
            assert!(
                g.edges
                    .iter()
                    .all(|&(u, v)| u != v && (v as usize) < g.nodes)
            );
        }
    }
}

#[test]
fn mutag_matches_its_published_statistics_and_makes_views() {
    let Some(root) = datasets("mutag_matches_its_published_statistics_and_makes_views") else {
        return;
    };
    let d = load_tu(&root.join("tu/MUTAG"), "MUTAG", &TuOptions::default()).unwrap();
    // 3371 nodes and 3721 undirected edges (the TU page: 17.93 nodes, 19.79 edges per graph).
    assert_eq!(d.graphs.iter().map(|g| g.nodes).sum::<usize>(), 3371);
    assert_eq!(
        d.graphs.iter().map(|g| g.undirected_edges()).sum::<usize>(),
        3721
    );
    assert_eq!(d.label_values, vec![-1, 1]);
    assert_eq!(d.labels.iter().filter(|&&l| l == 1).count(), 125);
    let views = GraphViews::new(&d, GraphClAugment::with_seed(0)).unwrap();
    let idx: Vec<usize> = (0..d.len()).collect();
    let (a, b) = views.host_views(ViewMode::TwoAugmented, &idx, 0);
    assert_eq!((a.graphs, b.graphs, a.feat), (188, 188, 7));
    // Diffusion of the largest graph: symmetric weights, one self-loop per node at least.
    let g = d.graphs.iter().max_by_key(|g| g.nodes).unwrap();
    let s = ppr_sparse(g.nodes, &g.edges, &PprConfig::default());
    assert!(s.edges.iter().filter(|(u, v)| u == v).count() == g.nodes);
    assert!(s.edges.len() > g.edges.len());
}

#[test]
fn imdb_lists_every_edge_twice() {
    let Some(root) = datasets("imdb_lists_every_edge_twice") else {
        return;
    };
    let d = load_tu(
        &root.join("tu/IMDB-BINARY"),
        "IMDB-BINARY",
        &TuOptions::default(),
    )
    .unwrap();
    let edges: usize = d.graphs.iter().map(|g| g.edges.len()).sum();
    assert_eq!(d.duplicate_edges, edges, "each directed edge listed twice");
}

#[test]
fn planetoid_sets_have_their_published_sizes() {
    let Some(root) = datasets("planetoid_sets_have_their_published_sizes") else {
        return;
    };
    for (name, nodes, feat, classes, train) in [
        ("cora", 2708, 1433, 7, 140),
        ("citeseer", 3327, 3703, 6, 120),
    ] {
        let p = load_planetoid(&root.join("planetoid/text").join(name)).unwrap();
        eprintln!(
            "{name}: {} nodes, {} features, {} classes, {} undirected edges, {} unlabelled, splits {}/{}/{}",
            p.nodes,
            p.feat_dim,
            p.classes,
            p.edges.len() / 2,
            p.labels.iter().filter(|l| l.is_none()).count(),
            p.train.len(),
            p.val.len(),
            p.test.len()
        );
        assert_eq!(
            (p.nodes, p.feat_dim, p.classes),
            (nodes, feat, classes),
            "{name}"
        );
        assert_eq!(
            (p.train.len(), p.val.len(), p.test.len()),
            (train, 500, 1000)
        );
        assert!(p.train.iter().all(|&i| p.labels[i as usize].is_some()));
    }
}
