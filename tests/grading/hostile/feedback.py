"""Feedback: student code that smuggles the hidden tests into the feedback, re-encoded
(zero-width characters, HTML entities, ANSI colour codes), or floods a test cell's
output, or forges its pass line; and student HTML that would run in whoever opens the
feedback (a script, a file: iframe, a style that hides the failing test behind a fake
score, an ``onerror`` handler).

A notebook whose outputs quote hidden tests gets no feedback page and a flag from the
driver; every other page shows a test cell's check report only, and no student script,
style, frame or handler. ``BROWSER`` lists the entries whose pages
``tests/grading/test_feedback_browser.py`` also opens in headless Chromium.
"""

from __future__ import annotations

import re
from textwrap import dedent

import nbformat

from tests.grading.hostile import (
    ASSIGNMENT,
    CONV,
    FULL,
    NOTEBOOK,
    TABLE,
    TRAIN,
    Category,
    Lab,
    Outcome,
    Submission,
    index_of,
    insert_after,
    notebook,
    scored,
)

CATEGORY = Category("feedback")

WITHHELD_FLAG = "no feedback written"  # the driver's flag (autograder/grading/grade.py)
# A test cell's pass line as the page shows it: an output's <pre>, not the cell source.
PASS_LINES = {
    CONV: "<pre>✔ conv_output_size: 3 cases, each an int",
    TABLE: "<pre>✔ TinyNet() matches the target: 5 rows, 490 parameters",
    TRAIN: "<pre>✔ 2 epochs; test accuracy",
}
# What the pages' attacks do if they run: set the title and a global. In markdown (shown
# rendered, never as source) as it is; in code cells built at run time, since the page
# shows code as source: the global's name is in the page only if an output carries it.
PWNED_TITLE, PWNED_GLOBAL = "PWNED", "labkitPwned"
PWN = f"document.title = '{PWNED_TITLE}'; window.{PWNED_GLOBAL} = true;"
PWN_BUILT = '("document.title = \'PWNED\'; window.labkit" + "Pwned = true;")'


def _conv(before_return: str) -> str:
    """A correct ``conv_output_size`` that runs ``before_return`` first, where ``running``
    is the source of the cell calling it: in a test cell, hidden tests included."""
    body = dedent(before_return).strip().replace("\n", "\n    ")
    return (
        "def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:\n"
        "    running = In[-1]  # the cell now running\n"
        f"    {body}\n"
        "    return (size + 2 * padding - kernel) // stride + 1\n"
    )


def _pass_lines(*cells: str):
    """A check: the page shows the pass lines of ``cells`` and of no other test cell."""

    def check(outcome: Outcome) -> list[str]:
        shown = [cell for cell, line in PASS_LINES.items() if line in outcome.feedback]
        return [] if shown == list(cells) else [f"pass lines of {shown}, expected {cells}"]

    return check


def _absent(*texts: str):
    """A check: none of ``texts`` is anywhere in the feedback page's text."""

    def check(outcome: Outcome) -> list[str]:
        found = [text for text in texts if text in outcome.feedback]
        return [f"the feedback page shows {found}"] if found else []

    return check


def _no_markup(pattern: str):
    """A check: no tag in the page's HTML as written matches ``pattern`` (code shown as
    source is escaped there, so only real markup can)."""

    def check(outcome: Outcome) -> list[str]:
        page = outcome.root / "feedback" / outcome.entry.name / ASSIGNMENT / NOTEBOOK
        found = re.findall(pattern, page.with_suffix(".html").read_text(encoding="utf-8"))
        return [f"the feedback page has {[m[-80:] for m in found[:3]]}"] if found else []

    return check


def _shows_score(score: str):
    """A check: the grader's own header states ``score``, as the gradebook has it."""

    def check(outcome: Outcome) -> list[str]:
        header = f'<p class="labkit-score">Score: {score}</p>'
        return [] if header in outcome.feedback else [f"no grader's header with {score!r}"]

    return check


# ---- hidden tests, re-encoded -------------------------------------------------------------

CATEGORY.add(
    "feedback-hidden-zero-width",
    "conv_output_size prints the test cell calling it, a zero-width space between letters",
    lambda lab: notebook(
        lab.solved(
            conv_output_size=_conv(
                """
                if "HIDDEN TESTS" in running:
                    print("\\u200b".join(running))
                """
            )
        )
    ),
    scores=FULL,
    flagged=True,
    feedback=False,
    flag=WITHHELD_FLAG,
)

CATEGORY.add(
    "feedback-hidden-html-entities",
    "conv_output_size displays the test cell as HTML, every letter an entity, escaped twice",
    lambda lab: notebook(
        lab.solved(
            conv_output_size="from IPython.display import HTML, display\n\n\n"
            + _conv(
                """
                if "HIDDEN TESTS" in running:
                    entities = "".join(f"&#{ord(c)};" for c in running).replace("&", "&amp;")
                    display(HTML(f"<pre>{entities}</pre>"))
                """
            )
        )
    ),
    scores=FULL,
    flagged=True,
    feedback=False,
    flag=WITHHELD_FLAG,
)

CATEGORY.add(
    "feedback-hidden-ansi",
    "conv_output_size raises the test cell as its message, an ANSI colour code per letter",
    lambda lab: notebook(
        lab.solved(
            conv_output_size=_conv(
                """
                if "HIDDEN TESTS" in running:
                    raise ValueError("".join(f"\\x1b[3{i % 8}m{c}" for i, c in enumerate(running)))
                """
            )
        )
    ),
    scores=scored(0, 3, 2),
    flagged=True,
    feedback=False,
    flag=WITHHELD_FLAG,
)

# ---- what student code prints during a test ---------------------------------------------

