"""``python -m autograder``: release the student notebooks, grade, run the demo.

python -m autograder release [ASSIGNMENT ...]   regenerate notebooks/ from solutions/, and
                                                the Korean edition, notebooks/ko/, from it
                                                and translations/ko/
python -m autograder translations update [ASSIGNMENT ... | labkit]
                                                bring the catalogs in line with the English:
                                                new text added, changed text marked fuzzy
python -m autograder translations check         list stale entries per catalog (exit 1 if
                                                any) and count the untranslated ones
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
from autograder.grading.samples import kernels_at_once, write_samples
from autograder.translation.catalog import (
    catalogs,
    merge,
    read_catalog,
    status,
    write_catalog,
)
from autograder.translation.edition import write_edition


def _release(names: list[str]) -> int:
    for assignment in names or assignments(REPO_ROOT):
        generate_release(assignment, REPO_ROOT)
        print(f"notebooks/{assignment}: regenerated from solutions/{assignment}, no leaks")
        for path in write_edition(assignment, REPO_ROOT):
            print(f"{path.relative_to(REPO_ROOT)}: the Korean edition, no leaks")
    return 0


def _translations(action: str, names: list[str]) -> int:
    found = catalogs(REPO_ROOT)
    unknown = sorted(set(names) - set(found))
    if unknown:
        print(f"no such catalog: {', '.join(unknown)} (choose from {', '.join(found)})")
        return 2
    stale_total = 0
    for label, (path, messages) in found.items():
        if names and label not in names:
            continue
        where = path.relative_to(REPO_ROOT)
        if action == "update":
            write_catalog(merge(read_catalog(path), messages), path)
        state = status(read_catalog(path), messages)
        stale_total += len(state.stale)
        print(
            f"{where}: {state.translated} translated, {len(state.untranslated)} untranslated "
            f"(shown in English), {len(state.stale)} stale"
        )
        for line in state.stale:
            print(f"  STALE {line}")
    if stale_total and action == "check":
        print(
            "revise the fuzzy entries (then remove their fuzzy flag) after "
            "`python -m autograder translations update`, then run `python -m autograder release`"
        )
        return 1
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
    for assignment in labs:
        samples = write_samples(assignment, root, REPO_ROOT, demo_only=not all_samples)
        # One kernel a core, each with the cores' share of threads: a lab whose only
        # sample that runs is the correct one grades it with every core.
        workers = kernels_at_once(samples, cores())
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
    translations = commands.add_parser(
        "translations", help="update the Korean catalogs, or list their stale entries"
    )
    translations.add_argument("action", choices=["update", "check"])
    translations.add_argument("catalogs", nargs="*", help="labs, or labkit (default: all)")
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
    if args.command == "translations":
        return _translations(args.action, args.catalogs)
    if args.command == "colab":
        return _colab(args.assignments)
    if args.command == "bundle":
        return _bundle(args.assignments, args.out.resolve(), release=not args.no_release)
    return _demo(args.root.resolve(), args.timeout, args.all_samples)


if __name__ == "__main__":
    sys.exit(main())
