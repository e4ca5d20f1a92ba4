//! Sentence corpora, NLI triplets and STS evaluation sets: parsers over bytes (which never
//! panic) and loaders that read the files.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::error::{numbered_lines, read_file, utf8_text};

/// A corpus of sentences for unsupervised training (SimCSE's `wiki1m_for_simcse.txt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sentences {
    /// The sentences, in file order, without surrounding whitespace.
    pub sentences: Vec<String>,
    /// Blank (or whitespace-only) lines that were skipped.
    pub blank_lines: usize,
}

impl Sentences {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    /// True when there is no sentence.
    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }
}

/// Parses a file with one sentence per line; blank lines are skipped and counted.
///
/// # Errors
/// [`Error::Empty`] for an empty file or one with only blank lines, [`Error::Format`] naming
/// the line that is not UTF-8.
pub fn parse_sentences(bytes: &[u8], path: &Path) -> Result<Sentences, Error> {
    let text = utf8_text(bytes, path)?;
    let mut out = Sentences::default();
    for (_, line) in numbered_lines(text) {
        let line = line.trim();
        if line.is_empty() {
            out.blank_lines += 1;
        } else {
            out.sentences.push(line.to_string());
        }
    }
    // `split` yields an empty piece after a final newline: not a blank line of the file.
    if text.ends_with('\n') {
        out.blank_lines -= 1;
    }
    if out.is_empty() {
        return Err(Error::empty(path, "no sentence, only blank lines"));
    }
    Ok(out)
}

/// Reads a file with one sentence per line.
///
/// # Errors
/// As [`parse_sentences`], plus [`Error::Io`].
pub fn load_sentences(path: &Path) -> Result<Sentences, Error> {
    parse_sentences(&read_file(path)?, path)
}

/// Sentence pairs or triplets for supervised training (SimCSE's `nli_for_simcse.csv`): an
/// anchor, an entailed positive and, for triplets, a contradicting hard negative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triplets {
    /// The first column (`sent0`).
    pub anchors: Vec<String>,
    /// The second column (`sent1`), the anchor's positive.
    pub positives: Vec<String>,
    /// The third column (`hard_neg`), when the file has one.
    pub negatives: Option<Vec<String>>,
}

impl Triplets {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// Splits RFC 4180 CSV (or, with another `separator`, TSV and the like) into records, each with
/// the 1-based line it starts on. Quoted fields may hold separators, doubled quotes and
/// newlines; a quote inside an unquoted field is kept as a character; blank lines are skipped.
///
/// # Errors
/// [`Error::Format`] naming the line of an unclosed quote or of text after a closing quote.
pub fn csv_records(
    text: &str,
    path: &Path,
    separator: char,
) -> Result<Vec<(usize, Vec<String>)>, Error> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();
    // True at the start of a field (where a quote opens a quoted field).
    let mut field_start = true;
    // True when the current record has any character (blank lines have none).
    let mut any = false;
    loop {
        let Some(c) = chars.next() else {
            if any {
                fields.push(std::mem::take(&mut field));
                records.push((record_line, std::mem::take(&mut fields)));
            }
            return Ok(records);
        };
        match c {
            '"' if field_start => {
                any = true;
                let open = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(Error::format(
                                path,
                                open,
                                "a quoted field opened on this line is never closed",
                            ));
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            field.push(ch);
                        }
                    }
                }
                match chars.peek() {
                    None | Some('\n') | Some('\r') => field_start = false,
                    Some(&sep) if sep == separator => field_start = false,
                    Some(other) => {
                        return Err(Error::format(
                            path,
                            line,
                            format!(
                                "`{other}` after the closing quote of field {} (quotes inside a quoted field are doubled: \"\")",
                                fields.len() + 1
                            ),
                        ));
                    }
                }
            }
            c if c == separator => {
                any = true;
                fields.push(std::mem::take(&mut field));
                field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any {
                    fields.push(std::mem::take(&mut field));
                    records.push((record_line, std::mem::take(&mut fields)));
                }
                line += 1;
                record_line = line;
                any = false;
                field_start = true;
            }
            _ => {
                any = true;
                field_start = false;
                field.push(c);
            }
        }
    }
}

