"""Tampering with the tests: test cells deleted, edited, copied, stripped of their metadata,
tagged to be skipped, or blanked by an IPython input transformer.
"""

from __future__ import annotations

import copy

from autograder.grading.grade import TAMPERED
from tests.grading.hostile import (
    CONV,
    FULL,
    NO_BN_NET,
    POINTS,
    TABLE,
    TRAIN,
    WRONG_CONV,
    Category,
    Lab,
    Outcome,
    Submission,
    cell_of,
    grade_id_of,
    index_of,
    insert_after,
    notebook,
    scored,
)

CATEGORY = Category("tampering")


def _deleted_tests(lab: Lab) -> Submission:
    nb = lab.solved()
    nb.cells = [c for c in nb.cells if grade_id_of(c) not in POINTS]
    return notebook(nb)


CATEGORY.add(
    "tamper-deleted-tests",
    "every test cell deleted",
    _deleted_tests,
    scores=FULL,
)


def _stripped_metadata(lab: Lab) -> Submission:
    """Copied into a fresh notebook: no nbgrader metadata anywhere; the table test faked."""
    nb = lab.solved(tiny_net=NO_BN_NET)
    cell_of(nb, TABLE).source = 'print("✔ TinyNet() matches the target")'
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return notebook(nb)


CATEGORY.add(
    "tamper-stripped-metadata",
    "no nbgrader metadata anywhere (pasted into a new notebook); table test faked",
    _stripped_metadata,
    scores=scored(2, 0, 2),
    cheats_for=(TABLE,),
)


def _edited_test(lab: Lab) -> Submission:
    nb = lab.solved(conv_output_size=WRONG_CONV)
    cell_of(nb, CONV).source = 'print("✔ conv_output_size: 3 cases, each an int")'
    return notebook(nb)


CATEGORY.add(
    "tamper-edited-test",
    "a wrong answer and its test cell replaced by a ✔ print",
    _edited_test,
    scores=scored(0, 3, 2),
    cheats_for=(CONV,),
)


def _copied_test(lab: Lab) -> Submission:
    """A copy of the table test (same grade id), faked, placed before the original."""
    nb = lab.solved(tiny_net=NO_BN_NET)
    fake = copy.deepcopy(cell_of(nb, TABLE))
    fake.source = 'print("✔ TinyNet() matches the target")'
    fake.id = "fake-copy"
    nb.cells.insert(index_of(nb, "tiny_net") + 1, fake)
    return notebook(nb)


CATEGORY.add(
    "tamper-copied-test",
    "a faked copy of the table test (same grade id) before the original",
    _copied_test,
    scores=scored(2, 0, 2),
    cheats_for=(TABLE,),
)


def _metadata_edited(lab: Lab) -> Submission:
    """schema_version 4 on test cells (1 on the others), points 100 and locked false on
    one test, another no longer graded, a third turned into markdown; a wrong answer."""
    nb = lab.solved(conv_output_size=WRONG_CONV)
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["schema_version"] = 4 if grade_id_of(cell) in POINTS else 1
    cell_of(nb, CONV).metadata["nbgrader"].update(points=100, locked=False)
    cell_of(nb, TABLE).metadata["nbgrader"]["grade"] = False
    training = cell_of(nb, TRAIN)
    training.cell_type = "markdown"
    del training["outputs"], training["execution_count"]
    return notebook(nb)


def _max_is_seven(outcome: Outcome) -> list[str]:
    top = sum(POINTS.values())
    return [] if outcome.max_score == top else [f"max score {outcome.max_score}, not {top}"]


CATEGORY.add(
    "tamper-metadata-edited",
    "schema_version 4 or 1, points 100, a test ungraded, another made markdown",
    _metadata_edited,
    scores=scored(0, 3, 2),
    checks=(_max_is_seven,),
)


def _skip_tags(lab: Lab) -> Submission:
    nb = lab.solved(conv_output_size=WRONG_CONV, tiny_net=NO_BN_NET)
    cell_of(nb, TABLE).metadata["tags"] = ["skip-execution"]
    cell_of(nb, CONV).metadata["tags"] = ["raises-exception"]
    return notebook(nb)


CATEGORY.add(
    "tamper-skip-tags",
    "skip-execution and raises-exception tags on failing test cells",
    _skip_tags,
    scores=scored(0, 0, 2),
    cheats_for=(CONV, TABLE),
)

TRANSFORMER_BLANK = """
def _skip_checks(lines):
    return [] if any("problems" in line for line in lines) else lines


get_ipython().input_transformers_cleanup.append(_skip_checks)
"""

CATEGORY.add(
    "tamper-transformer-blank",
    "an IPython input transformer blanks every test cell",
    lambda lab: notebook(insert_after(lab.untouched(), "conv_output_size", TRANSFORMER_BLANK)),
    status=TAMPERED,
    flagged=True,
    cheats_for=(CONV, TABLE, TRAIN),
)

# Keeps the visible checks (their ✔ lines print) and drops the hidden ones.
TRANSFORMER_HIDDEN = """
def _visible_only(lines):
    kept = []
    for line in lines:
        if "BEGIN HIDDEN" in line:
            break
        kept.append(line)
    return kept


get_ipython().input_transformers_cleanup.append(_visible_only)
"""

# Right for the three visible cases only.
VISIBLE_ONLY_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return {(32, 3, 1, 1): 32, (32, 5, 1, 0): 28, (8, 2, 2, 0): 4}[(size, kernel, stride, padding)]
"""

CATEGORY.add(
    "tamper-transformer-hidden",
    "an input transformer drops the hidden tests; answers right for visible cases only",
    lambda lab: notebook(
        insert_after(
            lab.solved(conv_output_size=VISIBLE_ONLY_CONV),
            "conv_output_size",
            TRANSFORMER_HIDDEN,
        )
    ),
    scores=FULL,
    flagged=True,
    cheats_for=(CONV,),
)
