#!/usr/bin/env python3
"""The reference side of contrast's graph-classification protocol: scikit-learn on the same
embeddings.

`contrast reproduce graphcl|mvgrl --save-embeddings --out RUN` leaves, in each training's
folder (`RUN/seed-K/shuffled`, `RUN/seed-K/batch-sampler`), `labels.npy`, the embeddings the
SVM classified before and after training (`embeddings-init.npy`, `embeddings-trained.npy`) and
the folds it used (`folds.npy`: row 0 the outer fold of each graph, row 1 + k the inner fold of
each graph while fold k is held out, -1 for fold k's own). This script classifies each with
the protocol the papers' code runs (InfoGraph's and GraphCL's `svc_classify`: `SVC()` in
`GridSearchCV` over C in {1e-3, ..., 1e3} with 5 folds, inside 10 shuffled stratified folds;
MVGRL's the same with `LinearSVC()`), and prints a Markdown table beside the accuracies
contrast's `metrics.json` recorded for the same embeddings.

First on contrast's own folds: the same splits on both sides, so any difference is the solver's
(the table counts the outer folds whose chosen C or accuracy differ, against scikit-learn's
first run). `SVC` is deterministic; `LinearSVC` visits the coordinates in a random order and,
where it stops at its 1,000-pass limit before converging, its result depends on that order, so
the linear kernel runs with `--solver-seeds N` random states and shows their mean and range.
Then with scikit-learn's own fold draws (`--fold-seeds N`, seeds 0 to N - 1; 0 skips them):
how far fold noise alone moves the number, for comparison.

    $CONTRAST_PYTHON benches/peers/svm_sklearn.py RUN [--kernel rbf|linear] [--fold-seeds 3]
        [--solver-seeds 3] [--jobs N]

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


def svc_classify(x, y, kernel, splits, jobs, solver_seed=None):
    """Each outer fold's test accuracy (percent) and chosen C, C searched inside its training
    set. `splits` yields (train, test, inner) with `inner` what GridSearchCV's `cv` takes;
    `solver_seed` is LinearSVC's `random_state` (the order of its coordinate descent)."""
    scores, chosen = [], []
    for train, test, inner in splits:
        machine = SVC() if kernel == "rbf" else LinearSVC(random_state=solver_seed)
        search = GridSearchCV(machine, {"C": C_GRID}, cv=inner, scoring="accuracy", n_jobs=jobs)
        search.fit(x[train], y[train])
        scores.append(100 * (search.predict(x[test]) == y[test]).mean())
        chosen.append(search.best_params_["C"])
    return scores, chosen


def sklearn_splits(x, y, seed):
    """scikit-learn's own draw: 10 shuffled stratified folds, 5 unshuffled inner ones."""
    for train, test in StratifiedKFold(10, shuffle=True, random_state=seed).split(x, y):
        yield train, test, 5


def contrast_splits(folds):
    """The splits contrast used (`folds.npy`), inner folds as indices into the training rows."""
    outer = folds[0]
    for k, inner in enumerate(folds[1:]):
        train, test = np.flatnonzero(outer != k), np.flatnonzero(outer == k)
        of = inner[train]
        yield train, test, [(np.flatnonzero(of != j), np.flatnonzero(of == j))
                            for j in range(of.max() + 1)]


