"""Feedback, piece by piece and without nbgrader: what a test cell shows, how hidden tests
are found however re-encoded, how student HTML is cleaned and how the page is sealed.
The corpus (``tests/grading/hostile/feedback.py``) grades the same attacks end to end."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import nbformat
import pytest

from autograder.grading import grade
from autograder.grading.course import course_config
from autograder.grading.feedback import (
    KeepCheckReports,
    WithholdLeakedFeedback,
    check_report,
    find_leaks,
    normalise,
)
from autograder.grading.feedback_html import (
    FeedbackExporter,
    SanitiseStudentContent,
    clean_html,
    seal_page,
)
from autograder.grading.grade import GRADED, Result, format_results

SECRET = "assert secret_answer(7) == 42, 'the hidden case'"
TEST_SOURCE = f"""\
problems = check(answer)
assert not problems, report(problems)
print(f"✔ answer: {{len(problems)}} problems, {{3}} cases")
### BEGIN HIDDEN TESTS
{SECRET}
### END HIDDEN TESTS"""
PASS = "✔ answer: 0 problems, 3 cases"


def _test_cell(*outputs: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(TEST_SOURCE, outputs=list(outputs))
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1}
    cell.metadata["nbgrader"]["grade_id"] = "test_answer"
    return cell


def _stdout(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


# ---- what a graded test cell shows ------------------------------------------------------


def test_a_passing_test_cell_shows_only_its_pass_line():
    html = nbformat.v4.new_output("display_data", data={"text/html": "<b>student</b>"})
    cell = _test_cell(
        _stdout("student chatter\n" + PASS + "\nmore chatter\n"),
        nbformat.v4.new_output("stream", name="stderr", text="student warning\n"),
        html,
        _stdout("✔ all hidden tests passed: 7 / 7\n"),  # not the cell's own pass line
    )
    assert check_report(cell) == [_stdout(PASS + "\n")]


def test_a_forged_pass_line_hides_both():
    """Student code printed a line the cell's own print() could print: which is real is
    unknown, so neither is shown."""
    cell = _test_cell(_stdout("✔ answer: 0 problems, 3 cases\n" + PASS + "\n"))
    assert check_report(cell) == []


def test_a_failing_test_cell_shows_its_error_as_name_and_message_only():
    error = nbformat.v4.new_output(
        "error",
        ename="AssertionError",
        evalue="1 problem found:\n- answer is 41",
        traceback=["Cell In[3], line 2", "\x1b[0;31mAssertionError\x1b[0m: 1 problem found"],
    )
    # a lone pass line before the failure may be the student's: not shown either
    cell = _test_cell(_stdout(PASS + "\n"), error)
    (shown,) = check_report(cell)
    assert (shown.output_type, shown.ename, shown.evalue) == ("error", error.ename, error.evalue)
    assert shown.traceback == ["AssertionError: 1 problem found:\n- answer is 41"]


def test_other_cells_keep_their_outputs():
    student = nbformat.v4.new_code_cell("print('mine')", outputs=[_stdout("mine\n")])
    exported = _export(_notebook(student, _test_cell(_stdout("noise\n" + PASS + "\n"))))
    assert [c.outputs for c in exported.cells] == [[_stdout("mine\n")], [_stdout(PASS + "\n")]]


def _export(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    from nbconvert.exporters import NotebookExporter

    exporter = NotebookExporter()
    exporter.register_preprocessor(WithholdLeakedFeedback)
    exporter.register_preprocessor(KeepCheckReports)
    return nbformat.reads(exporter.from_notebook_node(nb)[0], as_version=4)


# ---- hidden tests, however re-encoded ---------------------------------------------------


def test_normalise_undoes_invisible_characters_entities_and_ansi_codes():
    plain = normalise(SECRET)
    zero_width = "\u200b".join(SECRET).replace("secret", "se\u2060cr\ufeffet\u00ad")
    entities = "".join(f"&#{ord(c)};" for c in SECRET).replace("&", "&amp;").replace("&", "&amp;")
    ansi = "".join(f"\x1b[3{i % 8}m{c}\x1b[0m" for i, c in enumerate(SECRET))
    fullwidth = SECRET.replace("assert", "ａｓｓｅｒｔ").replace(" ", "\n\t  ")
    combining = "\u034f".join(SECRET)
    for encoded in (zero_width, entities, ansi, fullwidth, combining):
        assert normalise(encoded) == plain, encoded[:60]
    assert plain == "assertsecret_answer(7)==42,'thehiddencase'"


def test_text_encoded_over_and_over_counts_as_hiding_something():
    text = "&lt;"
    for _ in range(70):
        text = text.replace("&", "&amp;")
    assert normalise(text) is None
    leaky = _test_cell(nbformat.v4.new_output("display_data", data={"text/html": text}))
    assert find_leaks(_notebook(leaky)) == [
        "cell 1 (test_answer) prints text encoded over and over"
    ]


@pytest.mark.parametrize(
    "output",
    [
        _stdout("\u200b".join(SECRET)),
        nbformat.v4.new_output(
            "display_data", data={"text/html": "".join(f"&#x{ord(c):x};" for c in SECRET)}
        ),
        nbformat.v4.new_output(
            "error", ename="ValueError", evalue="\x1b[31m" + SECRET, traceback=[]
        ),
        nbformat.v4.new_output(  # split by tags in an HTML output
            "display_data",
            data={"text/html": "<b>assert secret_</b>answer(7) == 42, <i>'the hidden case'</i>"},
        ),
        nbformat.v4.new_output(  # in metadata, as a key
            "display_data", data={"text/plain": "x"}, metadata={SECRET: 1}
        ),
    ],
    ids=["zero-width", "entities", "ansi-error", "split-by-tags", "metadata-key"],
)
def test_a_hidden_line_in_any_output_of_any_cell_is_found(output):
    student = nbformat.v4.new_code_cell("leak()", outputs=[output])
    assert find_leaks(_notebook(_test_cell(), student)) == ["cell 2 quotes 1 hidden test line"]


def test_pixels_are_not_read_but_a_flood_of_text_is_withheld():
    plot = nbformat.v4.new_output("display_data", data={"image/png": PNG * 200_000})
    assert find_leaks(_notebook(_test_cell(), nbformat.v4.new_code_cell("", outputs=[plot]))) == []
    flood = _stdout("x" * 10_000_001)
    assert find_leaks(_notebook(_test_cell(flood))) == [
        "cell 1 (test_answer) prints more than 10,000,000 characters"
    ]


def test_public_lines_and_student_made_hidden_regions_are_not_secrets():
    public = _stdout("problems = check(answer)\nassert not problems, report(problems)\n")
    fake = nbformat.v4.new_code_cell(
        "### BEGIN HIDDEN TESTS\nprint('my own words, printed')\n### END HIDDEN TESTS",
        outputs=[_stdout("print('my own words, printed')\n")],
    )
    fake.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "mine"}
    assert find_leaks(_notebook(_test_cell(public), fake)) == []


def test_a_leaking_notebook_becomes_a_notice():
    leak = _stdout(SECRET.replace(" ", "\u200b "))
    shown = _export(_notebook(_test_cell(leak)))
    assert [c.cell_type for c in shown.cells] == ["markdown"]
    assert "Feedback withheld" in shown.cells[0].source and "secret" not in shown.cells[0].source


def _course(tmp_path: Path, student: str, *outputs: nbformat.NotebookNode) -> Path:
    autograded = tmp_path / "autograded" / student / "day00"
    autograded.mkdir(parents=True)
    nbformat.write(_notebook(_test_cell(*outputs)), autograded / "lab.ipynb")
    page = tmp_path / "feedback" / student / "day00" / "lab.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>feedback</html>", encoding="utf-8")
    return page