/// Parses SimCSE's NLI CSV: a header of two (`sent0,sent1`) or three (`sent0,sent1,hard_neg`)
/// columns, then one pair or triplet per record, RFC 4180 quoting.
///
/// # Errors
/// [`Error::Empty`] for an empty file or a header without rows, [`Error::Format`] naming the
/// line of a record with the wrong number of fields, an unclosed quote, text after a closing
/// quote, or bytes that are not UTF-8.
pub fn parse_triplets(bytes: &[u8], path: &Path) -> Result<Triplets, Error> {
    let text = utf8_text(bytes, path)?;
    let records = csv_records(text, path, ',')?;
    let Some(((header_line, header), rows)) = records.split_first() else {
        return Err(Error::empty(path, "no header and no rows"));
    };
    let columns = header.len();
    if !(2..=3).contains(&columns) {
        return Err(Error::format(
            path,
            *header_line,
            format!(
                "the header has {columns} columns, expected 2 or 3 (sent0,sent1[,hard_neg]): {}",
                header.join(",")
            ),
        ));
    }
    if rows.is_empty() {
        return Err(Error::empty(path, "a header but no rows"));
    }
    let mut out = Triplets {
        negatives: (columns == 3).then(Vec::new),
        ..Triplets::default()
    };
    for (line, fields) in rows {
        if fields.len() != columns {
            return Err(Error::format(
                path,
                *line,
                format!(
                    "{} fields, the header has {columns} ({})",
                    fields.len(),
                    header.join(",")
                ),
            ));
        }
        let mut f = fields.iter().cloned();
        out.anchors.extend(f.next());
        out.positives.extend(f.next());
        if let Some(neg) = out.negatives.as_mut() {
            neg.extend(f.next());
        }
    }
    Ok(out)
}

/// Reads SimCSE's NLI CSV.
///
/// # Errors
/// As [`parse_triplets`], plus [`Error::Io`].
pub fn load_triplets(path: &Path) -> Result<Triplets, Error> {
    parse_triplets(&read_file(path)?, path)
}

/// Sentence pairs with gold similarity scores: one subset of an STS task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StsSet {
    /// The subset's name for reports ("STS12 MSRpar", "STS-B test").
    pub name: String,
    /// The first sentence of each pair.
    pub first: Vec<String>,
    /// The second sentence of each pair.
    pub second: Vec<String>,
    /// The gold score of each pair (0-5 for STS, 1-5 for SICK).
    pub scores: Vec<f32>,
    /// Pairs without a gold score, skipped (SemEval 2015-2016 files list them).
    pub unscored: usize,
}

impl StsSet {
    /// Number of scored pairs.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when there is no scored pair.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    fn new(name: &str) -> Self {
        StsSet {
            name: name.to_string(),
            ..StsSet::default()
        }
    }

    fn push(&mut self, first: &str, second: &str, score: f32) {
        self.first.push(first.to_string());
        self.second.push(second.to_string());
        self.scores.push(score);
    }

    fn non_empty(self, path: &Path) -> Result<Self, Error> {
        if self.is_empty() {
            Err(Error::empty(path, "no scored sentence pair"))
        } else {
            Ok(self)
        }
    }
}

/// Parses a gold score and checks it lies in `range`.
fn score(field: &str, range: (f32, f32), path: &Path, line: usize) -> Result<f32, Error> {
    let s: f32 = field
        .trim()
        .parse()
        .map_err(|_| Error::format(path, line, format!("score `{field}` is not a number")))?;
    if !(range.0..=range.1).contains(&s) {
        return Err(Error::format(
            path,
            line,
            format!("score {s} is outside {}..={}", range.0, range.1),
        ));
    }
    Ok(s)
}

/// Parses an STS Benchmark file (`sts-{train,dev,test}.csv`): tab-separated genre, file, year,
/// id, score, sentence 1, sentence 2, and on some rows extra licence columns. Fields are split
/// on tabs only; quotes are part of the sentences.
///
/// # Errors
/// [`Error::Format`] naming the line with fewer than 7 fields, a score that is not a number in
/// 0..=5, or bytes that are not UTF-8; [`Error::Empty`] for a file without pairs.
pub fn parse_stsb(bytes: &[u8], path: &Path, name: &str) -> Result<StsSet, Error> {
    let text = utf8_text(bytes, path)?;
    let mut set = StsSet::new(name);
    for (line, row) in numbered_lines(text) {
        if row.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 7 {
            return Err(Error::format(
                path,
                line,
                format!(
                    "{} tab-separated fields, expected at least 7 (genre, file, year, id, score, sentence 1, sentence 2)",
                    f.len()
                ),
            ));
        }
        set.push(f[5], f[6], score(f[4], (0.0, 5.0), path, line)?);
    }
    set.non_empty(path)
}

