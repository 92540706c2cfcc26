"""Run every solution notebook end to end at one run size and report each training run.

    LABKIT_RUN=full python scripts/run_solutions.py [--labs day03_vgg ...] [--out DIR]

Each lab runs in a fresh Python process that executes its code cells in order, in one
namespace, with matplotlib drawing off screen: no Jupyter kernel is needed, so the same
command works on a bare GPU machine that has only torch, torchvision and matplotlib
(plus the pure-Python torchsummary, torchinfo and polib). A lab stops at its first
failing cell, which is named with its error; the others still run.

Printed: per lab, its status, wall time and slowest cells; then every training run the
notebook left in its namespace (a ``History`` bound to a name, or inside a dict or list
bound to one): the epochs, training images, seconds, precision, device and the last
epoch's test accuracy, as a table to paste into the README. With ``--out``, also one
``<lab>.log`` of everything the lab printed, and ``runs.json``.

On a GPU machine with no network, carry a folder the repository ignores that holds the
wheels of torchsummary, torchinfo and polib (``pip download --no-deps -d FOLDER
torchsummary torchinfo polib``) and the CIFAR-10 and MNIST archives that
``scripts/prepare-data.sh`` imports, then install the wheels, import the archives with
``python -m labkit.data prepare cifar10 --from FOLDER/cifar10-jpg.tar.gz`` (``mnist``
likewise) and run this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MARK = "\n@@run_solutions@@"


def _histories(value, label: str, depth: int = 0):
    """(label, History) for a History, or one inside a dict or list (two levels down)."""
    from labkit.train import History

    if type(value) is History:
        yield label, value
    elif depth < 2 and isinstance(value, dict):
        for key, item in value.items():
            yield from _histories(item, f"{label}[{key!r}]", depth + 1)
    elif depth < 2 and isinstance(value, (list, tuple)):
        for key, item in enumerate(value):
            yield from _histories(item, f"{label}[{key}]", depth + 1)


def _first_line(source: str, width: int) -> str:
    return source.splitlines()[0][:width] if source.strip() else ""


def run_cells(notebook: Path) -> None:
    """In this process: run ``notebook``'s code cells in order, in one namespace, then
    print the report (the first failure, the training runs, the slowest cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    namespace: dict = {"__name__": "__main__"}
    timings, failure = [], None
    for number, source in enumerate(sources, start=1):
        start = time.perf_counter()
        try:
            exec(compile(source, f"<code cell {number}>", "exec"), namespace)
        except BaseException as error:  # the report names it; the parent goes on
            failure = {
                "cell": number,
                "first_line": _first_line(source, 60),
                "error": f"{type(error).__name__}: {str(error)[:300]}",
            }
            traceback.print_exc()
            break
        finally:
            timings.append((time.perf_counter() - start, number, _first_line(source, 40)))
            plt.close("all")
    runs = []
    for name, value in list(namespace.items()):
        for label, history in [] if name.startswith("_") else _histories(value, name):
            runs.append(
                {
                    "name": label,
                    "device": history.device,
                    "precision": history.precision,
                    "epochs": len(history.epochs),
                    "num_train": history.num_train,
                    "num_test": history.num_test,
                    "seconds": history.seconds,
                    "test_acc": history.test_acc[-1] if history.epochs else None,
                }
            )
    report = {"failure": failure, "runs": runs, "slowest": sorted(timings, reverse=True)[:3]}
    print(_MARK + json.dumps(report), flush=True)


def run_lab(notebook: Path, env: dict[str, str], log: Path | None) -> dict:
    """Run one solution notebook in a fresh process: its report, with wall time."""
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--cells-of", str(notebook)],
        cwd=notebook.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if log is not None:
        log.write_text(run.stdout + "\n--- stderr ---\n" + run.stderr, encoding="utf-8")
    _, marked, tail = run.stdout.rpartition(_MARK)
    if not marked:  # the process died before it could report
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        failure = {"cell": None, "first_line": "", "error": f"exit {run.returncode}: {last}"}
        return {"failure": failure, "runs": [], "slowest": [], "wall": wall}
    return {**json.loads(tail), "wall": wall}


def _labs(solutions: Path, names: list[str] | None) -> list[Path]:
    notebooks = sorted(solutions.glob("day*/*.ipynb"))
    if names:
        chosen = [p for p in notebooks if p.parent.name in names]
        unknown = set(names) - {p.parent.name for p in chosen}
        if unknown:
            known = ", ".join(p.parent.name for p in notebooks)
            missing = ", ".join(sorted(unknown))
            raise SystemExit(f"no solution notebook for {missing}; labs: {known}")
        return chosen
    return notebooks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", nargs="+", help="the labs to run (default: all)")
    parser.add_argument("--out", type=Path, help="write each lab's log and runs.json here")
    parser.add_argument(
        "--solutions", type=Path, default=ROOT / "solutions", help="(default: solutions/)"
    )
    parser.add_argument("--cells-of", type=Path, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.cells_of:
        run_cells(args.cells_of)
        return
    size = os.environ.get("LABKIT_RUN", "auto")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"LABKIT_RUN={size}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}", flush=True)
    reports = {}
    for notebook in _labs(args.solutions, args.labs):
        lab = notebook.parent.name
        log = args.out / f"{lab}.log" if args.out else None
        report = reports[lab] = run_lab(notebook, env, log)
        failure = report["failure"]
        status = "ok"
        if failure is not None:
            where = f"code cell {failure['cell']} ({failure['first_line']})"
            status = f"FAILED at {where}: {failure['error']}"
        slowest = "; ".join(f"[{cell}] {line} {s:.0f} s" for s, cell, line in report["slowest"])
        print(f"{lab}: {status}; {report['wall']:.0f} s; slowest cells: {slowest}", flush=True)
    print(f"\nload {os.getloadavg()[0]:.2f}\n")
    print("| lab | run | device | precision | epochs | training images | seconds | test accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for lab, report in reports.items():
        for run in report["runs"]:
            accuracy = "-" if run["test_acc"] is None else f"{run['test_acc']:.1%}"
            print(
                f"| {lab} | `{run['name']}` | {run['device']} | {run['precision']} | "
                f"{run['epochs']} | {run['num_train']:,} | {run['seconds']:.0f} | {accuracy} |"
            )
    if args.out:
        (args.out / "runs.json").write_text(json.dumps(reports, indent=1), encoding="utf-8")
    if any(r["failure"] for r in reports.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
