"""Grade the hostile corpus (tests/grading/hostile/) and say how grading held up.

    .venv/bin/python scripts/bench_grading.py [--runs 2] [--day04] [--keep]
    .venv/bin/python scripts/bench_grading.py --workers 1 2 [--students 8] [--repeats 2]
    .venv/bin/python scripts/bench_grading.py --labs all [--sizes fast grade]

Each run grades every corpus submission of the probe lab, sandboxed, in one course
folder (a later run regrades the same submissions, as handed in, there). Printed: the corpus
table, submissions graded per minute, p50/p95/max seconds per submission, batch
aborts (grade_assignment raising), false passes on cheats, false fails on valid
submissions, processes left behind, bytes kernels wrote on this machine's disk outside
the students' own folders (sampled while grading runs), processes that a submission found
alive after the cell that started them, and score differences between runs. With
``--day04``, also the seconds one correct Day 4 submission takes (needs
``LABKIT_CIFAR10``).

With ``--workers``, instead of the corpus: the same ``--students`` copies of a solved probe
submission graded by a batch (``autograder.grading.batch``) with each number of workers
in turn, side by side in one run (``--repeats`` alternates the order: 1 2 2 1 ...), each
in a fresh copy of one course folder. With the default threads per kernel (the cores
over the workers, ``OMP_NUM_THREADS`` unset), ``--workers 1 2`` on two cores compares one
two-thread kernel at a time with two single-thread kernels. Printed per run: seconds,
students a minute, the load average before and after, and the most threads the kernels
held at once (the sandbox's process cap counts them); then the mean per worker count
and its ratio to the first.

With ``--labs``, instead: each lab's sample submissions (``autograder.grading.samples``)
graded sandboxed, once per grading size in ``--sizes``, side by side in one run:
``fast`` is CI's size with every cell run (``LABKIT_GRADING_RUN=fast``, how the kit
graded before the token size), ``grade`` the token size with the cells no test reads
skipped (``autograder.grading.budget``). Printed per lab and size: seconds per
submission (p50, p95, max over the lab's samples), and for the correct sample the share
of its cell time spent in training cells (grade ids ``train...``) and in cells no test
reads, and its three slowest cells; then each lab's ratio, and the load average around
each lab.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.grading import batch, budget, sandbox  # noqa: E402
from autograder.grading.course import (  # noqa: E402
    REPO_ROOT,
    assignments,
    generate_release,
    make_course_root,
)
from autograder.grading.grade import Result, grade_assignment  # noqa: E402
from autograder.grading.samples import answered, write_samples  # noqa: E402
from tests.grading.hostile import (  # noqa: E402
    ASSIGNMENT,
    CORPUS,
    PROBE,
    HostWrites,
    LoopbackServer,
    corpus_table,
    false_fail,
    false_pass,
    feedback_leaks,
    hidden_lines,
    judge,
    leftover_processes,
    load_lab,
    plant_outside,
    processes_after_cells,
    read_outcome,
    write_corpus,
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _leftovers(root: Path) -> list[str]:
    deadline = time.monotonic() + 10
    while (left := leftover_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _grade(root: Path, timeout: float) -> tuple[list[Result] | None, float, str]:
    start = time.perf_counter()
    try:
        results = grade_assignment(ASSIGNMENT, root, timeout=timeout, use_sandbox=True)
    except Exception as error:  # a batch abort is what this counts
        return None, time.perf_counter() - start, f"{type(error).__name__}: {error}"
    return results, time.perf_counter() - start, ""


def bench_corpus(runs: int, timeout: float, keep: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    root = make_course_root(work / "course", [ASSIGNMENT], source=PROBE)
    server, outside = LoopbackServer(), plant_outside()
    # the driver's own work folder (its runtime folder included) goes under work/tmp
    system_tmp, tempfile.tempdir = tempfile.tempdir, str(work / "tmp")
    (work / "tmp").mkdir()
    generate_release(ASSIGNMENT, root)
    lab = load_lab(root, server.port, outside)
    hidden = hidden_lines(root)
    seconds: list[float] = []
    aborts, wall, graded, written, alive, leaks = 0, 0.0, 0, 0, 0, 0
    scores: list[dict[str, tuple[str, float | None]]] = []
    for run in range(1, runs + 1):
        print(f"\n== run {run} of {runs}: {len(CORPUS)} submissions in {root}", flush=True)
        # Every run grades the submissions as handed in (preflight normalises in place).
        shutil.rmtree(root / "submitted", ignore_errors=True)
        write_corpus(lab)
        writes = HostWrites([work / "tmp", root, outside.parent, Path("/dev/shm")])
        results, took, abort = _grade(root, timeout)
        writes.close()
        written += writes.bytes
        wall += took
        if results is None:
            aborts += 1
            print(f"BATCH ABORTED after {took:.0f} s: {abort}")
            continue
        graded += len(results)
        seconds += [r.seconds for r in results]
        by_name = {r.student: r for r in results}
        outcomes = [read_outcome(e, root, by_name) for e in CORPUS]
        problems = {o.entry.name: judge(o, hidden) for o in outcomes}
        scores.append({r.student: (r.status, r.score) for r in results})
        print(corpus_table(outcomes, problems))
        left = _leftovers(root)
        alive += sum(processes_after_cells(o) or 0 for o in outcomes)
        leaked = [o.entry.name for o in outcomes if feedback_leaks(o, hidden)]
        leaks += len(leaked)
        outside_files = sorted(path for path, size in writes.sizes.items() if size)
        print(
            f"\nrun {run}: {took:.0f} s; not as expected: "
            f"{sum(bool(p) for p in problems.values())}; "
            f"false passes on cheats: {sum(false_pass(o) for o in outcomes)} "
            f"{[o.entry.name for o in outcomes if false_pass(o)]}; "
            f"false fails on valid submissions: {sum(false_fail(o) for o in outcomes)} "
            f"{[o.entry.name for o in outcomes if false_fail(o)]}; "
            f"leftover processes: {len(left)} {left[:3]}; "
            f"feedback with hidden-test text: {len(leaked)} {leaked[:3]}; "
            f"bytes written outside the students' folders: {writes.bytes} {outside_files[:3]}"
        )
    server.close()
    shutil.rmtree(outside, ignore_errors=True)
    tempfile.tempdir = system_tmp

    differences = [
        f"{name}: {scores[0][name]} then {later[name]}"
        for later in scores[1:]
        for name in scores[0]
        if later.get(name) != scores[0][name]
    ]
    kernels = [s for s in seconds if s > 1]  # invalid files never start a kernel
    print("\n== summary")
    print(f"submissions graded per minute: {60 * graded / wall:.1f} ({graded} in {wall:.0f} s)")
    print(
        f"seconds per submission: p50 {statistics.median(seconds):.1f}, "
        f"p95 {_percentile(seconds, 0.95):.1f}, max {max(seconds):.1f} "
        f"(kernel runs only: p50 {statistics.median(kernels):.1f})"
    )
    print(f"batch aborts: {aborts}")
    print(f"loopback connections from kernels: {server.connections}")
    print(f"feedback pages with hidden-test text (normalised): {leaks}")
    print(f"bytes written outside the students' folders: {written}")
    print(f"processes alive after a cell: {alive}")
    print(f"score differences over {len(scores)} runs: {len(differences)} {differences[:5]}")
    if keep:
        print(f"course folder kept: {root}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def bench_day04(timeout: float) -> None:
    print("\n== Day 4: one correct submission (day04_resnet, sandboxed)")
    if not os.environ.get("LABKIT_CIFAR10"):
        print("skipped: set LABKIT_CIFAR10 to a CIFAR-10 folder")
        return
    with tempfile.TemporaryDirectory(prefix="labkit-bench-day04-") as work:
        assignment = "day04_resnet"
        root = make_course_root(Path(work), [assignment], source=REPO_ROOT)
        generate_release(assignment, root)
        for source in (root / "solutions" / assignment).glob("*.ipynb"):
            release = root / "notebooks" / assignment / source.name
            nb = answered(nbformat.read(source, 4), nbformat.read(release, 4))
            folder = root / "submitted" / "sample-correct" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / source.name)
        start = time.perf_counter()
        (result,) = grade_assignment(assignment, root, timeout=timeout, use_sandbox=True)
        took = time.perf_counter() - start
        print(
            f"Day 4 submission: {result.status}, {result.score}/{result.max_score}; "
            f"{result.seconds:.0f} s to grade, {took:.0f} s with release and feedback"
        )


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    times = cell.metadata.get("execution", {})
    start, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _shares(notebook: Path, source: Path) -> tuple[float, float, float]:
    """(cell seconds, share in training cells, share in cells no test reads) of a graded
    notebook; which cells no test reads is worked out on ``source`` (the solution)."""
    nb = nbformat.read(notebook, 4)
    unread = {cell.index for cell in budget.unread_cells(nbformat.read(source, 4))}
    seconds = [_cell_seconds(cell) for cell in nb.cells]
    total = sum(seconds) or 1.0
    training = sum(
        s
        for s, cell in zip(seconds, nb.cells, strict=True)
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("train")
    )
    skipped = sum(s for i, s in enumerate(seconds) if i in unread)
    return sum(seconds), training / total, skipped / total


def _slowest_cells(notebook: Path, count: int = 3) -> str:
    """The ``count`` slowest cells of a graded notebook: ``[index] grade id or first line
    seconds``, where a lab's time goes."""
    nb = nbformat.read(notebook, 4)
    timed = sorted(((_cell_seconds(c), i, c) for i, c in enumerate(nb.cells)), reverse=True)
    named = []
    for seconds, index, cell in timed[:count]:
        name = cell.metadata.get("nbgrader", {}).get("grade_id") or cell.source.split("\n")[0]
        named.append(f"[{index}] {name[:28]} {seconds:.0f} s")
    return "; ".join(named)


