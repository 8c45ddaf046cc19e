"""The long fuzz run outside CI: N mutated files per reader of outside data, with time and memory per family.

Each family of :mod:`fuzz_families` (in ``tests/``, shared with ``tests/test_fuzz.py``) runs in a fresh
process whose address space is capped at its size after setup plus ``--memory-limit-gb`` (an allocation past
it fails there instead of exhausting the machine), and ``ru_maxrss`` is read after every case. Case ``i`` of
a family is mutated by ``random.Random("SEED:FAMILY:i")``, so it can be made again from its number; every
unexpected exception, marker file or written file is saved under ``--out`` as the case's bytes and a text
file with its text and traceback. Prints one JSON object: per family the cases run, unexpected exceptions,
markers, files written, peak RSS, the largest growth of the peak in one case, seconds and cases per second.

    OMP_NUM_THREADS=1 python -m benchmarks.fuzz --cases 10000 --out fuzz-out
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.entry import run

TESTS = Path(__file__).resolve().parent.parent / "tests"  # the families and seeds live with the tests


def _vm_size() -> int:
    """This process's virtual memory size in bytes (``VmSize`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _cpu_name() -> str:
    """The CPU's model name (``model name`` of /proc/cpuinfo), and whether it has native bf16."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    native_bf16 = any(flag in info for flag in ("avx512_bf16", "amx_bf16"))
    return f"{name or platform.machine()}{', native bf16' if native_bf16 else ''}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_family(name: str, cases: int, seed: int, out: Path, memory_limit_gb: float, max_seconds: float) -> dict:
    """Run ``cases`` cases of family ``name`` in this process; the family's JSON record."""
    sys.path.insert(0, str(TESTS))
    import fuzz_families

    family = fuzz_families.family(name)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as temporary:
        folder = Path(temporary)
        corpus = family.setup(folder)
        # the reader's imports and caches (the demo's model) are made before the memory is measured
        fuzz_families.run_case(family, folder, corpus[0], family.texts[0])
        limit = _vm_size() + int(memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        baseline = peak = _peak_rss_mb()
        largest_growth, counts = 0.0, {"unexpected": 0, "markers": 0, "files_written": 0}
        start = time.perf_counter()
        run = 0
        for index in range(cases):
            if time.perf_counter() - start > max_seconds:
                break
            data, text = fuzz_families.make_case(family, corpus, random.Random(f"{seed}:{name}:{index}"))
            problem = fuzz_families.run_case(family, folder, data, text)
            run += 1
            now = _peak_rss_mb()
            largest_growth, peak = max(largest_growth, now - peak), now
            if problem is not None:
                kind = "markers" if problem.startswith("code ran") else "files_written"
                kind = kind if problem.startswith(("code ran", "files written")) else "unexpected"
                counts[kind] += 1
                _save_reproducer(out / name / f"case-{index}", data, text, problem)
        seconds = time.perf_counter() - start
    return {
        "cases": run,
        **counts,
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "largest_case_growth_mb": round(largest_growth, 1),
        "over_memory_limit": peak - baseline > memory_limit_gb * 1024,
        "seconds": round(seconds, 1),
        "cases_per_s": round(run / seconds, 1) if seconds else None,
    }


def _save_reproducer(stem: Path, data: bytes, text: str, problem: str) -> None:
    """The case's bytes (``stem.bin``) and its text and problem (``stem.txt``)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".bin").write_bytes(data)
    stem.with_suffix(".txt").write_text(f"text: {text!r}\n\n{problem}\n")


def _in_process(arguments: tuple[str, int, int, Path, float, float]) -> tuple[str, dict]:
    return arguments[0], run_family(*arguments)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the families named (default: all), each in a fresh process; print and return the JSON record."""
    sys.path.insert(0, str(TESTS))
    from fuzz_families import FAMILY_NAMES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per family")
    parser.add_argument("--families", nargs="+", choices=FAMILY_NAMES, default=list(FAMILY_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"), help="folder of the reproducers")
    parser.add_argument("--memory-limit-gb", type=float, default=2.0, help="the most memory one case may take")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="per family: stop after this")
    parser.add_argument("--jobs", type=int, default=1, help="families run at once")
    args = parser.parse_args(argv)
    work = [(name, args.cases, args.seed, args.out, args.memory_limit_gb, args.max_seconds) for name in args.families]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.jobs, maxtasksperchild=1) as pool:
        families = dict(pool.imap(_in_process, work))
    record = {
        "command": "python -m benchmarks.fuzz " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count()},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "families": families,
        "total": {
            key: sum(family[key] for family in families.values())
            for key in ("cases", "unexpected", "markers", "files_written")
        },
        "any_case_over_memory_limit": any(family["over_memory_limit"] for family in families.values()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    run(main)
