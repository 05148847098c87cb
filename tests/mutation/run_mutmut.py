"""Mutation testing of the science-bearing modules with mutmut, one module group at a time, each
against only the fast test files that exercise it (docs/testing.md has the scores and survivors).

Not a test module and not in CI (minutes to hours on two cores). Each group runs in its own scratch
copy of the tracked files (``git ls-files``), so the working tree is never touched and other people's
edits are not mutated; ``../shared`` is linked beside the copy for the tests that read the paper.

    pip install mutmut==3.8.1
    nice -n 19 python tests/mutation/run_mutmut.py                 # every group
    nice -n 19 python tests/mutation/run_mutmut.py definitions tables --keep /tmp/mut
    nice -n 19 python tests/mutation/run_mutmut.py model --sample 60 --seed 0 --commit HEAD --keep /tmp/mut
    # then, in /tmp/mut/<group>/main:  mutmut results   |   mutmut show <mutant name>

``--sample N --seed S`` runs a simple random sample of N of the group's mutants (drawn with
``random.Random(S)`` from the sorted mutant names, so the same tree, N and S give the same sample)
instead of all of them, for groups too large for the machine; the score is then an estimate, printed
with its 95 % Clopper-Pearson interval over the sampled mutants that a selected test reaches.

Prints one line per group (killed / survived / timeout / no tests / score [95 % interval]) and writes
``<workdir>/scores.json`` (with the survivors' names); ``mutmut results`` in a kept copy lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# group -> (files to mutate, the fast tests that exercise them). Ray-cluster tests are left out:
# each would take tens of seconds per mutant; trainer.py and loop.py are reached through the
# in-process (Ray Train local mode) objective test and the driver's pre-Ray checks.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "model": (["tdrl/model/block.py", "tdrl/model/difference.py", "tdrl/model/mem.py", "tdrl/model/network.py",
               "tdrl/model/pem.py", "tdrl/model/td_loss.py", "tdrl/model/temporal_shift.py", "tdrl/model/tim.py",
               "tdrl/model/resnet.py", "tdrl/model/reference.py"],
              ["tests/model/test_network.py", "tests/model/test_pem.py", "tests/model/test_td_loss.py",
               "tests/model/test_temporal.py", "tests/model/test_reference.py", "tests/model/test_info.py",
               "tests/model/test_resnet.py"]),
    "model_io": (["tdrl/model/weights.py", "tdrl/model/info.py"],
                 ["tests/model/test_weights.py", "tests/model/test_info.py"]),
    "loop": (["tdrl/train/loop.py"], ["tests/train/test_objective.py", "tests/train/test_build_training.py",
                                      "tests/train/test_epoch_metrics.py", "tests/train/test_loop_tracking.py",
                                      "tests/train/test_loaders.py"]),
    "trainer": (["tdrl/train/trainer.py"],
                ["tests/train/test_objective.py", "tests/train/test_checkpoint_arch.py",
                 "tests/train/test_best_checkpoint.py", "tests/train/test_build_trainer.py",
                 "tests/train/test_fit_local.py",
                 "tests/reliability/test_storage_preflight.py", "tests/reliability/test_bad_inputs.py"]),
    # Only test_safety's loader test: its other tests read files mutmut does not copy into mutants/
    # (README, docs, cluster/, .gitignore), so they fail mutmut's clean "stats" run ("failed to collect
    # stats. runner returned 1"), and its source scan for torch.load would read the mutated file.
    "checkpoint": (["tdrl/train/checkpoint.py"],
                   ["tests/train/test_checkpoint.py", "tests/train/test_checkpoint_arch.py",
                    "tests/train/test_build_training.py",
                    "tests/reliability/test_safety.py::test_pickled_code_is_refused_by_every_loader",
                    *(f"tests/reliability/test_bad_inputs.py::{t}" for t in (
                        "test_resume_with_another_architecture_or_class_count_is_refused_before_ray",
                        "test_eval_refuses_truncated_and_foreign_checkpoints_naming_the_file"))]),
    # definitions.py is mostly module-level data (the rows), which mutmut does not mutate, and its
    # helpers run at import time, which mutmut's per-test selection cannot see: hand mutations cover it.
    "definitions": (["tdrl/study/definitions.py"],
                    ["tests/study/test_definitions.py", "tests/study/test_paper_tables.py"]),
    "tables": (["tdrl/study/tables.py"], ["tests/study/test_tables.py", "tests/study/test_tables_mean.py",
                                          "tests/study/test_tables_outputs.py", "tests/study/test_tables_cli.py",
                                          "tests/test_cli.py::test_tables_takes_parent_run_id_and_the_old_spelling"]),
}


def scratch_copy(dest: Path, commit: str | None = None) -> Path:
    """The tracked files of the working tree (as they are now), or of ``commit``, under ``dest/main``;
    ``dest/shared`` links to the real ``../shared``."""
    main = dest / "main"
    if commit:  # a committed tree: the score belongs to a commit, not to others' edits in progress
        main.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(main)], input=archive, check=True)
    else:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               check=True, capture_output=True).stdout.decode().split("\0")
        for f in filter(None, files):
            src = ROOT / f
            if src.is_file():
                (main / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, main / f)
    shared = (ROOT / ".." / "shared").resolve()
    if shared.is_dir():
        for link in (dest / "shared", main / "shared"):  # ../shared of main/ and of main/mutants/
            if not link.exists():
                link.symlink_to(shared)
    return main


def configure(main: Path, mutate: list[str], tests: list[str]) -> None:
    """mutmut's section in the copy's setup.cfg (the copy's pyproject.toml has none)."""
    lines = ["[mutmut]", "source_paths=tdrl", "only_mutate=", *[f"    {m}" for m in mutate],
             "pytest_add_cli_args_test_selection=", *[f"    {t}" for t in tests],
             "pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -q",
             "process_isolation=forkserver", "use_git_change_detection=false", "timeout_constant=60", ""]
    (main / "setup.cfg").write_text("\n".join(lines))


GENERATE = """
import os
from mutmut.__main__ import create_mutants
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
os.makedirs("mutants", exist_ok=True)
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants(1)
"""


def _exit_codes(main: Path, mutate: list[str]) -> dict[str, int | None]:
    """Mutant name -> mutmut's exit code (``None``: not run), from the ``.meta`` files of ``mutate``."""
    codes: dict[str, int | None] = {}
    for f in mutate:
        meta = main / "mutants" / (f + ".meta")
        if meta.is_file():
            codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def mutant_names(main: Path, mutate: list[str], env: dict[str, str]) -> list[str]:
    """Every mutant of ``mutate`` (sorted), generated without running a test (mutmut's own generator)."""
    subprocess.run([sys.executable, "-c", GENERATE], cwd=main, env=env, check=True, stdout=subprocess.DEVNULL)
    return sorted(_exit_codes(main, mutate))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for ``k`` successes out of ``n``."""
    from scipy.stats import beta

    a = (1 - level) / 2
    low = beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    high = beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def run_group(name: str, workdir: Path, max_children: int, sample: int | None = None,
              seed: int = 0, commit: str | None = None) -> dict[str, object]:
    from mutmut.stats import status_by_exit_code

    mutate, tests = GROUPS[name]
    main = scratch_copy(workdir / name, commit)
    configure(main, mutate, tests)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    names: list[str] = []
    total = None
    if sample is not None:
        every = mutant_names(main, mutate, env)
        total = len(every)
        names = sorted(random.Random(seed).sample(every, min(sample, total)))
    subprocess.run(["mutmut", "run", "--max-children", str(max_children), *names], cwd=main, env=env,
                   stdout=subprocess.DEVNULL)
    codes = _exit_codes(main, mutate)
    chosen = names or sorted(codes)
    by_status: dict[str, list[str]] = {}
    for m in chosen:
        by_status.setdefault(status_by_exit_code[codes.get(m)], []).append(m)
    d: dict[str, object] = {k: len(by_status.get(k, [])) for k in
                            ("killed", "survived", "timeout", "suspicious", "no tests", "not checked", "segfault")}
    d.update(mutants=total if total is not None else len(codes), run=len(chosen), sampled=sample is not None,
             seed=seed if sample is not None else None, survivors=by_status.get("survived", []),
             suspicious_names=by_status.get("suspicious", []))
    return d


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", default=list(GROUPS), help=f"groups: {', '.join(GROUPS)}")
    parser.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, deleted)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant runs (default 2)")
    parser.add_argument("--sample", type=int, default=None,
                        help="run a random sample of this many mutants per group (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--commit", default=None,
                        help="mutate this commit's tree (e.g. HEAD) instead of the working tree as it is now")
    args = parser.parse_args()
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}")
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="tdrl-mutmut-"))
    workdir.mkdir(parents=True, exist_ok=True)
    old = workdir / "scores.json"  # groups of earlier runs in a kept folder stay in it
    scores = json.loads(old.read_text()) if old.is_file() else {}
    for g in args.groups:
        d = run_group(g, workdir, args.max_children, args.sample, args.seed, args.commit)
        killed = int(d["killed"]) + int(d["timeout"])
        tested = killed + int(d["survived"]) + int(d["suspicious"]) + int(d["segfault"])
        d["score"] = round(100.0 * killed / tested, 1) if tested else None
        d["interval95"] = ([round(100 * x, 1) for x in clopper_pearson(killed, tested)]
                           if tested and d["sampled"] else None)  # a full run has no sampling error
        scores[g] = d
        what = f"sample {d['run']} of {d['mutants']} (seed {args.seed})" if d["sampled"] else f"all {d['mutants']}"
        print(f"{g:12s} {what}: killed {d['killed']}  survived {d['survived']}  timeout {d['timeout']}  "
              f"suspicious {d['suspicious']}  no tests {d['no tests']}  not checked {d['not checked']}  "
              f"score {d['score']}%" + (f" [95% {d['interval95']}]" if d["interval95"] else ""), flush=True)
        (workdir / "scores.json").write_text(json.dumps(scores, indent=1))  # after each group: a stop keeps it
    (workdir / "scores.json").write_text(json.dumps(scores, indent=1))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
