//! The loaders against the real evaluation files of the project's shared `datasets` folder.
//! They run when `CONTRAST_SHARED_DATASETS` names that folder (`.ci/run` sets it when the
//! folder is there) and are skipped with a message otherwise.

use std::path::PathBuf;

use contrast_text::{
    Split, StsSet, load_semeval, load_sick, load_sts_eval, load_stsb, parse_semeval, sts_dirs,
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

fn check_pairs(set: &StsSet, lo: f32, hi: f32) {
    assert_eq!(set.first.len(), set.len(), "{}", set.name);
    assert_eq!(set.second.len(), set.len(), "{}", set.name);
    assert!(
        set.scores.iter().all(|s| (lo..=hi).contains(s)),
        "{}",
        set.name
    );
    assert!(
        set.first
            .iter()
            .chain(&set.second)
            .all(|s| !s.is_empty() && !s.contains('\t')),
        "{}: empty sentence or tab in a sentence",
        set.name
    );
}

#[test]
fn sts_benchmark_splits_have_their_published_sizes() {
    let Some(root) = datasets("sts_benchmark_splits_have_their_published_sizes") else {
        return;
    };
    let [stsb, _, _] = sts_dirs(&root);
    for (split, n) in [
        (Split::Train, 5749),
        (Split::Dev, 1500),
        (Split::Test, 1379),
    ] {
        let set = load_stsb(&stsb, split).unwrap();
        assert_eq!((set.len(), set.unscored), (n, 0), "{}", set.name);
        check_pairs(&set, 0.0, 5.0);
    }
    // A row with the licence columns: the sentences stop at the seventh field.
    let train = load_stsb(&stsb, Split::Train).unwrap();
    assert!(train.second.iter().all(|s| !s.contains("emm.newsbrief")));
}

#[test]
fn sick_splits_have_their_published_sizes() {
    let Some(root) = datasets("sick_splits_have_their_published_sizes") else {
        return;
    };
    let [_, _, sick] = sts_dirs(&root);
    for (split, n) in [(Split::Train, 4500), (Split::Dev, 500), (Split::Test, 4927)] {
        let set = load_sick(&sick, split).unwrap();
        assert_eq!(set.len(), n, "{}", set.name);
        check_pairs(&set, 1.0, 5.0);
    }
    // The test file has CRLF line ends: no sentence or score keeps the `\r`.
    let test = load_sick(&sick, Split::Test).unwrap();
    assert_eq!(
        test.first[0],
        "There is no boy playing outdoors and there is no man smiling"
    );
    assert_eq!(test.scores[0], 3.3);
}

/// A subset's name, scored pairs and unscored pairs.
type Subset = (&'static str, usize, usize);

#[test]
fn semeval_years_match_senteval_counts() {
    let Some(root) = datasets("semeval_years_match_senteval_counts") else {
        return;
    };
    let [_, semeval, _] = sts_dirs(&root);
    // Scored pairs per subset, as SentEval loads them (the shared copy lacks STS12 MSRvid and
    // STS13 SMT).
    let expected: [(u16, &[Subset], &[&str]); 5] = [
        (
            2012,
            &[
                ("MSRpar", 750, 0),
                ("SMTeuroparl", 459, 0),
                ("OnWN", 750, 0),
                ("SMTnews", 399, 0),
            ],
            &["MSRvid"],
        ),
        (
            2013,
            &[("FNWN", 189, 0), ("headlines", 750, 0), ("OnWN", 561, 0)],
            &["SMT"],
        ),
        (
            2014,
            &[
                ("deft-forum", 450, 0),
                ("deft-news", 300, 0),
                ("headlines", 750, 0),
                ("images", 750, 0),
                ("OnWN", 750, 0),
                ("tweet-news", 750, 0),
            ],
            &[],
        ),
        (
            2015,
            &[
                ("answers-forums", 375, 1625),
                ("answers-students", 750, 750),
                ("belief", 375, 1625),
                ("headlines", 750, 750),
                ("images", 750, 750),
            ],
            &[],
        ),
        (
            2016,
            &[
                ("answer-answer", 254, 1318),
                ("headlines", 249, 1249),
                ("plagiarism", 230, 1041),
                ("postediting", 244, 3043),
                ("question-question", 209, 1346),
            ],
            &[],
        ),
    ];
    for (year, subsets, missing) in expected {
        let task = load_semeval(&semeval, year).unwrap();
        assert_eq!(task.missing, missing, "{year}");
        let got: Vec<(String, usize, usize)> = task
            .sets
            .iter()
            .map(|s| (s.name.clone(), s.len(), s.unscored))
            .collect();
        let want: Vec<(String, usize, usize)> = subsets
            .iter()
            .map(|(n, k, u)| (format!("STS{} {n}", year % 100), *k, *u))
            .collect();
        assert_eq!(got, want);
        task.sets.iter().for_each(|s| check_pairs(s, 0.0, 5.0));
    }
}

#[test]
fn simcse_evaluation_suite_loads_in_the_papers_order() {
    let Some(root) = datasets("simcse_evaluation_suite_loads_in_the_papers_order") else {
        return;
    };
    let eval = load_sts_eval(&root).unwrap();
    let sizes: Vec<(&str, usize)> = eval
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.len()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("STS12", 2358),
            ("STS13", 1500),
            ("STS14", 3750),
            ("STS15", 3000),
            ("STS16", 1186),
            ("STS-B", 1379),
            ("SICK-R", 4927),
        ]
    );
    assert_eq!(eval.stsb_dev.len(), 1500);
}

#[test]
fn every_semeval_file_parses_including_training_files() {
    let Some(root) = datasets("every_semeval_file_parses_including_training_files") else {
        return;
    };
    let [_, semeval, _] = sts_dirs(&root);
    let mut files = 0;
    for year in std::fs::read_dir(&semeval).unwrap() {
        let year = year.unwrap().path();
        if !year.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&year).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "tsv") {
                let set = parse_semeval(&std::fs::read(&f).unwrap(), &f, "any").unwrap();
                assert!(!set.is_empty(), "{}", f.display());
                files += 1;
            }
        }
    }
    assert!(files >= 23, "only {files} files");
}
