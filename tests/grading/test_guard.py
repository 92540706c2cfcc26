"""The kernel guard: what the checks rely on is put back before every cell, and said.

One notebook runs in a real kernel with the guard loaded, as grading runs it (without
the sandbox, which the hostile corpus covers); each cell tampers with one thing and the
next cell looks at what the checks would see.
"""

from __future__ import annotations

import nbformat
import pytest

from autograder.grading.course import course_config
from autograder.grading.scoring import GUARD_KEY, OUTCOME_KEY, RecordOutcome, guard_flags

pytestmark = pytest.mark.slow

CELLS = [
    ("honest", "import torch\nx = torch.ones(2)"),
    # labkit loads its names on first use; the guard bound them all before this cell
    ("kit-names", "import labkit\nfrom labkit import fit, plot_history"),
    ("kit-patch", "labkit.fit = lambda *a, **k: None"),
    ("after-kit-patch", "print('fit is', labkit.fit.__module__)"),
    ("patch", "torch.allclose = lambda *a, **k: True"),
    ("after-patch", "print('allclose says', torch.allclose(torch.zeros(1), torch.ones(1)))"),
    ("trace", "import sys\nsys.settrace(lambda *a: None)"),
    ("after-trace", "print('trace is', sys.gettrace())"),
    ("xmode", "get_ipython().run_line_magic('xmode', 'Verbose')"),
    ("after-xmode", "print('mode is', get_ipython().InteractiveTB.mode)"),
    (
        "code-swap",
        "import autograder.checks.tables as t\n"
        "t.compare_tables.__code__ = (lambda *a, **k: []).__code__",
    ),
    ("after-code-swap", "print('problems:', t.compare_tables(None, None))"),
    ("unregister", "ip = get_ipython()\nip.events.callbacks['pre_run_cell'].clear()"),
    ("after-unregister", "print('callbacks:', len(ip.events.callbacks['pre_run_cell']))"),
    ("raises", "raise ValueError('no verdict after a raise')"),
    ("history", "h = get_ipython().history_manager\nprint('history', h.enabled, h.save_thread)"),
]


@pytest.fixture(scope="module")
def graded() -> dict[str, nbformat.NotebookNode]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for _, src in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    runner = RecordOutcome(
        timeout=300,
        allow_errors=True,
        extra_arguments=course_config().Execute.extra_arguments,  # as grading starts it
    )
    runner.preprocess(nb, {})
    return {name: cell for (name, _), cell in zip(CELLS, nb.cells, strict=True)}


def _printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_an_honest_cell_gets_a_clean_verdict(graded):
    assert graded["honest"].metadata[GUARD_KEY] == {"guard": "running", "changes": []}


def test_the_kits_names_loaded_on_first_use_are_guarded_and_not_flagged(graded):
    assert graded["kit-names"].metadata[GUARD_KEY] == {"guard": "running", "changes": []}
    assert "labkit.fit was replaced" in graded["kit-patch"].metadata[GUARD_KEY]["changes"]
    assert "fit is labkit.train" in _printed(graded["after-kit-patch"])


def test_a_patched_torch_function_is_put_back_and_named(graded):
    assert "allclose says False" in _printed(graded["after-patch"])
    assert "torch.allclose was replaced" in graded["patch"].metadata[GUARD_KEY]["changes"]


def test_a_trace_function_is_removed_and_named(graded):
    assert "trace is None" in _printed(graded["after-trace"])
    changes = graded["after-trace"].metadata[GUARD_KEY]["changes"]
    assert "the trace function (sys.settrace) was changed" in changes


def test_the_traceback_mode_stays_minimal(graded):
    assert "mode is Minimal" in _printed(graded["after-xmode"])
    assert (
        "the traceback mode (%xmode) was changed" in graded["xmode"].metadata[GUARD_KEY]["changes"]
    )


def test_a_swapped_code_object_in_the_kit_is_put_back(graded):
    changes = graded["code-swap"].metadata[GUARD_KEY]["changes"]
    assert "the code of autograder.checks.tables.compare_tables was changed" in changes
    assert "problems: []" not in _printed(graded["after-code-swap"])  # the real check ran


def test_the_guard_cannot_be_unhooked_quietly(graded):
    # the verdict is asked for outside the cell's code, and puts the callback back
    changes = graded["unregister"].metadata[GUARD_KEY]["changes"]
    assert "a pre_run_cell callback of the grading kernel was removed" in changes
    assert "callbacks: 0" not in _printed(graded["after-unregister"])


def test_a_cell_that_raised_has_no_verdict_and_is_not_counted(graded):
    cell = graded["raises"]
    assert cell.metadata[OUTCOME_KEY] == "raised"
    assert GUARD_KEY not in cell.metadata


def test_guard_flags_name_each_change_once_and_silent_graded_cells():
    nb = nbformat.v4.new_notebook()
    for grade_id, verdict in (("t1", {"guard": "running", "changes": ["torch.equal was replaced"]}),
                              ("t2", {"guard": "running", "changes": ["torch.equal was replaced"]}),
                              ("t3", None)):  # fmt: skip
        cell = nbformat.v4.new_code_cell("assert True")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id}
        cell.metadata[OUTCOME_KEY] = "ok"
        if verdict is not None:
            cell.metadata[GUARD_KEY] = verdict
        nb.cells.append(cell)
    assert guard_flags(nb) == [
        "the grading guard found that torch.equal was replaced",
        "t3: passed with no answer from the guard",
    ]


def test_the_kernel_keeps_no_history_database(graded):
    """Its thread would write to /tmp, which a student can fill, and print the error into
    whatever a later check was capturing."""
    assert "history False None" in _printed(graded["history"])
