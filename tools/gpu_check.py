"""Prove the GPU path in one command: every notebook and solution under nbval on CUDA, timed, with
each chapter's headline numbers on the GPU next to the CPU's, written to docs/gpu-run.md.

    make gpu-check                                   # = python tools/gpu_check.py
    python tools/gpu_check.py --jobs 1               # one notebook at a time (cleanest timings)
    python tools/gpu_check.py --only 04 --allow-cpu  # try the tool itself on a CPU (no table written)
    python tools/gpu_check.py --cpu-baseline         # on CPU: record the CPU headlines the table
                                                     # compares with (docs/gpu-run-cpu.json)

How: each notebook is copied to a temporary folder with one extra last cell that evaluates the chapter's
headline expressions (HEADLINES below) in the notebook's own namespace and writes them to a JSON
file; the copy runs under `pytest --nbval-lax` (exactly what `make test` does), then is deleted.
Chapter 03 runs first and alone: it trains the checkpoint chapters 05-08 reuse. The others run
`--jobs` at a time (default 3: one GPU has room for several of these small models, and the whole
check must fit in 10 minutes); the table says how many ran side by side, because that inflates
each one's seconds. Exit status 1 if any notebook failed (the table still records it).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "gpu-run.md"
CPU_BASELINE = ROOT / "docs" / "gpu-run-cpu.json"

# notebook stem -> [(label, expression evaluated in the notebook's namespace after its last cell)].
# A missing name or a changed variable shows as "n/a (NameError)" in the table, never a failure.
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "01_bradley_terry": [("mean 95% CI width of the leaderboard (logits)",
                          'float((board["ci_high"] - board["ci_low"]).mean())')],
    "02_preference_data": [("training labels agreeing with the gold reward", "float(overall)")],
    "03_reward_model": [("test accuracy of the course reward model", "float(report.accuracy)")],
    "04_training_fast": [("length-grouped fp32 pairs/s", 'float(table["pairs_per_s"].iloc[3])'),
                         ("dynamic padding vs seed speed-up",
                          'float(table["pairs_per_s"].iloc[1] / table["pairs_per_s"].iloc[0])'),
                         ("best MFU of the ladder", 'float(table["mfu"].max())')],
    "05_evaluation": [("test accuracy", "float(acc.accuracy)"),
                      ("mean Kendall tau", "float(taus.mean())")],
    "06_stability": [("best n of best-of-n (proxy on all pairs)",
                      'float(NS[int(curves[N_TRAIN]["gold_mean"].idxmax())])')],
    "07_judges_and_generative_rms": [("judge verdict flips when answers swap", "float(flip)")],
    "07a_self_rewarding": [("head accuracy from a perfect simulated judge's pairs",
                            'float(perfect["test accuracy"])')],
    "07b_verifiers_and_critiques": [("GenRM p(Yes) accuracy on reasoning pairs", "float(genrm_acc.accuracy)"),
                                    ("AUC of p(Yes) for correctness", "float(auc_value)")],
    "08_beyond_one_scalar": [("refusal weight, safety vs chat prompts", "float(ratio)")],
    "08b_dpo_implicit_reward": [("DPO reward accuracy, last epoch",
                                 'float(last_epoch["rewards/accuracies"].mean())')],
}

HEADLINE_CELL = '''
import json as _gc_json, math as _gc_math, os as _gc_os
_gc_out = {}
for _gc_label, _gc_expr in %r:
    try:
        _gc_value = float(eval(_gc_expr))
        _gc_out[_gc_label] = _gc_value if _gc_math.isfinite(_gc_value) else str(_gc_value)
    except Exception as _gc_err:
        _gc_out[_gc_label] = "n/a (" + type(_gc_err).__name__ + ")"
with open(_gc_os.environ["RMCOURSE_HEADLINES"], "w") as _gc_fh:
    _gc_json.dump(_gc_out, _gc_fh)
'''


def notebooks(only: list[str] | None) -> list[Path]:
    paths = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + sorted((ROOT / "solutions").glob("[0-9]*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(o) or p.name == o for o in only)]
    return paths


def environment() -> dict[str, str]:
    import torch

    info = {"torch": torch.__version__, "cuda": str(torch.version.cuda),
            "date": datetime.date.today().isoformat(), "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=f"{props.total_memory / 2**30:.0f}",
                    gpus=str(torch.cuda.device_count()))
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else "unknown"
        except (OSError, subprocess.TimeoutExpired, IndexError):
            info["driver"] = "unknown"
    else:
        info.update(gpu="none (CPU)", cpus=str(os.cpu_count()))
    return info


def run_one(path: Path, timeout: int, env: dict[str, str]) -> dict:
    """Run one notebook (a copy with the headline cell) under nbval; return its record."""
    nb = nbformat.read(path, as_version=4)
    heads = HEADLINES.get(path.stem, []) if path.parent.name == "notebooks" else []  # not solutions
    nb.cells.append(nbformat.v4.new_code_cell(HEADLINE_CELL % (heads,)))
    # The copy lives outside the checkout (notebooks use repo_root(), never the working
    # directory), so a test run in the checkout meanwhile never sees it.
    copy = Path(tempfile.mkdtemp(prefix="rmcourse-gpucheck-")) / path.parent.name / path.name
    copy.parent.mkdir(parents=True)
    nbformat.write(nb, copy)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        out_json = Path(fh.name)
    record = {"notebook": f"{path.parent.name}/{path.name}", "ok": False, "seconds": None,
              "headlines": {}, "error": ""}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(copy), "--nbval-lax", "--nbval-current-env", "-q",
             "-p", "no:cacheprovider", "--rootdir", str(copy.parent)], cwd=ROOT, capture_output=True,
            text=True, timeout=timeout,
            env={**env, "RMCOURSE_HEADLINES": str(out_json)})
        record["ok"] = proc.returncode == 0
        if not record["ok"]:
            record["error"] = (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        record["error"] = f"timed out after {timeout} s"
    finally:
        record["seconds"] = round(time.perf_counter() - start, 1)
        shutil.rmtree(copy.parent.parent, ignore_errors=True)
        try:
            record["headlines"] = json.loads(out_json.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            pass
        out_json.unlink(missing_ok=True)
    print(f"{'ok  ' if record['ok'] else 'FAIL'} {record['seconds']:7.1f} s  {record['notebook']}", flush=True)
    return record


def fmt(value) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(env: dict, records: list[dict], cpu: dict, jobs: int, total: float) -> str:
    lines = [
        "# The GPU run of every notebook (`make gpu-check`)",
        "",
        f"Run on {env['date']}: **{env.get('gpu')}** ({env.get('gpus', '1')} visible, "
        f"{env.get('gpu_memory_gib', '?')} GiB), driver {env.get('driver', '?')}, torch {env['torch']}, "
        f"CUDA {env['cuda']}, Python {env['python']}. Every notebook and solution ran under "
        f"`pytest --nbval-lax` (as `make test` runs them); chapter 03 alone first, then {jobs} at a "
        f"time, so a notebook's seconds include sharing the GPU and CPU with up to {jobs - 1} others. "
        f"Total: {total:.0f} s, not counting `make setup`.",
        "",
        "CPU values come from `python tools/gpu_check.py --cpu-baseline` "
        f"({cpu.get('_environment', {}).get('date', 'not run yet')}, "
        f"{cpu.get('_environment', {}).get('gpu', '')}).",
        "",
        "| notebook | result | seconds on the GPU | headline | GPU | CPU |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        stem = Path(r["notebook"]).stem
        result = "passed" if r["ok"] else "**FAILED**"
        heads = HEADLINES.get(stem, []) if r["notebook"].startswith("notebooks/") else []
        if not heads:
            lines.append(f"| {r['notebook']} | {result} | {r['seconds']} | | | |")
        for label, _ in heads:
            cpu_value = cpu.get(r["notebook"], {}).get(label)
            lines.append(f"| {r['notebook']} | {result} | {r['seconds']} | {label} | "
                         f"{fmt(r['headlines'].get(label))} | {fmt(cpu_value)} |")
    failed = [r for r in records if not r["ok"]]
    if failed:
        lines += ["", "## Failures", ""]
        for r in failed:
            lines += [f"### {r['notebook']}", "", "```", r["error"].strip()[-2000:], "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 04 03_reward_model")
    parser.add_argument("--jobs", type=int, default=3, help="notebooks run side by side (default 3)")
    parser.add_argument("--timeout", type=int, default=420, help="seconds allowed per notebook")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (tests the tool)")
    parser.add_argument("--cpu-baseline", action="store_true",
                        help=f"run on CPU and record the headlines in {CPU_BASELINE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    run_env = dict(os.environ)
    if args.cpu_baseline:
        run_env["RMCOURSE_DEVICE"] = "cpu"
        os.environ["RMCOURSE_DEVICE"] = "cpu"
    env = environment()
    print("environment:", json.dumps(env), flush=True)
    on_cuda = env["gpu"] != "none (CPU)" and not args.cpu_baseline
    if not on_cuda and not (args.allow_cpu or args.cpu_baseline):
        print("no CUDA device: this command proves the GPU path and needs one "
              "(use --allow-cpu to try the tool, --cpu-baseline to record CPU headlines)")
        return 2
    paths = notebooks(args.only)
    if not paths:
        print("no notebook matches --only")
        return 2
    first = [p for p in paths if p.parent.name == "notebooks" and p.stem.startswith("03_")]
    rest = [p for p in paths if p not in first]
    start = time.perf_counter()
    records = [run_one(p, args.timeout, run_env) for p in first]
    with ThreadPoolExecutor(max_workers=1 if args.cpu_baseline else args.jobs) as pool:
        records += list(pool.map(lambda p: run_one(p, args.timeout, run_env), rest))
    total = time.perf_counter() - start
    order = {p: i for i, p in enumerate(paths)}
    records.sort(key=lambda r: order[ROOT / r["notebook"]])
    if args.cpu_baseline:
        baseline = json.loads(CPU_BASELINE.read_text()) if CPU_BASELINE.exists() else {}
        baseline["_environment"] = env
        for r in records:
            if r["ok"] and r["headlines"]:
                baseline[r["notebook"]] = r["headlines"]
        CPU_BASELINE.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")
        print(f"wrote {CPU_BASELINE.relative_to(ROOT)}")
    cpu = json.loads(CPU_BASELINE.read_text()) if CPU_BASELINE.exists() else {}
    text = markdown(env, records, cpu, 1 if args.cpu_baseline else args.jobs, total)
    print(text)
    if on_cuda and not args.only:  # the committed table is the full run only
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
