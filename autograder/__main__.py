"""``python -m autograder``: release the student notebooks, grade, run the demo.

python -m autograder release [ASSIGNMENT ...]   regenerate notebooks/ from solutions/
python -m autograder grade ASSIGNMENT [--root DIR] [--workers N | --cluster ADDRESS]
                                    [--regrade | --student ID ...]
                                                grade submitted/*/ASSIGNMENT in DIR, N
                                                students at once (or on a Dask cluster);
                                                run again, it grades only what changed
                                                or did not finish (--regrade: everyone;
                                                --student: that student, again)
python -m autograder demo [--root DIR] [--all-samples]
                                                release, then grade the bundled samples
                                                (by default all but the untouched ones)
python -m autograder colab [ASSIGNMENT ...]     add or update the Colab badge and setup
                                                cells of solutions/ (then run release)
python -m autograder bundle [ASSIGNMENT ...] [--out DIR]
                                                release, copy the student side of those
                                                labs (all) to DIR (build/student) and
                                                prove it holds no solution or hidden test
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from autograder.grading.batch import GradingError, cores
from autograder.grading.bundle import scan_bundle, write_bundle
from autograder.grading.colab import apply_colab_cells
from autograder.grading.course import (
    REPO_ROOT,
    assignments,
    generate_release,
    make_course_root,
    notebook_names,
)
from autograder.grading.grade import format_results, grade_assignment
from autograder.grading.samples import write_samples


def _release(names: list[str]) -> int:
    for assignment in names or assignments(REPO_ROOT):
        generate_release(assignment, REPO_ROOT)
        print(f"notebooks/{assignment}: regenerated from solutions/{assignment}, no leaks")
    return 0


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of students, at least 1")
    return int(text)


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _grade(
    assignment: str,
    root: Path,
    timeout: float,
    workers: int | None = None,
    cluster: str | None = None,
    regrade: bool = False,
    students: list[str] | None = None,
) -> int:
    print(f"grading {assignment} in {root}")
    # A batch job stopped by its scheduler (SIGTERM) stops as Ctrl-C does: what is
    # recorded stays, and the same command resumes.
    signal.signal(signal.SIGTERM, _stop)
    try:
        results = grade_assignment(
            assignment,
            root,
            timeout=timeout,
            workers=workers,
            cluster=cluster,
            resume=not regrade,
            only=students,
        )
    except KeyboardInterrupt:
        print("grading stopped; run the same command again to resume", file=sys.stderr)
        return 130
    except GradingError as error:
        print(f"cannot grade: {error}", file=sys.stderr)
        return 2
    print(format_results(results))
    print(f"feedback: {root / 'feedback'}; grades: {root / f'grades-{assignment}.csv'}")
    return 0


def _demo(root: Path, timeout: float, all_samples: bool = False) -> int:
    began = time.time()
    _release([])
    if root.exists():
        shutil.rmtree(root)
    labs = assignments(REPO_ROOT)
    make_course_root(root, labs)
    workers = cores()  # one single-thread kernel a core: the most students an hour
    for assignment in labs:
        samples = write_samples(assignment, root, REPO_ROOT, demo_only=not all_samples)
        start = time.time()
        print(
            f"\ngrading {len(samples)} sample submissions of {assignment} in {root}, "
            f"{workers} at once"
        )
        results = grade_assignment(
            assignment, root, timeout=timeout, workers=workers, progress=False
        )
        print(f"\n{format_results(results)}\n")
        print("what each sample must get:")
        for sample in samples:
            print(f"  {sample.student}: {sample.expected}")
        seconds = time.time() - start
        print(f"{len(results)} submissions in {seconds:.0f} s; feedback in {root / 'feedback'}")
    print(f"\nthe demo took {time.time() - began:.0f} s", end="")
    print("" if all_samples else "; --all-samples also grades the untouched notebooks")
    return 0


def _colab(names: list[str]) -> int:
    for assignment in names or assignments(REPO_ROOT):
        for name in notebook_names(assignment, REPO_ROOT):
            path = REPO_ROOT / "solutions" / assignment / name
            changed = apply_colab_cells(path)
            print(f"solutions/{assignment}/{name}: {'updated' if changed else 'up to date'}")
    print("now regenerate notebooks/: python -m autograder release " + " ".join(names))
    return 0


def _bundle(names: list[str], out: Path, release: bool) -> int:
    if release:
        _release(names)
    files = write_bundle(out, labs=names or None)
    problems, notes = scan_bundle(out)
    for note in notes:
        print(f"NOTE: {note}")
    if problems:
        print(f"NOT PUBLISHABLE: {out} holds solutions or hidden tests:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{out}: {len(files)} files, no solution and no hidden test found; publish this folder")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="regenerate notebooks/ from solutions/")
    release.add_argument("assignments", nargs="*")
    grade = commands.add_parser("grade", help="autograde every submission of an assignment")
    grade.add_argument("assignment")
    grade.add_argument("--root", type=Path, default=REPO_ROOT, help="the course folder")
    grade.add_argument("--timeout", type=float, default=900, help="seconds per submission")
    where = grade.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_workers,
        help="students graded at once on this machine (default: the cores over "
        "OMP_NUM_THREADS, the threads each kernel uses, 1 when unset)",
    )
    where.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="grade on the workers of this Dask scheduler (tcp://host:8786)",
    )
    which = grade.add_mutually_exclusive_group()
    which.add_argument(
        "--regrade",
        action="store_true",
        help="grade every submission again, not only the changed or unfinished ones",
    )
    which.add_argument(
        "--student",
        action="append",
        metavar="ID",
        dest="students",
        help="grade this student's submission (again); repeat for several. The table and "
        "CSV list them and the students whose recorded result still holds",
    )
    demo = commands.add_parser("demo", help="release, then grade the bundled sample submissions")
    demo.add_argument("--root", type=Path, default=REPO_ROOT / "build" / "demo")
    demo.add_argument("--timeout", type=float, default=900, help="seconds per submission")
    demo.add_argument(
        "--all-samples", action="store_true", help="grade every sample, the untouched ones too"
    )
    colab = commands.add_parser("colab", help="add or update the Colab badge and setup cells")
    colab.add_argument("assignments", nargs="*")
    bundle = commands.add_parser("bundle", help="write the student bundle and prove it clean")
    bundle.add_argument("assignments", nargs="*", help="the labs to publish (default: all)")
    bundle.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "student")
    bundle.add_argument(
        "--no-release", action="store_true", help="bundle notebooks/ as it is (no regeneration)"
    )
    args = parser.parse_args(argv)

    if args.command == "release":
        return _release(args.assignments)
    if args.command == "grade":
        return _grade(
            args.assignment,
            args.root.resolve(),
            args.timeout,
            args.workers,
            args.cluster,
            args.regrade,
            args.students,
        )
    if args.command == "colab":
        return _colab(args.assignments)
    if args.command == "bundle":
        return _bundle(args.assignments, args.out.resolve(), release=not args.no_release)
    return _demo(args.root.resolve(), args.timeout, args.all_samples)


if __name__ == "__main__":
    sys.exit(main())
