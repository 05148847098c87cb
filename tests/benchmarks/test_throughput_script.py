"""The GPU throughput benchmark runs end to end on the CPU at a tiny size (so it cannot rot)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_throughput_cpu_tiny(tmp_path):
    out = tmp_path / "tp.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cpu", "--batch", "1",
                    "--size", "32", "--frames", "2", "--steps", "1", "--warmup", "1", "--modes", "eager",
                    "--rows", "tsn,tdrl,straightforward", "--json", str(out)], check=True, capture_output=True)
    res = json.loads(out.read_text())
    assert [r["row"] for r in res["rows"]] == ["tsn", "tdrl", "straightforward"]
    assert all(r["clips_per_s"] > 0 for r in res["rows"]) and res["rows"][0]["ratio_vs_tsn"] == 1.0
    assert res["equivalence_rel_diff"]["2"] < 1e-5
