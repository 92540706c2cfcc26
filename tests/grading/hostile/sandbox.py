"""The sandbox's edges: the folder of the kernel's sockets filled and left for the next
student, an output of hundreds of megabytes, processes started where the kernel's own
kill cannot see them, a submission the scan takes minutes on, and a file elsewhere on
the machine.
"""

from __future__ import annotations

import re

from autograder.grading.grade import TIMED_OUT
from autograder.grading.outputs import MAX_OUTPUT_BYTES, NOTE
from tests.grading.hostile import (
    ASSIGNMENT,
    FULL,
    NOTEBOOK,
    PLANTED,
    Category,
    Lab,
    Outcome,
    Submission,
    insert_after,
    notebook,
)

CATEGORY = Category("sandbox")

LEFT_BEHIND = "labkit-left-by-"  # + the writer's name: files one student leaves for the next
FILLER = "sandbox-fill-runtime"


def _fill_runtime(lab: Lab) -> Submission:
    """Writes 1.2 GB beside the kernel's connection file (the runtime folder every kernel
    of a batch used to share, on the grader's disk), and leaves a file for the next
    student there and in every other folder it may write."""
    cheat = f"""
    import os
    import sys
    from pathlib import Path

    runtime = Path(sys.argv[sys.argv.index("-f") + 1]).parent
    chunk = b"x" * 2**26
    written = 0
    try:
        for number in range(5):  # files of 256 MB: one file may not pass 512 MB
            with open(runtime / f"filler-{{number}}.bin", "wb") as handle:
                for _ in range(4):
                    handle.write(chunk)
                    handle.flush()
                    written += len(chunk)
    except OSError as error:
        print(f"the runtime folder refused after {{written / 2**20:.0f}} MB: {{error}}")
    if written >= 2**30:
        print("RUNTIME-" + "FILLED", written)
    folders = [runtime, Path.cwd(), Path("/tmp"), Path.home(), Path("/dev/shm"), Path("/var/tmp")]
    for folder in folders:
        try:
            (folder / "{LEFT_BEHIND}{FILLER}.txt").write_text("a secret for the next student")
        except OSError as error:
            print("refused:", folder, error)
    connection = Path(sys.argv[sys.argv.index("-f") + 1])
    try:
        connection.write_text("{{}}")
        print("CONNECTION-" + "WRITTEN")
    except OSError as error:
        print("refused:", connection, error)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", cheat)
    return notebook(nb)


CATEGORY.add(
    FILLER,
    "writes 1.2 GB into the kernel's runtime folder, leaves files for the next student",
    _fill_runtime,
    scores=FULL,
    flagged=None,
    markers=("RUNTIME-FILLED", "CONNECTION-WRITTEN"),
)


def _read_earlier(lab: Lab) -> Submission:
    """Graded right after the filler, in the same batch: looks for what it left."""
    cheat = f"""
    import sys
    from pathlib import Path

    runtime = Path(sys.argv[sys.argv.index("-f") + 1]).parent
    places = [runtime, *runtime.parents, Path.cwd(), *Path.cwd().parents]
    places += [Path("/tmp"), Path.home(), Path("/dev/shm"), Path("/var/tmp")]
    for place in places:
        patterns = ("{LEFT_BEHIND}*", "*/{LEFT_BEHIND}*", "{FILLER}/{ASSIGNMENT}/{LEFT_BEHIND}*")
        try:
            found = [path for pattern in patterns for path in place.glob(pattern)]
        except OSError:
            continue
        for path in found:
            try:
                print("READ-EARLIER-" + "STUDENT", path, path.read_text()[:40])
            except OSError as error:
                print("refused:", path, error)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", cheat)
    return notebook(nb)


CATEGORY.add(
    "sandbox-read-earlier",
    "graded after the filler in the same batch, reads what it left behind",
    _read_earlier,
    scores=FULL,
    flagged=None,
    markers=("READ-EARLIER-STUDENT",),
)