CHATTY = """
import sys

from IPython.display import HTML, display


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    for step in range(200):
        print("CHAT" + f"TY step {step}: size {size}, kernel {kernel}")
    print("CHAT" + "TY-ERR", file=sys.stderr)
    print("✔ all hidden tests " + "passed too: 7 / 7")
    display(HTML("<b>CHAT" + "TY-HTML</b>"))
    return (size + 2 * padding - kernel) // stride + 1
"""

CATEGORY.add(
    "feedback-chatty-test",
    "conv_output_size prints 200 lines, stderr, HTML and a fake ✔ line on every call",
    lambda lab: notebook(lab.solved(conv_output_size=CHATTY)),
    scores=FULL,
    feedback=True,
    checks=(_pass_lines(CONV, TABLE, TRAIN), _absent("CHATTY", "all hidden tests passed")),
)

FORGED = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    print("✔ conv_output_size: 3 cases, each an int")
    return size
"""

CATEGORY.add(
    "feedback-forged-pass-line",
    "a wrong conv_output_size that prints the test's pass line itself",
    lambda lab: notebook(lab.solved(conv_output_size=FORGED)),
    scores=scored(0, 3, 2),
    feedback=True,
    checks=(_pass_lines(TABLE, TRAIN), _shows_score("5 / 7")),
)

# ---- student HTML in the page ------------------------------------------------------------


def _script(lab: Lab) -> Submission:
    """A script in a markdown cell, a javascript: link, and JavaScript and markdown
    outputs that carry scripts."""
    nb = lab.solved()
    at = index_of(nb, CONV)
    markdown = f"Notes.<script>{PWN}</script>\n\n[click](javascript:{PWN.replace(' ', '')})"
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(markdown))
    outputs = f"""
    from IPython.display import Javascript, Markdown, display

    display(Javascript({PWN_BUILT}))
    display(Markdown("*hi*<script>" + {PWN_BUILT} + "</script>"))
    """
    insert_after(nb, CONV, outputs)
    return notebook(nb)


CATEGORY.add(
    "feedback-script",
    "<script> in a markdown cell, a javascript: link, Javascript and Markdown outputs",
    _script,
    scores=FULL,
    feedback=True,
    checks=(
        _absent(PWNED_GLOBAL),
        _no_markup(r"<script[^>]*>[^<]*PWNED|<a [^>]*javascript:"),
        _shows_score("7 / 7"),
    ),
)

IFRAME = """
from IPython.display import HTML, display

display(HTML(
    '<iframe src="file:///etc/passwd" width="800" height="400"></iframe>'
    '<object data="file:///etc/passwd"></object><embed src="file:///etc/shadow">'
    '<img src="' + "../" * 6 + 'etc/passwd" alt="relative">'
))
"""

CATEGORY.add(
    "feedback-iframe-file",
    'an HTML output with <iframe src="file:///etc/passwd">, <object>, <embed>, a relative img',
    lambda lab: notebook(insert_after(lab.solved(), CONV, IFRAME)),
    scores=FULL,
    feedback=True,
    checks=(_no_markup(r"<(?:iframe|object|embed)\b|<[^<>]*etc/(?:passwd|shadow)"),),
)

FAKE_SCORE = """\
<style>
/* FAKE-STYLE */
.output_error, .panel-heading, header { display: none !important; }
</style>
<div style="position: fixed; top: 0; left: 0; width: 100%; height: 100%; z-index: 9999;
            background: white; font-size: 40px">Score: 7 / 7 (FAKE-SCORE)</div>
"""


def _fake_score(lab: Lab) -> Submission:
    """A wrong answer (the conv test fails: 5 / 7), and a markdown cell whose style hides
    the failing test and the real score behind a full-page fake "Score: 7 / 7"."""
    nb = lab.solved(
        conv_output_size="""
        def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
            return size
        """
    )
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(FAKE_SCORE))
    return notebook(nb)


CATEGORY.add(
    "feedback-style-fake-score",
    "a <style> hiding the failing test and the score, a full-page fake 'Score: 7 / 7'",
    _fake_score,
    scores=scored(0, 3, 2),
    feedback=True,
    checks=(
        _absent("FAKE-STYLE", "z-index: 9999", "position: fixed"),
        _no_markup(r"<body[\s\S]*<style"),
        _shows_score("5 / 7"),
        _pass_lines(TABLE, TRAIN),
    ),
)

# A 1x1 PNG, displayed with a width that would break out of the template's unquoted
# width= attribute.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg"
    "=="
)


def _onerror(lab: Lab) -> Submission:
    nb = lab.solved()
    at = index_of(nb, CONV)
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(f'<img src="x" onerror="{PWN}">'))
    outputs = f"""
    from IPython.display import HTML, display

    display(HTML('<img src=x on' + 'error="' + {PWN_BUILT} + '"><svg on' + 'load="x"></svg>'))
    display(
        {{"image/png": {PIXEL!r}}},
        raw=True,
        metadata={{"image/png": {{"width": "1 on" + "error=" + {PWN_BUILT}.replace(" ", "")}}}},
    )
    """
    insert_after(nb, CONV, outputs)
    return notebook(nb)


CATEGORY.add(
    "feedback-img-onerror",
    "onerror= on an img in markdown and in HTML, onload= on an svg, a PNG's width injecting one",
    _onerror,
    scores=FULL,
    feedback=True,
    checks=(
        _absent(PWNED_GLOBAL),
        _no_markup(r"<[^<>]*\son(?:error|load)\s*="),
        _shows_score("7 / 7"),
    ),
)

# Opened in headless Chromium by tests/grading/test_feedback_browser.py.
BROWSER = (
    "feedback-script",
    "feedback-iframe-file",
    "feedback-style-fake-score",
    "feedback-img-onerror",
)