/// Parses a SemEval STS file (`score<TAB>sentence 1<TAB>sentence 2`); a pair with an empty
/// score has no gold label and is skipped and counted in [`StsSet::unscored`].
///
/// # Errors
/// [`Error::Format`] naming the line without exactly 3 fields, a score that is not a number in
/// 0..=5, or bytes that are not UTF-8; [`Error::Empty`] for a file without scored pairs.
pub fn parse_semeval(bytes: &[u8], path: &Path, name: &str) -> Result<StsSet, Error> {
    let text = utf8_text(bytes, path)?;
    let mut set = StsSet::new(name);
    for (line, row) in numbered_lines(text) {
        if row.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() != 3 {
            return Err(Error::format(
                path,
                line,
                format!(
                    "{} tab-separated fields, expected 3 (score, sentence 1, sentence 2)",
                    f.len()
                ),
            ));
        }
        if f[0].trim().is_empty() {
            set.unscored += 1;
            continue;
        }
        set.push(f[1], f[2], score(f[0], (0.0, 5.0), path, line)?);
    }
    set.non_empty(path)
}

/// Parses a SICK file (`SICK_train.txt`, `SICK_trial.txt`, `SICK_test_annotated.txt`): a
/// tab-separated header naming `sentence_A`, `sentence_B` and `relatedness_score` among its
/// columns, then one pair per line (SICK-R: the relatedness score, 1-5).
///
/// # Errors
/// [`Error::Format`] for a header without those columns, a line with a different number of
/// fields than the header, a score that is not a number in 1..=5, or bytes that are not UTF-8;
/// [`Error::Empty`] for a file without pairs.
pub fn parse_sick(bytes: &[u8], path: &Path, name: &str) -> Result<StsSet, Error> {
    let text = utf8_text(bytes, path)?;
    let mut lines = numbered_lines(text).filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(Error::empty(path, "only blank lines"));
    };
    let names: Vec<&str> = header.split('\t').map(str::trim).collect();
    let column = |want: &str| {
        names.iter().position(|n| *n == want).ok_or_else(|| {
            Error::format(
                path,
                header_line,
                format!(
                    "the header has no `{want}` column (expected sentence_A, sentence_B, relatedness_score): {}",
                    names.join(" | ")
                ),
            )
        })
    };
    let (a, b, s) = (
        column("sentence_A")?,
        column("sentence_B")?,
        column("relatedness_score")?,
    );
    let mut set = StsSet::new(name);
    for (line, row) in lines {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() != names.len() {
            return Err(Error::format(
                path,
                line,
                format!(
                    "{} tab-separated fields, the header has {}",
                    f.len(),
                    names.len()
                ),
            ));
        }
        set.push(f[a], f[b], score(f[s], (1.0, 5.0), path, line)?);
    }
    set.non_empty(path)
}

/// A split of STS Benchmark or SICK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training pairs.
    Train,
    /// Development pairs (SICK calls them "trial").
    Dev,
    /// Test pairs.
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

fn read_existing(path: &Path, what: &str, hint: &str) -> Result<Vec<u8>, Error> {
    if !path.is_file() {
        return Err(Error::NotFound {
            what: format!("{what} ({})", path.display()),
            hint: hint.to_string(),
        });
    }
    read_file(path)
}

const STS_HINT: &str = "pass the folder that holds `stsbenchmark/` and `sts_brmson/` (the \
    project's shared `datasets` folder), or download STS Benchmark from \
    http://ixa2.si.ehu.eus/stswiki and SemEval STS / SICK from their task pages";

/// Loads a split of STS Benchmark from its folder (`sts-train.csv`, `sts-dev.csv`,
/// `sts-test.csv`).
///
/// # Errors
/// [`Error::NotFound`] when the file is missing, else as [`parse_stsb`].
pub fn load_stsb(dir: &Path, split: Split) -> Result<StsSet, Error> {
    let path = dir.join(format!("sts-{}.csv", split.name()));
    let bytes = read_existing(&path, "STS Benchmark", STS_HINT)?;
    parse_stsb(&bytes, &path, &format!("STS-B {}", split.name()))
}