def test_the_driver_deletes_a_leaking_notebooks_feedback_and_flags_it_first(tmp_path):
    leaky = _course(tmp_path, "mallory", _stdout("&amp;#97;" + SECRET[1:]))
    clean = _course(tmp_path, "ada", _stdout(PASS + "\n"))
    scanned = Result("mallory", GRADED, 1, 1, flags=("cell 3: reads the source of the cell",))
    result = grade.withhold_leaking_feedback("day00", tmp_path, ["lab.ipynb"], scanned)
    assert not leaky.exists() and clean.exists()
    assert result.flags[1:] == scanned.flags
    assert result.flags[0] == (
        "lab.ipynb: no feedback written: cell 1 (test_answer) quotes 1 hidden test line; "
        "review autograded/mallory/day00/lab.ipynb"
    )
    assert "FLAGGED for review (2): lab.ipynb: no feedback written" in format_results([result])
    untouched = Result("ada", GRADED, 1, 1)
    assert grade.withhold_leaking_feedback("day00", tmp_path, ["lab.ipynb"], untouched) is untouched


def test_course_config_withholds_before_anything_removes_outputs():
    config = course_config()
    steps = [getattr(p, "__name__", p) for p in config.GenerateFeedback.preprocessors]
    assert config.GenerateFeedback.exporter_class is FeedbackExporter
    assert steps.index("WithholdLeakedFeedback") < steps.index("KeepCheckReports")
    assert steps.index("KeepCheckReports") < steps.index("ClearHiddenTests")
    assert "SanitiseStudentContent" in steps


# ---- student HTML -----------------------------------------------------------------------

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg"
    "=="
)


