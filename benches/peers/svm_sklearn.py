#!/usr/bin/env python3
"""The reference side of contrast's graph-classification protocol: scikit-learn on the same
embeddings.

`contrast reproduce graphcl|mvgrl --save-embeddings --out RUN` leaves, in each training's
folder (`RUN/seed-K/shuffled`, `RUN/seed-K/batch-sampler`), `labels.npy` and the embeddings the
SVM classified before and after training (`embeddings-init.npy`, `embeddings-trained.npy`).
This script classifies each with the protocol the papers' code runs (InfoGraph's and GraphCL's
`svc_classify`: `SVC()` in `GridSearchCV` over C in {1e-3, ..., 1e3} with 5 folds, inside 10
shuffled stratified folds; MVGRL's the same with `LinearSVC()`), and prints a Markdown table
beside the accuracies contrast's `metrics.json` recorded for the same embeddings. The two sides
draw different folds, which alone moves an accuracy by about a point on small sets, so
scikit-learn runs with several fold seeds and the table shows their mean and range: a
difference inside that range is fold noise, not the solver.

    $CONTRAST_PYTHON benches/peers/svm_sklearn.py RUN [--kernel rbf|linear] [--fold-seeds 3]
        [--jobs N]

The kernel defaults to the one in `RUN/metrics.json`. Needs numpy and scikit-learn.
"""
import argparse
import json
import pathlib
import time
import warnings

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC, LinearSVC

C_GRID = [0.001, 0.01, 0.1, 1, 10, 100, 1000]


def svc_classify(x, y, kernel, seed, jobs):
    """Mean and std (percent) of the test accuracy over 10 stratified folds, C searched inside."""
    scores = []
    for train, test in StratifiedKFold(10, shuffle=True, random_state=seed).split(x, y):
        machine = SVC() if kernel == "rbf" else LinearSVC()
        search = GridSearchCV(machine, {"C": C_GRID}, cv=5, scoring="accuracy", n_jobs=jobs)
        search.fit(x[train], y[train])
        scores.append((search.predict(x[test]) == y[test]).mean())
    return 100 * np.mean(scores), 100 * np.std(scores)


def contrast_accuracy(metrics, folder, which):
    """What contrast recorded for these embeddings, from metrics.json's seed runs."""
    if metrics is None:
        return None
    seed = int(folder.parent.name.removeprefix("seed-"))
    run = next((s for s in metrics["seeds"] if s["seed"] == seed), None)
    if run is None:
        return None
    if folder.name == "batch-sampler":
        return run["batch_sampler"]["mean"] if which == "trained" else run["random_init"]["mean"]
    return run["trained" if which == "trained" else "random_init"]["mean"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=pathlib.Path, help="the --out folder of a graph run")
    parser.add_argument("--kernel", choices=["rbf", "linear"])
    parser.add_argument("--fold-seeds", type=int, default=3,
                        help="scikit-learn's outer folds are drawn with seeds 0 to N - 1")
    parser.add_argument("--jobs", type=int, default=None, help="GridSearchCV's n_jobs")
    args = parser.parse_args()
    # LinearSVC at C = 1000 stops at its iteration limit on some folds, as in the papers' runs.
    warnings.filterwarnings("ignore", message=".*converge.*")

    metrics_path = args.run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    kernel = args.kernel or (metrics and metrics.get("svm_kernel", "Rbf").lower()) or "rbf"
    if args.fold_seeds < 1:
        raise SystemExit("--fold-seeds must be at least 1")
    folders = sorted((p.parent for p in args.run.glob("seed-*/*/labels.npy")),
                     key=lambda f: (int(f.parent.name.removeprefix("seed-")), f.name != "shuffled"))
    if not folders:
        raise SystemExit(f"{args.run}: no seed-*/*/labels.npy (run with --save-embeddings)")
    print(f"scikit-learn {__import__('sklearn').__version__}, {kernel} kernel, run {args.run}\n")
    print("| training | embeddings | contrast | scikit-learn, mean over fold seeds "
          "| their range | difference | seconds |")
    print("|---|---|---|---|---|---|---|")
    diffs = []
    for folder in folders:
        y = np.load(folder / "labels.npy").astype(np.int64)
        for which in ["init", "trained"]:
            path = folder / f"embeddings-{which}.npy"
            if not path.is_file():
                continue
            x = np.load(path).astype(np.float64)
            started = time.time()
            runs = [svc_classify(x, y, kernel, seed, args.jobs)[0]
                    for seed in range(args.fold_seeds)]
            mean, low, high = np.mean(runs), min(runs), max(runs)
            ours = contrast_accuracy(metrics, folder, which)
            diff = "" if ours is None else f"{ours - mean:+.2f}"
            if ours is not None:
                diffs.append(ours - mean)
            ours = "" if ours is None else f"{ours:.2f}"
            name = folder.relative_to(args.run)
            print(f"| {name} | {which} | {ours} | {mean:.2f} | {low:.2f} - {high:.2f} | {diff} "
                  f"| {time.time() - started:.1f} |")
    if diffs:
        print(f"\nmean difference {np.mean(diffs):+.2f}, mean absolute {np.mean(np.abs(diffs)):.2f}"
              f" over {len(diffs)} embeddings")


if __name__ == "__main__":
    main()
