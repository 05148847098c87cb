"""Run a command with PyTorch's CPU kernels held to one SIMD capability (docs/testing.md).

    python tools/cpu_capability.py avx2 -- python -m pytest -m "not slow and not gpu" -q
    python tools/cpu_capability.py --second        # the capability .ci/run tests a second time
    python tools/cpu_capability.py --second -- python -m pytest ...   # run a command under it
    python tools/cpu_capability.py --list          # the capabilities this machine can run

A capability is three settings that must agree, or a run mixes kernels of two instruction sets:
ATen's own vector kernels (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions (``DNNL_MAX_CPU_ISA``)
and MKL's matrix products (``MKL_ENABLE_INSTRUCTIONS``). ``avx512`` leaves oneDNN and MKL at the
machine's best (AMX where present), which is what a run without settings gets on such a machine.

ATen trusts its variable: a capability the CPU lacks would die on an illegal instruction, so only
the machine's own capability and those below it are offered. Before the command runs, a child
Python checks that torch reports the capability asked for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ORDER = ("default", "avx2", "avx512")  # ATen's x86 capabilities, lowest first
SETTINGS = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
}
_ALL = {name for s in SETTINGS.values() for name in s}
_PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def torch_capability(env: dict[str, str] | None = None) -> str:
    """What torch reports in a fresh process with ``env`` (e.g. ``AVX512``), lower-cased."""
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1].lower()


def machine_capability() -> str:
    """This machine's own capability: what torch picks with none of the settings in the environment."""
    return torch_capability({k: v for k, v in os.environ.items() if k not in _ALL})


def available(own: str) -> list[str]:
    """The capabilities a machine whose own is ``own`` can run: it and those below it."""
    if own not in ORDER:
        raise ValueError(f"unknown CPU capability {own!r} (torch on a non-x86 machine?); known: {', '.join(ORDER)}")
    return list(ORDER[:ORDER.index(own) + 1])


def second(own: str) -> str:
    """The capability CI tests a second time: ``avx2`` where the machine has AVX-512, else ``default``."""
    return "avx2" if own == "avx512" else "default"


def environment(capability: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) held to ``capability``; earlier settings dropped."""
    if capability not in SETTINGS:
        raise ValueError(f"unknown CPU capability {capability!r}; choose one of {', '.join(ORDER)}")
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _ALL}
    env.update(SETTINGS[capability])
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("capability", nargs="?", choices=ORDER, help="run the command after -- under this capability")
    p.add_argument("--second", action="store_true",
                   help="the capability CI tests a second time: print it, or run the command after -- under it")
    p.add_argument("--list", action="store_true", help="print the capabilities this machine can run")
    args = p.parse_args(argv)
    if sum((args.capability is not None, args.second, args.list)) != 1:
        p.error("give one of: a capability, --second, --list")
    if args.list and command:
        p.error("--list runs no command")
    if args.capability is not None and not command:
        p.error("give a command after --")
    own = machine_capability()
    if args.list or (args.second and not command):
        print(" ".join(available(own)) if args.list else second(own))
        return 0
    if args.second:
        args.capability = second(own)
    if args.capability not in available(own):
        p.error(f"this machine's CPU capability is {own}: {args.capability} would stop on an illegal instruction")
    env = environment(args.capability)
    got = torch_capability(env)
    if got != args.capability:
        print(f"cpu_capability: asked for {args.capability}, torch reports {got}", file=sys.stderr)
        return 2
    print(f"[cpu_capability] {args.capability}: " + " ".join(f"{k}={v}" for k, v in SETTINGS[args.capability].items()),
          flush=True)
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
