"""tools/cpu_capability.py: which capabilities a machine offers, the settings of each, and a real run
under ``default`` (every x86-64 CPU has it) in which torch reports that capability."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "cpu_capability.py"
spec = importlib.util.spec_from_file_location("cpu_capability", SCRIPT)
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)


def test_a_machine_runs_its_own_capability_and_those_below_it():
    assert cc.available("avx512") == ["default", "avx2", "avx512"]
    assert cc.available("avx2") == ["default", "avx2"]
    assert cc.available("default") == ["default"]
    with pytest.raises(ValueError, match="unknown CPU capability 'zvector'"):
        cc.available("zvector")


def test_ci_tests_avx2_on_avx512_machines_and_default_elsewhere():
    assert cc.second("avx512") == "avx2"
    assert [cc.second(own) for own in ("avx2", "default")] == ["default", "default"]


def test_the_three_libraries_are_held_together_and_old_settings_dropped():
    env = cc.environment("avx2", {"PATH": "/bin", "DNNL_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "AVX512"})
    assert env == {"PATH": "/bin", "ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    # avx512: oneDNN and MKL at the machine's best, as without any setting
    assert cc.environment("avx512", {"DNNL_MAX_CPU_ISA": "AVX2"}) == {"ATEN_CPU_CAPABILITY": "avx512"}
    with pytest.raises(ValueError, match="choose one of default, avx2, avx512"):
        cc.environment("sse", {})


def test_a_command_runs_under_the_capability_and_torch_reports_it():
    probe = "import os, torch; print(torch.backends.cpu.get_cpu_capability(), os.environ['DNNL_MAX_CPU_ISA'])"
    out = subprocess.run([sys.executable, str(SCRIPT), "default", "--", sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == "DEFAULT SSE41"


def test_second_runs_the_command_under_cis_second_capability_and_misuse_is_refused():
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability().lower())"
    out = subprocess.run([sys.executable, str(SCRIPT), "--second", "--", sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-1] == cc.second(cc.machine_capability())  # the command ran, under it
    for argv, message in ((["avx2", "--second", "--", "true"], "give one of"), (["--list", "--", "true"], "runs no command"),
                          (["--", "true"], "give one of"), (["default"], "give a command")):
        out = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr, (argv, out.stderr)