def bench_labs(labs: list[str], sizes: list[str]) -> None:
    """Each lab's samples graded at each grading size, side by side."""
    print(f"\n== labs: {', '.join(labs)}; sizes {', '.join(sizes)} (sandboxed)")
    rows: dict[tuple[str, str], list[float]] = {}
    header = (
        f"{'lab':<26} {'size':<5} {'n':>2} {'p50 s':>6} {'p95 s':>6} {'max s':>6} "
        f"{'cells s':>7} {'training':>8} {'unread':>7}  load"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-labs-") as work:
        for lab in labs:
            for size in sizes:
                os.environ[budget.GRADING_RUN_VARIABLE] = size
                root = make_course_root(Path(work) / f"{lab}-{size}", [lab], source=REPO_ROOT)
                generate_release(lab, root)
                write_samples(lab, root, REPO_ROOT)
                before = os.getloadavg()[0]
                results = grade_assignment(lab, root, timeout=900, use_sandbox=True)
                after = os.getloadavg()[0]
                seconds = [r.seconds for r in results if r.seconds > 1]  # kernel runs
                rows[lab, size] = seconds
                (name,) = [p.name for p in (root / "solutions" / lab).glob("*.ipynb")]
                graded = root / "autograded" / "sample-correct" / lab / name
                cells, training, unread = _shares(graded, root / "solutions" / lab / name)
                correct = next(r for r in results if r.student == "sample-correct")
                print(
                    f"{lab:<26} {size:<5} {len(seconds):>2} {statistics.median(seconds):>6.1f} "
                    f"{_percentile(seconds, 0.95):>6.1f} {max(seconds):>6.1f} {cells:>7.0f} "
                    f"{training:>8.0%} {unread:>7.0%}  {before:.2f}->{after:.2f} "
                    f"(correct: {correct.score}/{correct.max_score})",
                    flush=True,
                )
                print(f"{'':<26} slowest cells (correct): {_slowest_cells(graded)}", flush=True)
                shutil.rmtree(root, ignore_errors=True)
    os.environ.pop(budget.GRADING_RUN_VARIABLE, None)
    if len(sizes) > 1:
        print(f"\n== p95 ratio, {sizes[0]} over {sizes[-1]}")
        for lab in labs:
            first, last = rows[lab, sizes[0]], rows[lab, sizes[-1]]
            ratio = _percentile(first, 0.95) / _percentile(last, 0.95)
            print(f"{lab:<26} {ratio:.1f}x")


def _kernel_threads() -> int:
    """Threads of the sandboxed kernels now (each runs as a user of its own when grading
    as root; the cap is per kernel then)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        uid = fields.get("Uid", "").split()[:1]
        if uid and sandbox.is_kernel_user(int(uid[0])):
            total += int(fields.get("Threads", "0"))
    return total


def _cap_words() -> str:
    shared = sandbox.shared_process_cap()
    return f"cap {shared}, all kernels together" if shared else f"cap {sandbox.MAX_PROCESSES} each"


class _PeakThreads:
    """The most kernel threads seen at once while it runs (sampled every 0.2 s)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _kernel_threads())

    def __enter__(self) -> _PeakThreads:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _solved_course(work: Path, students: int) -> Path:
    root = make_course_root(work / "course", [ASSIGNMENT], source=PROBE)
    generate_release(ASSIGNMENT, root)
    lab = load_lab(root, port=0)
    text = nbformat.writes(answered(lab.source, lab.release))
    for index in range(students):
        folder = root / "submitted" / f"student{index + 1:03d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "probe.ipynb").write_text(text, encoding="utf-8")
    return root


