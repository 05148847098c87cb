"""Mutation testing of the science-bearing modules with mutmut, one module group at a time, each
against only the fast test files that exercise it (docs/testing.md has the scores and survivors).

Not a test module and not in CI (minutes to hours on two cores). Each group runs in its own scratch
copy of the tracked files (``git ls-files``), so the working tree is never touched and other people's
edits are not mutated; ``../shared`` is linked beside the copy for the tests that read the paper.

    pip install mutmut==3.8.1
    nice -n 19 python tests/mutation/run_mutmut.py                 # every group
    nice -n 19 python tests/mutation/run_mutmut.py definitions tables --keep /tmp/mut
    # then, in /tmp/mut/<group>/main:  mutmut results   |   mutmut show <mutant name>

Prints one line per group (killed / survived / timeout / no tests / score) and writes
``<workdir>/scores.json``; ``mutmut results`` in a kept copy lists the surviving mutants.
"""

from __future__ import annotations

import argparse
import json
import os
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
               "tests/model/test_temporal.py", "tests/model/test_reference.py", "tests/model/test_info.py"]),
    "model_io": (["tdrl/model/weights.py", "tdrl/model/info.py"],
                 ["tests/model/test_weights.py", "tests/model/test_info.py"]),
    "loop": (["tdrl/train/loop.py"], ["tests/train/test_objective.py"]),
    "trainer": (["tdrl/train/trainer.py"],
                ["tests/train/test_objective.py", "tests/train/test_checkpoint_arch.py",
                 "tests/reliability/test_storage_preflight.py", "tests/reliability/test_bad_inputs.py"]),
    "checkpoint": (["tdrl/train/checkpoint.py"],
                   ["tests/train/test_checkpoint.py", "tests/train/test_checkpoint_arch.py",
                    "tests/reliability/test_safety.py"]),
    # definitions.py is mostly module-level data (the rows), which mutmut does not mutate, and its
    # helpers run at import time, which mutmut's per-test selection cannot see: hand mutations cover it.
    "definitions": (["tdrl/study/definitions.py"],
                    ["tests/study/test_definitions.py", "tests/study/test_paper_tables.py"]),
    "tables": (["tdrl/study/tables.py"], ["tests/study/test_tables.py", "tests/study/test_tables_mean.py"]),
}


def scratch_copy(dest: Path) -> Path:
    """The tracked files of the working tree (as they are now) under ``dest/main``; ``dest/shared``
    links to the real ``../shared``."""
    main = dest / "main"
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


def run_group(name: str, workdir: Path, max_children: int) -> dict[str, int]:
    mutate, tests = GROUPS[name]
    main = scratch_copy(workdir / name)
    configure(main, mutate, tests)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(["mutmut", "run", "--max-children", str(max_children)], cwd=main, env=env,
                   stdout=subprocess.DEVNULL)
    stats = subprocess.run(["mutmut", "export-cicd-stats"], cwd=main, env=env, capture_output=True, text=True)
    data = json.loads((main / "mutants" / "mutmut-cicd-stats.json").read_text())
    if stats.returncode != 0:
        print(stats.stderr, file=sys.stderr)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", default=list(GROUPS), help=f"groups: {', '.join(GROUPS)}")
    parser.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, deleted)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant runs (default 2)")
    args = parser.parse_args()
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}")
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="tdrl-mutmut-"))
    workdir.mkdir(parents=True, exist_ok=True)
    scores = {}
    for g in args.groups:
        d = run_group(g, workdir, args.max_children)
        tested = d["killed"] + d["survived"] + d.get("timeout", 0) + d.get("suspicious", 0)
        d["score"] = round(100.0 * (d["killed"] + d.get("timeout", 0)) / tested, 1) if tested else None
        scores[g] = d
        print(f"{g:12s} killed {d['killed']:4d}  survived {d['survived']:4d}  timeout {d.get('timeout', 0):3d}  "
              f"no tests {d.get('no_tests', 0):4d}  score {d['score']}%", flush=True)
    (workdir / "scores.json").write_text(json.dumps(scores, indent=1))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
