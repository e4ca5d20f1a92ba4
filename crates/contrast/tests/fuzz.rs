//! A mutation fuzzer for every parser of untrusted bytes and for the checkpoint decoder, on the
//! stable toolchain (`cargo fuzz` needs nightly): each target starts from valid inputs, applies
//! random byte-level and text-level mutations (bit flips, boundary values, truncation,
//! insertion, deletion, duplication, huge or negative numbers), and requires every input to end
//! in `Ok` or `Err`, never a panic.
//!
//! `cargo test` runs each target for a short time (`CONTRAST_FUZZ_SECONDS`, default 0.5 s);
//! `cargo xtask fuzz --seconds N` runs each for N seconds in release mode and prints the table
//! that `docs/reliability.md` records (inputs tried and panics per target). A panicking input
//! is printed (hex, truncated) with its target, so it can become a unit test.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use contrast::core::FlexAutodiff;
use contrast::core::testing::TempDir;
use contrast::encoders::{BertPooling, BlockKind, ResNetConfig, Stem, read_bert_config};
use contrast::graph::{
    LinqsFiles, LinqsSplit, PlanetoidFile, PlanetoidFiles, TuFile, TuFiles, TuOptions, parse_linqs,
    parse_planetoid, parse_tu,
};
use contrast::methods::{
    HeadConfig, OptimizerConfig, RunDir, SimClrConfig, TrainConfig, checkpoint, train,
};
use contrast::pairs::{PairsFormat, parse_pairs};
use contrast::text::{parse_semeval, parse_sentences, parse_sick, parse_stsb, parse_triplets};
use contrast::vision::{
    ImageBatcher, ImageDataset, ImageShape, SimClrAugmentConfig, decode_image_bytes, encode_idx,
    maybe_gunzip, parse_cifar_records, parse_idx, parse_stl10_images, parse_stl10_labels,
};

type B = FlexAutodiff;

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const BYTES: [u8; 16] = [
    0, 1, 0x7f, 0x80, 0xff, b'-', b',', b'\n', b'\t', b'\r', b'"', b'9', b'0', b' ', b'.', b'e',
];
const WORDS: [&str; 10] = [
    "4294967296",
    "-1",
    "99999999999999999999",
    "NaN",
    "inf",
    "-0",
    "1e308",
    "\"",
    "\u{feff}",
    "\u{fffd}",
];
const U32S: [u32; 6] = [0, 1, 0xffff_ffff, 0x7fff_ffff, 0x0001_0000, 0x4000_0000];

/// One to four mutations of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = BYTES[rng.below(BYTES.len())];
            }
            2 => v.truncate(at),
            3 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(len);
                v.drain(at.min(end)..end);
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let end = (from + 1 + rng.below(64)).min(len);
                let chunk = v[from..end].to_vec();
                v.splice(at..at, chunk);
            }
            6 => {
                let w = WORDS[rng.below(WORDS.len())].as_bytes().to_vec();
                v.splice(at..at, w);
            }
            _ if len >= 4 => {
                let i = rng.below(len - 3);
                let x = U32S[rng.below(U32S.len())];
                let b = if rng.below(2) == 0 {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                };
                v[i..i + 4].copy_from_slice(&b);
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `target` on mutations of `seeds` (each a set of files; one file is mutated per input)
/// for `budget`; returns (inputs, panics) and prints each panicking input.
fn fuzz(
    name: &str,
    seeds: &[Vec<Vec<u8>>],
    budget: Duration,
    target: &dyn Fn(&[Vec<u8>]),
) -> (usize, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let started = Instant::now();
    let (mut inputs, mut panics) = (0, 0);
    // The valid seeds first, then mutations until the budget is spent.
    while inputs < seeds.len() || started.elapsed() < budget {
        let mut files = seeds[inputs % seeds.len()].clone();
        if inputs >= seeds.len() {
            let f = rng.below(files.len());
            files[f] = mutate(&files[f], &mut rng);
            // Now and then, mutate a mutation further.
            if rng.below(4) == 0 {
                files[f] = mutate(&files[f], &mut rng);
            }
        }
        inputs += 1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&files)));
        if r.is_err() {
            panics += 1;
            let msg = PANIC.lock().unwrap().take().unwrap_or_default();
            let shown: Vec<String> = files
                .iter()
                .map(|f| {
                    let hex: String = f.iter().take(256).map(|b| format!("{b:02x}")).collect();
                    format!("{} bytes: {hex}", f.len())
                })
                .collect();
            eprintln!("[fuzz] {name}: PANIC {msg}\n  input: {shown:?}");
        }
    }
    (inputs, panics)
}