/// Loads a split of SICK with its relatedness scores (SICK-R) from its folder
/// (`SICK_train.txt`, `SICK_trial.txt` for [`Split::Dev`], `SICK_test_annotated.txt`).
///
/// # Errors
/// [`Error::NotFound`] when the file is missing, else as [`parse_sick`].
pub fn load_sick(dir: &Path, split: Split) -> Result<StsSet, Error> {
    let file = match split {
        Split::Train => "SICK_train.txt",
        Split::Dev => "SICK_trial.txt",
        Split::Test => "SICK_test_annotated.txt",
    };
    let path = dir.join(file);
    let bytes = read_existing(&path, "SICK", STS_HINT)?;
    parse_sick(&bytes, &path, &format!("SICK-R {}", split.name()))
}

/// The test subsets of each SemEval STS year, as SentEval (and so SimCSE) evaluates them,
/// named by their file stems (`<year>/<subset>.test.tsv`).
pub const SEMEVAL_SUBSETS: [(u16, &[&str]); 5] = [
    (
        2012,
        &["MSRpar", "MSRvid", "SMTeuroparl", "OnWN", "SMTnews"],
    ),
    (2013, &["FNWN", "headlines", "OnWN", "SMT"]),
    (
        2014,
        &[
            "deft-forum",
            "deft-news",
            "headlines",
            "images",
            "OnWN",
            "tweet-news",
        ],
    ),
    (
        2015,
        &[
            "answers-forums",
            "answers-students",
            "belief",
            "headlines",
            "images",
        ],
    ),
    (
        2016,
        &[
            "answer-answer",
            "headlines",
            "plagiarism",
            "postediting",
            "question-question",
        ],
    ),
];

/// One evaluation task: its subsets, and the subsets the task defines that were not found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StsTask {
    /// "STS12" .. "STS16", "STS-B", "SICK-R".
    pub name: String,
    /// The subsets found, in the task's order.
    pub sets: Vec<StsSet>,
    /// Subsets of the task whose files are absent (STS12 MSRvid and STS13 SMT in the shared
    /// copy), so reports can say what a score was computed on.
    pub missing: Vec<String>,
}

impl StsTask {
    /// Number of scored pairs over all subsets.
    pub fn len(&self) -> usize {
        self.sets.iter().map(StsSet::len).sum()
    }