def bench_workers(counts: list[int], students: int, repeats: int, timeout: float) -> None:
    """Throughput of a batch with each number of workers, side by side."""
    cores = batch.cores()
    plans = {n: batch.plan_workers(n, cores) for n in counts}
    print(f"\n== batch throughput: {students} solved probe submissions, {cores} cores")
    for n, (workers, threads) in plans.items():
        print(f"  --workers {n}: {workers} at once, {threads} thread(s) per kernel")
    order = [n for r in range(repeats) for n in (counts if r % 2 == 0 else counts[::-1])]
    seconds: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="labkit-bench-workers-") as work:
        course = _solved_course(Path(work), students)
        for run, n in enumerate(order, 1):
            root = Path(work) / f"run{run}"
            shutil.copytree(course, root)
            before = os.getloadavg()
            with _PeakThreads() as threads:
                start = time.perf_counter()
                results = grade_assignment(
                    ASSIGNMENT, root, timeout=timeout, use_sandbox=True, workers=n, progress=False
                )
                took = time.perf_counter() - start
            after = os.getloadavg()
            graded = sum(r.status == "graded" for r in results)
            seconds[n].append(took)
            print(
                f"run {run}: --workers {n}: {took:.1f} s, {60 * students / took:.1f} a minute "
                f"({graded}/{students} graded); load {before[0]:.2f} -> {after[0]:.2f}; "
                f"kernel threads at most {threads.peak} ({_cap_words()})",
                flush=True,
            )
            shutil.rmtree(root, ignore_errors=True)
    print("\n== summary (students a minute, mean over runs; ratio to the first)")
    base = statistics.mean(seconds[counts[0]])
    for n in counts:
        mean = statistics.mean(seconds[n])
        print(
            f"--workers {n}: {60 * students / mean:.1f} a minute, {mean:.1f} s "
            f"({', '.join(f'{s:.1f}' for s in seconds[n])}); {base / mean:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="grading runs (default 2)")
    parser.add_argument("--timeout", type=float, default=45, help="seconds per submission")
    parser.add_argument("--cell-timeout", default="12", help="LABKIT_CELL_TIMEOUT (s)")
    parser.add_argument("--day04", action="store_true", help="also time a Day 4 submission")
    parser.add_argument("--keep", action="store_true", help="keep the course folder")
    parser.add_argument(
        "--workers", type=int, nargs="+", help="compare batch throughput with these workers"
    )
    parser.add_argument("--students", type=int, default=8, help="with --workers (default 8)")
    parser.add_argument("--repeats", type=int, default=1, help="with --workers (default 1)")
    parser.add_argument("--labs", nargs="+", help="grade these labs' samples ('all': every lab)")
    parser.add_argument(
        "--sizes", nargs="+", default=["fast", "grade"], choices=["fast", "grade"],
        help="with --labs: grading sizes, side by side (default: fast grade)",
    )  # fmt: skip
    args = parser.parse_args()
    why_not = sandbox.available()
    if why_not:
        sys.exit(f"the grading sandbox cannot run here: {why_not}")
    if args.labs:
        labs = assignments(REPO_ROOT) if args.labs == ["all"] else args.labs
        print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
        bench_labs(labs, args.sizes)
        return
    os.environ["LABKIT_CELL_TIMEOUT"] = args.cell_timeout
    print(f"{os.cpu_count()} CPUs; {args.cell_timeout} s a cell, {args.timeout:g} s a student")
    if args.workers:
        bench_workers(args.workers, args.students, args.repeats, args.timeout)
    else:
        bench_corpus(args.runs, args.timeout, args.keep)
    if args.day04:
        os.environ.pop("LABKIT_CELL_TIMEOUT")
        bench_day04(timeout=900)


if __name__ == "__main__":
    main()