fn budget() -> Duration {
    let s = std::env::var("CONTRAST_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.5);
    Duration::from_secs_f64(s)
}

fn p(name: &str) -> &Path {
    Path::new(name)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn image_file(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// The parsers' targets: name, seeds, and the call.
type Target = (&'static str, Vec<Vec<Vec<u8>>>, Box<dyn Fn(&[Vec<u8>])>);

fn parser_targets() -> Vec<Target> {
    let one = |v: Vec<u8>| vec![v];
    let idx_images = encode_idx(&[3, 4, 4], &(0..48).collect::<Vec<u8>>());
    let idx_labels = encode_idx(&[3], &[0, 1, 2]);
    let cifar: Vec<u8> = (0..2)
        .flat_map(|r| std::iter::once(r as u8).chain((0..3072).map(move |i| (i + r) as u8)))
        .collect();
    let cifar100: Vec<u8> = [3u32, 17]
        .into_iter()
        .chain(0..3072)
        .map(|b| b as u8)
        .collect();
    let stl: Vec<u8> = (0..96 * 96 * 3).map(|i| i as u8).collect();
    let bert = br#"{"model_type":"bert","architectures":["BertModel"],"vocab_size":30522,"hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,"intermediate_size":1536,"hidden_act":"gelu","max_position_embeddings":512,"type_vocab_size":2,"layer_norm_eps":1e-12,"hidden_dropout_prob":0.1,"attention_probs_dropout_prob":0.1,"position_embedding_type":"absolute"}"#;
    let bert_dir = TempDir::new("fuzz-bert");
    let tu_a = b"1, 2\n2, 1\n2, 3\n3, 2\n3, 1\n1, 3\n4, 5\n5, 4\n".to_vec();
    let tu_ind = b"1\n1\n1\n2\n2\n".to_vec();
    let tu_lab = b"1\n-1\n".to_vec();
    let tu_nodes = b"0\n1\n2\n0\n1\n".to_vec();
    let tu_attr = b"0.5, 1\n1.5, 2\n-1, 0\n2, 2\n0, 0\n".to_vec();
    vec![
        (
            "IDX (plain or gzipped)",
            vec![
                one(idx_images.clone()),
                one(idx_labels.clone()),
                one(gzip(&idx_images)),
                one(gzip(&idx_labels)),
            ],
            Box::new(|f: &[Vec<u8>]| {
                if let Ok(b) = maybe_gunzip(f[0].clone(), p("f.idx")) {
                    let _ = parse_idx(&b, p("f.idx"));
                }
            }),
        ),
        (
            "CIFAR binary records",
            vec![one(cifar), one(cifar100)],
            Box::new(|f: &[Vec<u8>]| {
                for (lb, classes) in [(1, 10), (2, 100)] {
                    let (mut px, mut lab) = (Vec::new(), Vec::new());
                    let _ = parse_cifar_records(&f[0], p("c.bin"), lb, classes, &mut px, &mut lab);
                }
            }),
        ),
        (
            "STL-10 binary images and labels",
            vec![one(stl), one(vec![1, 2, 10, 3])],
            Box::new(|f: &[Vec<u8>]| {
                let _ = parse_stl10_images(&f[0], p("x.bin"));
                let _ = parse_stl10_labels(&f[0], p("y.bin"));
            }),
        ),
        (
            "image files (PNG, JPEG, BMP)",
            vec![
                one(image_file(image::ImageFormat::Png)),
                one(image_file(image::ImageFormat::Jpeg)),
                one(image_file(image::ImageFormat::Bmp)),
            ],
            Box::new(|f: &[Vec<u8>]| {
                for channels in [1, 3] {
                    let shape = ImageShape {
                        channels,
                        height: 8,
                        width: 8,
                    };
                    let _ = decode_image_bytes(&f[0], p("i.png"), shape);
                }
            }),
        ),
        (
            "sentences, one per line",
            vec![one(b"\xef\xbb\xbfOne.\r\n\n Two words. \nThree".to_vec())],
            Box::new(|f: &[Vec<u8>]| {
                let _ = parse_sentences(&f[0], p("s.txt"));
            }),
        ),
        (
            "NLI triplets CSV",
            vec![one(
                b"sent0,sent1,hard_neg\r\n\"a, \"\"q\"\"\",b,c\nd,e,f\n".to_vec(),
            )],
            Box::new(|f: &[Vec<u8>]| {
                let _ = parse_triplets(&f[0], p("nli.csv"));
            }),
        ),
        (
            "STS Benchmark, SemEval STS, SICK",
            vec![
                one(b"main-news\theadlines\t2016\t0012\t4\tA \"q\", b\tC\tl\tl\nmain-captions\tMSRvid\t2012test\t0001\t5.000\tA man.\tA man!\n".to_vec()),
                one(b"4.4\ta\tb\n\tc\td\n0.8\te\tf\n".to_vec()),
                one(b"pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n1\tA b.\tC d.\t4.5\tNEUTRAL\n".to_vec()),
            ],
            Box::new(|f: &[Vec<u8>]| {
                let _ = parse_stsb(&f[0], p("sts.csv"), "s");
                let _ = parse_semeval(&f[0], p("sts.txt"), "s");
                let _ = parse_sick(&f[0], p("sick.txt"), "s");
            }),
        ),
        (
            "image-caption pairs (TSV, CSV)",
            vec![
                one(b"id\ttitle\tfilepath\n1\t\"A cat,\tsitting\"\tcat.png\n2\tA dog.\tdog.png\n".to_vec()),
                one(b"image,caption\na.jpg,\"x, \"\"y\"\"\"\nb.jpg,z\n".to_vec()),
            ],
            Box::new(|f: &[Vec<u8>]| {
                let _ = parse_pairs(&f[0], p("pairs.tsv"), &PairsFormat::default());
                let csv = PairsFormat {
                    separator: ',',
                    image_key: "image".into(),
                    caption_key: "caption".into(),
                };
                let _ = parse_pairs(&f[0], p("pairs.csv"), &csv);
            }),
        ),
        (
            "TU graph sets",
            vec![
                vec![tu_a.clone(), tu_ind.clone(), tu_lab.clone()],
                vec![tu_a, tu_ind, tu_lab, tu_nodes, tu_attr],
            ],
            Box::new(|f: &[Vec<u8>]| {
                let file = |i: usize| TuFile {
                    bytes: &f[i],
                    path: p("t.txt"),
                };
                let files = TuFiles {
                    a: file(0),
                    graph_indicator: file(1),
                    graph_labels: file(2),
                    node_labels: (f.len() > 3).then(|| file(3)),
                    node_attributes: (f.len() > 4).then(|| file(4)),
                };
                for (node_attributes, label_degrees) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let options = TuOptions {
                        node_attributes,
                        label_degrees,
                        ..TuOptions::default()
                    };
                    let _ = parse_tu("T", &files, &options);
                }
            }),
        ),
        (
            "Planetoid node sets",
            vec![vec![
                b"0 3\n\n1\n".to_vec(),
                b"2\n-1\n0\n".to_vec(),
                b"0 1\n1 2\n0 1\n".to_vec(),
                b"0\n".to_vec(),
                b"1\n".to_vec(),
                b"2\n".to_vec(),
            ]],
            Box::new(|f: &[Vec<u8>]| {
                let file = |i: usize| PlanetoidFile {
                    bytes: &f[i],
                    path: p("p.txt"),
                };
                let files = PlanetoidFiles {
                    features: file(0),
                    labels: file(1),
                    edges: file(2),
                    train: file(3),
                    val: file(4),
                    test: file(5),
                };
                let _ = parse_planetoid("P", &files);
            }),
        ),
        (
            "LINQS citation graphs (Cora's)",
            vec![vec![
                b"31336\t0\t1\tTheory\n35\t1\t0\tCase_Based\n7\t1\t1\tTheory\n".to_vec(),
                b"35\t31336\n7\t35\n31336\t35\n".to_vec(),
            ]],
            Box::new(|f: &[Vec<u8>]| {
                let file = |i: usize| PlanetoidFile {
                    bytes: &f[i],
                    path: p("cora.content"),
                };
                let split = LinqsSplit {
                    train: 0..1,
                    val: 1..2,
                    test: 2..3,
                };
                let files = LinqsFiles {
                    content: file(0),
                    cites: file(1),
                };
                let _ = parse_linqs("cora", &files, &split);
            }),
        ),
        (
            "BERT config.json",
            vec![one(bert.to_vec())],
            Box::new(move |f: &[Vec<u8>]| {
                std::fs::write(bert_dir.join("config.json"), &f[0]).unwrap();
                for pooling in [BertPooling::Mean, BertPooling::Cls] {
                    let _ = read_bert_config(&bert_dir, pooling);
                }
            }),
        ),
    ]
}

/// The tiny SimCLR run whose checkpoint the checkpoint targets damage.
struct TinyRun {
    dir: TempDir,
    data: ImageDataset,
    batcher: ImageBatcher,
    simclr: SimClrConfig,
    backbone: ResNetConfig,
}

impl TinyRun {
    fn new() -> Self {
        let shape = ImageShape {
            channels: 1,
            height: 8,
            width: 8,
        };
        let n = 16;
        let pixels = (0..n * 64).map(|i| (i * 37 % 251) as u8).collect();
        let labels = (0..n as u32).map(|i| i % 2).collect();
        let data = ImageDataset::new(pixels, labels, shape, vec!["a".into(), "b".into()]).unwrap();
        let backbone = ResNetConfig::new(1, BlockKind::Basic, vec![1], vec![4], Stem::Cifar, 4);
        TinyRun {
            dir: TempDir::new("fuzz-ckpt"),
            data,
            batcher: ImageBatcher::new(
                SimClrAugmentConfig::new(vec![0.5], vec![0.25])
                    .with_blur_prob(0.0)
                    .init(1),
            ),
            simclr: SimClrConfig::for_backbone(&backbone, 4).with_temperature(0.5),
            backbone,
        }
    }

    /// One epoch (resume = false) or a resume of the checkpoint in `dir` (which ends at once
    /// when the checkpoint says the epoch is done).
    fn run(&self, resume: bool) -> Result<(), contrast::methods::Error> {
        let device = Default::default();
        let model = self
            .simclr
            .init_model::<B, _>(&self.backbone, &device)
            .unwrap();
        let mut method = self.simclr.init().unwrap();
        let views = self.batcher.views_of(&self.data);
        let config = TrainConfig::new(OptimizerConfig::new())
            .with_epochs(1)
            .with_batch_size(8)
            .with_batch_similarity(false);
        let run = RunDir {
            dir: Some(self.dir.to_path_buf()),
            resume,
            overwrite: !resume,
            ..RunDir::default()
        };
        train(&mut method, model, &views, &mut [], &config, &run, &device).map(|_| ())
    }
}

fn checkpoint_targets() -> Vec<Target> {
    let tiny = TinyRun::new();
    tiny.run(false).unwrap();
    let path = tiny.dir.join("checkpoint.bin");
    let good = std::fs::read(&path).unwrap();
    let sections = checkpoint::decode(&good, &path).unwrap();
    let seed = vec![
        sections.header.clone(),
        sections.model.clone(),
        sections.optimizer.clone(),
        sections.sampler.clone(),
    ];
    vec![
        (
            "checkpoint file (decode)",
            vec![vec![good]],
            Box::new(|f: &[Vec<u8>]| {
                let _ = checkpoint::decode(&f[0], p("checkpoint.bin"));
            }),
        ),
        (
            "checkpoint sections with a valid checksum (resume)",
            vec![seed],
            Box::new(move |f: &[Vec<u8>]| {
                let data = checkpoint::CheckpointData {
                    header: f[0].clone(),
                    model: f[1].clone(),
                    optimizer: f[2].clone(),
                    sampler: f[3].clone(),
                };
                checkpoint::write_atomic(&path, &data).unwrap();
                let _ = tiny.run(true);
            }),
        ),
    ]
}

#[test]
fn no_parser_and_no_checkpoint_decoder_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        *PANIC.lock().unwrap() = Some(info.to_string());
    }));
    let budget = budget();
    let mut rows = Vec::new();
    for (name, seeds, target) in parser_targets().into_iter().chain(checkpoint_targets()) {
        let (inputs, panics) = fuzz(name, &seeds, budget, &*target);
        rows.push((name, inputs, panics));
    }
    std::panic::set_hook(hook);
    println!("| target | inputs | panics |\n|---|---:|---:|");
    for (name, inputs, panics) in &rows {
        println!("| {name} | {inputs} | {panics} |");
    }
    let total: usize = rows.iter().map(|r| r.2).sum();
    assert_eq!(
        total, 0,
        "{total} input(s) panicked; see [fuzz] lines above"
    );
}