    /// True when no subset has a scored pair.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads the test subsets of SemEval STS `year` (2012-2016) from a `semeval-sts` folder laid
/// out as `<year>/<subset>.test.tsv`; absent subsets are listed in [`StsTask::missing`].
///
/// # Errors
/// [`Error::NotFound`] for a year outside 2012-2016 or one with no subset file, else as
/// [`parse_semeval`].
pub fn load_semeval(dir: &Path, year: u16) -> Result<StsTask, Error> {
    let Some((_, subsets)) = SEMEVAL_SUBSETS.iter().find(|(y, _)| *y == year) else {
        return Err(Error::NotFound {
            what: format!("SemEval STS {year}"),
            hint: "the SemEval STS tasks are 2012 to 2016".into(),
        });
    };
    let mut task = StsTask {
        name: format!("STS{}", year % 100),
        ..StsTask::default()
    };
    for subset in subsets.iter() {
        let path = dir
            .join(year.to_string())
            .join(format!("{subset}.test.tsv"));
        if !path.is_file() {
            task.missing.push(subset.to_string());
            continue;
        }
        let bytes = read_file(&path)?;
        let set = parse_semeval(&bytes, &path, &format!("{} {subset}", task.name))?;
        task.sets.push(set);
    }
    if task.sets.is_empty() {
        return Err(Error::NotFound {
            what: format!(
                "SemEval STS {year} ({})",
                dir.join(year.to_string()).display()
            ),
            hint: STS_HINT.into(),
        });
    }
    Ok(task)
}

/// The evaluation sets of the SimCSE paper: the seven tasks STS12-STS16, STS-B test and
/// SICK-R test, and STS-B dev for model selection.
#[derive(Debug, Clone, PartialEq)]
pub struct StsEval {
    /// STS12, STS13, STS14, STS15, STS16, STS-B (test), SICK-R (test), in the paper's order.
    pub tasks: Vec<StsTask>,
    /// STS Benchmark's development split.
    pub stsb_dev: StsSet,
}

/// The three folders [`load_sts_eval`] reads under `root`: STS Benchmark, SemEval STS, SICK.
pub fn sts_dirs(root: &Path) -> [PathBuf; 3] {
    [
        root.join("stsbenchmark"),
        root.join("sts_brmson").join("semeval-sts"),
        root.join("sts_brmson").join("sick2014"),
    ]
}

/// Loads the SimCSE paper's evaluation sets from `root`, which holds `stsbenchmark/`,
/// `sts_brmson/semeval-sts/` and `sts_brmson/sick2014/` (the layout of the project's shared
/// `datasets` folder; see [`sts_dirs`]).
///
/// # Errors
/// As [`load_stsb`], [`load_semeval`] and [`load_sick`].
pub fn load_sts_eval(root: &Path) -> Result<StsEval, Error> {
    let [stsb, semeval, sick] = sts_dirs(root);
    let mut tasks = Vec::with_capacity(7);
    for (year, _) in SEMEVAL_SUBSETS {
        tasks.push(load_semeval(&semeval, year)?);
    }
    let single = |name: &str, set: StsSet| StsTask {
        name: name.to_string(),
        sets: vec![set],
        missing: Vec::new(),
    };
    tasks.push(single("STS-B", load_stsb(&stsb, Split::Test)?));
    tasks.push(single("SICK-R", load_sick(&sick, Split::Test)?));
    Ok(StsEval {
        tasks,
        stsb_dev: load_stsb(&stsb, Split::Dev)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("x.txt")
    }

    #[test]
    fn sentences_skip_blank_lines_and_trim() {
        let s = parse_sentences(b"\xef\xbb\xbfOne.\r\n\n  \n Two words. \nThree", p()).unwrap();
        assert_eq!(s.sentences, ["One.", "Two words.", "Three"]);
        assert_eq!(s.blank_lines, 2);
        let s = parse_sentences(b"a\n\nb\n", p()).unwrap();
        assert_eq!((s.len(), s.blank_lines), (2, 1));
    }

    #[test]
    fn empty_and_blank_files_are_errors() {
        let e = parse_sentences(b"", p()).unwrap_err().to_string();
        assert_eq!(e, "x.txt: the file is empty");
        let e = parse_sentences(b"\n \n", p()).unwrap_err().to_string();
        assert!(e.contains("only blank lines"), "{e}");
    }

    #[test]
    fn non_utf8_names_the_line_and_byte() {
        let e = parse_sentences(b"ok\nfine\nab\xffcd\n", p()).unwrap_err();
        assert!(matches!(e, Error::Format { line: 3, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "x.txt:3: not valid UTF-8 (byte 3 of the line)"
        );
        let e = parse_stsb(b"\xc3", p(), "s").unwrap_err();
        assert!(matches!(e, Error::Format { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn csv_quotes_commas_and_newlines() {
        let csv = "sent0,sent1,hard_neg\r\n\
                   \"A, b\",\"He said \"\"hi\"\"\",plain\r\n\
                   \n\
                   \"two\nlines\",,x\"y\n\
                   last,row,here";
        let t = parse_triplets(csv.as_bytes(), p()).unwrap();
        assert_eq!(t.anchors, ["A, b", "two\nlines", "last"]);
        assert_eq!(t.positives, ["He said \"hi\"", "", "row"]);
        assert_eq!(t.negatives.unwrap(), ["plain", "x\"y", "here"]);
    }

    #[test]
    fn csv_pairs_have_no_negatives() {
        let t = parse_triplets(b"sent0,sent1\na,b\n", p()).unwrap();
        assert_eq!((t.len(), t.negatives), (1, None));
    }

    #[test]
    fn csv_errors_name_the_record_line() {
        let e = parse_triplets(b"sent0,sent1\n\"a\nb\",c\nd,e,f\n", p()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.txt:4: 3 fields, the header has 2 (sent0,sent1)"
        );
        let e = parse_triplets(b"sent0,sent1\na,b\n\"open,c\n", p()).unwrap_err();
        assert!(matches!(e, Error::Format { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("never closed"));
        let e = parse_triplets(b"sent0,sent1\n\"a\"b,c\n", p()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.txt:2: `b` after the closing quote"),
            "{e}"
        );
        let e = parse_triplets(b"a,b,c,d\n1,2,3,4\n", p()).unwrap_err();
        assert!(e.to_string().contains("4 columns"), "{e}");
        let e = parse_triplets(b"sent0,sent1\n", p()).unwrap_err();
        assert!(matches!(e, Error::Empty { .. }), "{e}");
    }

    #[test]
    fn stsb_splits_on_tabs_only_and_ignores_extra_columns() {
        let file = "main-news\theadlines\t2016\t0012\t4\tA \"quoted\", b\tC\tlicence\tlicence\n\
                    main-captions\tMSRvid\t2012\t0001\t5.000\tX\tY\n";
        let s = parse_stsb(file.as_bytes(), p(), "STS-B dev").unwrap();
        assert_eq!(s.first, ["A \"quoted\", b", "X"]);
        assert_eq!(s.second, ["C", "Y"]);
        assert_eq!(s.scores, [4.0, 5.0]);
        let e = parse_stsb(b"a\tb\tc\td\t6\tx\ty\n", p(), "s").unwrap_err();
        assert_eq!(e.to_string(), "x.txt:1: score 6 is outside 0..=5");
        let e = parse_stsb(b"a\tb\tc\td\tfive\tx\ty\n", p(), "s").unwrap_err();
        assert!(e.to_string().contains("`five` is not a number"), "{e}");
        let e = parse_stsb(b"a\tb\tc\n", p(), "s").unwrap_err();
        assert!(
            e.to_string().starts_with("x.txt:1: 3 tab-separated fields"),
            "{e}"
        );
    }

    #[test]
    fn semeval_skips_and_counts_unscored_pairs() {
        let s = parse_semeval(b"4.4\ta\tb\n\tc\td\n0.8\te\tf\n", p(), "STS15 x").unwrap();
        assert_eq!((s.len(), s.unscored), (2, 1));
        assert_eq!(s.scores, [4.4, 0.8]);
        let e = parse_semeval(b"1\ta\tb\n2\tab\n", p(), "s").unwrap_err();
        assert!(e.to_string().starts_with("x.txt:2: 2 tab-separated"), "{e}");
        let e = parse_semeval(b"\ta\tb\n", p(), "s").unwrap_err();
        assert!(matches!(e, Error::Empty { .. }), "{e}");
    }

    #[test]
    fn sick_reads_columns_by_header_name() {
        let file = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\r\n\
                    6\tThere is no boy\tA group of kids\t3.3\tNEUTRAL\r\n";
        let s = parse_sick(file.as_bytes(), p(), "SICK-R test").unwrap();
        assert_eq!(s.first, ["There is no boy"]);
        assert_eq!(s.second, ["A group of kids"]);
        assert_eq!(s.scores, [3.3]);
        let e = parse_sick(b"id\ta\tb\n", p(), "s").unwrap_err();
        assert!(e.to_string().contains("no `sentence_A` column"), "{e}");
        let bad = "sentence_A\tsentence_B\trelatedness_score\nx\ty\t0.5\n";
        let e = parse_sick(bad.as_bytes(), p(), "s").unwrap_err();
        assert_eq!(e.to_string(), "x.txt:2: score 0.5 is outside 1..=5");
    }

    #[test]
    fn missing_files_say_where_they_were_looked_for() {
        let e = load_stsb(Path::new("/nonexistent"), Split::Test).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sts-test.csv"), "{e}");
        let e = load_semeval(Path::new("/nonexistent"), 2011).unwrap_err();
        assert!(e.to_string().contains("2012 to 2016"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_sentences(&bytes, p());
            let _ = parse_triplets(&bytes, p());
            let _ = parse_stsb(&bytes, p(), "s");
            let _ = parse_semeval(&bytes, p(), "s");
            let _ = parse_sick(&bytes, p(), "s");
        }

        #[test]
        fn parsers_never_panic_on_format_like_text(
            text in "[a\"\t,\n\r0-9.é]{0,120}",
        ) {
            let _ = parse_sentences(text.as_bytes(), p());
            let _ = parse_triplets(text.as_bytes(), p());
            let _ = parse_stsb(text.as_bytes(), p(), "s");
            let _ = parse_semeval(text.as_bytes(), p(), "s");
            let _ = parse_sick(text.as_bytes(), p(), "s");
            let _ = parse_sick(format!("sentence_A\tsentence_B\trelatedness_score\n{text}").as_bytes(), p(), "s");
        }

        #[test]
        fn quoted_csv_fields_round_trip(
            rows in proptest::collection::vec(proptest::collection::vec("[a-z ,\"\n]{0,12}", 3), 1..6),
        ) {
            let quote = |s: &String| format!("\"{}\"", s.replace('"', "\"\""));
            let mut csv = String::from("sent0,sent1,hard_neg\n");
            for r in &rows {
                csv.push_str(&r.iter().map(quote).collect::<Vec<_>>().join(","));
                csv.push_str("\r\n");
            }
            let t = parse_triplets(csv.as_bytes(), p()).unwrap();
            prop_assert_eq!(t.len(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(&t.anchors[i], &r[0]);
                prop_assert_eq!(&t.positives[i], &r[1]);
                prop_assert_eq!(&t.negatives.as_ref().unwrap()[i], &r[2]);
            }
        }
    }
}