def _output_flood(lab: Lab) -> Submission:
    """Prints 315 MB, half of it characters that the feedback page escapes (5 bytes each)."""
    flood = """
    import sys

    line = "<&>" * 2**18 + "\\n"
    for number in range(400):
        sys.stdout.write(line if number % 2 else "x" * len(line))
    print("the flood is over")
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", flood)
    return notebook(nb)


def _outputs_capped(outcome: Outcome) -> list[str]:
    root, name = outcome.root, outcome.entry.name
    graded = root / "autograded" / name / ASSIGNMENT / NOTEBOOK
    feedback = root / "feedback" / name / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")
    problems = [
        f"{path.relative_to(root)} holds {path.stat().st_size:,} bytes, over the cap"
        for path in (graded, feedback)
        if path.exists() and path.stat().st_size > MAX_OUTPUT_BYTES + 2**20
    ]
    if not feedback.exists():
        problems.append("no feedback page")
    if NOTE not in outcome.outputs:
        problems.append("no 'output truncated' note in the autograded notebook")
    if NOTE not in outcome.feedback:
        problems.append("no 'output truncated' note in the feedback")
    return problems


CATEGORY.add(
    "sandbox-output-flood",
    "prints 315 MB, half of it <&> (which the feedback page escapes)",
    _output_flood,
    scores=FULL,
    checks=(_outputs_capped,),
)


def _escaping_processes(lab: Lab) -> Submission:
    """Unregisters the kernel's own kill, then starts sleepers from a post-cell hook
    registered after it, orphans whose parent is not the kernel, and from a thread once
    its cell is over; a later cell counts the processes started before it that live on."""
    start = """
    import os
    import subprocess
    import threading
    import time

    shell = get_ipython()
    for event in ("pre_run_cell", "post_run_cell"):
        for callback in list(shell.events.callbacks[event]):
            shell.events.unregister(event, callback)


    def sleepers():
        subprocess.Popen(["sh", "-c", "sleep 600 &"])  # an orphan: its parent is not the kernel
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)


    started = []


    def once_after_the_cell(*_args):
        if not started:
            started.append(True)
            sleepers()


    def from_a_thread():
        time.sleep(1)  # the cell is over by then
        sleepers()


    shell.events.register("post_run_cell", once_after_the_cell)
    threading.Thread(target=from_a_thread, daemon=True).start()
    """
    wait = """
    import time

    time.sleep(3)
    """
    count = """
    import os
    import time

    ticks = os.sysconf("SC_CLK_TCK")
    began = time.clock_gettime(time.CLOCK_BOOTTIME) - 0.5
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, os.getpid()):
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[19]) / ticks < began:
            alive.append(entry)
    print(f"processes alive after a cell: {len(alive)}")
    if alive:
        print("SURVIVED-" + "CELL", alive)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", start, wait, count)
    return notebook(nb)


def _counted_processes(outcome: Outcome) -> list[str]:
    found = "processes alive after a cell: 0" in outcome.outputs
    return [] if found else ["the notebook did not report 0 processes alive after a cell"]


CATEGORY.add(
    "sandbox-escaping-processes",
    "sleepers from a later post-cell hook, from a thread, and orphans; own kill unregistered",
    _escaping_processes,
    scores=FULL,
    flagged=True,
    markers=("SURVIVED-CELL",),
    checks=(_counted_processes,),
)

# The scan reads code in time linear in its size, but a statement costs it far more than a
# byte of a string: about 45 µs each on the fastest machine seen here, where a 90 MB string
# took it only 25 s. 240 cells of 20,000 statements (29 MB) keep it busy for about five
# times the cap there, and longer anywhere else, and it holds one cell's tree at a time.
_SLOW_CELL = "x = 0\n" * 20_000


def _slow_to_scan(lab: Lab) -> Submission:
    nb = lab.solved()
    insert_after(nb, "conv_output_size", *[_SLOW_CELL] * 240)
    return notebook(nb)


def _within_the_cap(outcome: Outcome) -> list[str]:
    """It ended within the cap that its detail reports ("stopped after 45 s, ...")."""
    result = outcome.result
    cap = re.search(r"stopped after (\d+) s", result.detail) if result else None
    if result is None or cap is None:
        return ["no cap in the detail"]
    late = result.seconds > int(cap[1]) + 5
    return [f"ended after {result.seconds:.0f} s, past its {cap[1]} s cap"] if late else []


CATEGORY.add(
    "sandbox-slow-scan",
    "4.8 million statements the scan takes minutes on: timed out within the cap",
    _slow_to_scan,
    status=TIMED_OUT,
    flagged=None,
    detail="while checking the submission",
    checks=(_within_the_cap,),
)


def _read_planted(lab: Lab) -> Submission:
    """Reads a file planted in a folder of the machine that no lab needs."""
    cheat = f"""
    from pathlib import Path

    planted = Path({str(lab.outside / PLANTED)!r})
    elsewhere = [Path("/var/tmp"), Path("/srv"), Path("/home"), Path("/opt")]
    for path in [planted, planted.parent, *elsewhere]:
        try:
            if path.is_dir():
                print("listed", path, sorted(p.name for p in path.iterdir())[:5])
            else:
                print("PLANTED-" + "READ", path.read_text()[:40])
        except OSError as error:
            print("refused:", path, error)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", cheat)
    return notebook(nb)


CATEGORY.add(
    "sandbox-read-planted",
    "reads a file planted under /var/tmp, outside the repository and the course",
    _read_planted,
    scores=FULL,
    flagged=None,
    markers=("PLANTED-READ",),
)