def contrast_accuracy(metrics, folder, which):
    """What contrast recorded for these embeddings (`CvAccuracy`: mean, folds, chosen_c), from
    metrics.json's seed runs."""
    if metrics is None:
        return None
    seed = int(folder.parent.name.removeprefix("seed-"))
    run = next((s for s in metrics["seeds"] if s["seed"] == seed), None)
    if run is None:
        return None
    if folder.name == "batch-sampler":
        return run["batch_sampler"] if which == "trained" else run["random_init"]
    return run["trained" if which == "trained" else "random_init"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=pathlib.Path, help="the --out folder of a graph run")
    parser.add_argument("--kernel", choices=["rbf", "linear"])
    parser.add_argument("--fold-seeds", type=int, default=3,
                        help="also draw scikit-learn's own folds with seeds 0 to N - 1 (0: no)")
    parser.add_argument("--solver-seeds", type=int, default=3,
                        help="linear kernel: LinearSVC's random_state 0 to N - 1 on the same folds")
    parser.add_argument("--jobs", type=int, default=None, help="GridSearchCV's n_jobs")
    args = parser.parse_args()
    # LinearSVC at C = 1000 stops at its iteration limit on some folds, as in the papers' runs.
    warnings.filterwarnings("ignore", message=".*converge.*")

    metrics_path = args.run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    kernel = args.kernel or (metrics and metrics.get("svm_kernel", "Rbf").lower()) or "rbf"
    if args.fold_seeds < 0 or args.solver_seeds < 1:
        raise SystemExit("--fold-seeds must be 0 or more, --solver-seeds 1 or more")
    solver_seeds = list(range(args.solver_seeds)) if kernel == "linear" else [None]
    folders = sorted((p.parent for p in args.run.glob("seed-*/*/labels.npy")),
                     key=lambda f: (int(f.parent.name.removeprefix("seed-")), f.name != "shuffled"))
    if not folders:
        raise SystemExit(f"{args.run}: no seed-*/*/labels.npy (run with --save-embeddings)")
    print(f"scikit-learn {__import__('sklearn').__version__}, {kernel} kernel, run {args.run}\n")
    print("| training | embeddings | contrast | scikit-learn, same folds | difference "
          "| solver seeds' range | folds with another C | folds with another accuracy "
          "| scikit-learn, own folds: mean over seeds | their range | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    same, own = [], []
    for folder in folders:
        y = np.load(folder / "labels.npy").astype(np.int64)
        folds_path = folder / "folds.npy"
        folds = np.load(folds_path) if folds_path.is_file() else None
        for which in ["init", "trained"]:
            path = folder / f"embeddings-{which}.npy"
            if not path.is_file():
                continue
            x = np.load(path).astype(np.float64)
            started = time.time()
            ours = contrast_accuracy(metrics, folder, which)
            cells = [f"{ours['mean']:.2f}" if ours else ""]
            if folds is not None:
                runs = [svc_classify(x, y, kernel, contrast_splits(folds), args.jobs, s)
                        for s in solver_seeds]
                scores, chosen = runs[0]
                means = [np.mean(r[0]) for r in runs]
                mean = np.mean(means)
                cells.append(f"{mean:.2f}")
                spread = (f"{min(means):.2f} - {max(means):.2f}" if len(means) > 1
                          else "(deterministic)")
                if ours:
                    same.append(ours["mean"] - mean)
                    other_c = sum(a != b for a, b in zip(ours["chosen_c"], chosen))
                    other_acc = sum(abs(a - b) > 1e-9 for a, b in zip(ours["folds"], scores))
                    cells += [f"{ours['mean'] - mean:+.2f}", spread, str(other_c), str(other_acc)]
                else:
                    cells += ["", spread, "", ""]
            else:
                cells += ["no folds.npy", "", "", "", ""]
            if args.fold_seeds:
                runs = [np.mean(svc_classify(x, y, kernel, sklearn_splits(x, y, seed),
                                             args.jobs, 0)[0])
                        for seed in range(args.fold_seeds)]
                cells += [f"{np.mean(runs):.2f}", f"{min(runs):.2f} - {max(runs):.2f}"]
                if ours:
                    own.append(ours["mean"] - np.mean(runs))
            else:
                cells += ["", ""]
            name = folder.relative_to(args.run)
            print(f"| {name} | {which} | " + " | ".join(cells)
                  + f" | {time.time() - started:.1f} |")
    for label, diffs in [("same folds", same), ("scikit-learn's own folds", own)]:
        if diffs:
            print(f"\n{label}: contrast minus scikit-learn {np.mean(diffs):+.2f} on average, "
                  f"mean absolute {np.mean(np.abs(diffs)):.2f}, over {len(diffs)} embeddings")


if __name__ == "__main__":
    main()