@pytest.mark.parametrize(
    ("attack", "left"),
    [
        ("<script>alert(1)</script>ok", "ok"),
        ("<style>.x{display:none}</style>ok", "ok"),
        ('<iframe src="file:///etc/passwd"></iframe>ok', "ok"),
        ('<img src="x" onerror="alert(1)">', "<img>"),
        ('<a href="javascript:alert(1)">ok</a>', '<a rel="noopener noreferrer">ok</a>'),
        ('<div style="position:fixed" class="panel-heading" id="top">ok</div>', "<div>ok</div>"),
        ('<img src="../../etc/passwd">', "<img>"),
        ('<img src="https://tracker.example/pixel.png?who=you">', "<img>"),
        ('<a href="data:text/html,<script>alert(1)</script>">ok</a>', "<a "),
        ("<svg onload=alert(1)><circle/></svg>ok", "ok"),
        ("ok<!-- the rest of the page", "ok"),
    ],
)
def test_clean_html_removes_what_runs_loads_or_restyles(attack, left):
    cleaned = clean_html(attack)
    assert cleaned.startswith(left), cleaned
    for word in (
        "script",
        "style",
        "iframe",
        "onerror",
        "javascript",
        "passwd",
        "data:",
        "<!--",
        "http",
    ):
        assert word not in cleaned.replace("noopener", ""), cleaned


def test_clean_html_keeps_markup_links_and_inline_images():
    kept = (
        '<h2>Notes</h2><p><b>bold</b> <a href="https://pytorch.org" rel="noopener noreferrer">'
        f'docs</a></p><img src="data:image/png;base64,{PNG}" alt="a plot">'
    )
    assert clean_html(kept) == kept


def test_student_outputs_raw_cells_and_metadata_are_reduced_to_what_renders_safely():
    outputs = [
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"}),
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": "<b onclick='x()'>hi</b>", "text/plain": "hi"},
            metadata={"text/html": {"isolated": True}},
        ),
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": PNG},
            metadata={"image/png": {"width": "1 onerror=alert(1)", "height": 20}, "filenames": {}},
        ),
        nbformat.v4.new_output("display_data", data={"image/png": 'x" onerror="alert(1)'}),
    ]
    code = nbformat.v4.new_code_cell("show()", outputs=outputs, metadata={"tags": ["x y"]})
    raw = nbformat.v4.new_raw_cell("<script>alert(1)</script><p>raw</p>")
    nb = _notebook(code, raw)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb, _ = SanitiseStudentContent().preprocess(nb, {})
    assert [o.get("data") for o in nb.cells[0].outputs] == [
        {"text/html": "<b>hi</b>", "text/plain": "hi"},
        {"image/png": PNG},
    ]
    assert [o.metadata for o in nb.cells[0].outputs] == [{}, {"image/png": {"height": 20}}]
    assert nb.cells[0].metadata == {} and "widgets" not in nb.metadata
    assert nb.cells[1].source == "<p>raw</p>"


# ---- the page ---------------------------------------------------------------------------

PAGE = (
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8"/>\n<title>lab</title>\n'
    "<style>body { margin: 0 }</style>\n</head>\n<body>\n<p>notebook</p>"
    "<style>header { display: none }</style>\n</body>\n</html>"
)


def _sha256(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def test_the_sealed_page_allows_only_the_graders_styles_and_opens_with_its_score():
    page = seal_page(PAGE, {"notebook": "lab", "score": 5.0, "max_score": 7.0})
    policy = re.search(r'<head><meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy is not None, page[:300]
    head_styles = re.findall(r"<style>(.*?)</style>", page.split("<body>")[0])
    assert len(head_styles) == 2  # the template's and the header's
    assert policy[1] == (
        "default-src 'none'; img-src data:; "
        f"style-src {' '.join(_sha256(css) for css in head_styles)}; "
        "base-uri 'none'; form-action 'none'"
    )
    assert _sha256("header { display: none }") not in page  # a style in the body never applies
    header = page.split("<body>")[1].split("</header>")[0]
    assert header.startswith('<header class="labkit-grade">')
    assert '<p class="labkit-score">Score: 5 / 7</p>' in header


def test_the_header_escapes_what_it_shows_and_says_when_no_score_was_recorded():
    page = seal_page(PAGE, {"notebook": "<b>lab</b>", "late_penalty": 1.5})
    assert "&lt;b&gt;lab&lt;/b&gt;" in page and "<b>lab</b>" not in page
    assert "Score: not recorded / not recorded (after a late penalty of 1.5)" in page


def test_a_page_without_head_or_body_is_refused():
    with pytest.raises(ValueError, match="template changed"):
        seal_page("<html><body>no head</body></html>", {})


def test_the_exporter_cleans_markdown_and_seals_the_page():
    markdown = nbformat.v4.new_markdown_cell(
        "# Notes\n<script>document.title = 'PWNED'</script><style>p {}</style>"
        '<img src=x onerror="alert(1)">\n\n$a^2$ and [docs](https://pytorch.org)'
    )
    page, _ = FeedbackExporter(template_name="classic").from_notebook_node(
        _notebook(markdown), {"nbgrader": {"notebook": "lab", "score": 1, "max_score": 2}}
    )
    body = page.split("<body")[1]
    assert "PWNED" not in page and "onerror" not in page and "<style>p" not in page
    assert "<h1>Notes</h1>" in body and '<a href="https://pytorch.org"' in body
    assert "$a^2$" in body  # TeX stays as source: MathJax is a script, and none runs
    assert '<p class="labkit-score">Score: 1 / 2</p>' in body
    assert page.index("Content-Security-Policy") < page.index("<style")
