"""The formgrader's *Autograde* button grades through the kit's driver, in headless
Chromium (Debian's ``chromium``, driven by Playwright, as in ``test_browser.py``).

Two hostile submissions of the probe lab, one the kit's command grades but flags for
review (an input transformer drops the hidden tests) and one it reports ``crashed`` (the
kernel killed with ``os._exit``), are graded first with ``python -m autograder grade`` in
a copy of the course. Then the instructor presses *Autograde* for each in nbgrader's
formgrader (JupyterLab serving the course) and must see what the command reported: its
row (status, score, flags) in the dialog, the same score in the submissions table, and
the same status in the course's grades file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from autograder.grading.course import REPO_ROOT, generate_release, make_course_root
from autograder.grading.grade import CRASHED, GRADED, Result, format_results, read_results
from tests.grading.hostile import ASSIGNMENT, CORPUS, PROBE, load_lab, write_corpus

# (Playwright missing: importing test_browser skips this module too)
from tests.grading.test_browser import BROWSER_MARKS, CHROMIUM, jupyterlab_server, playwright

FLAGGED = "tamper-transformer-hidden"  # graded, flagged for review
CRASHES = "exec-os-exit"  # crashed: nothing autograded
TIMEOUT_MS = 180_000

pytestmark = BROWSER_MARKS


def _row_line(result: Result) -> str:
    """The student's line of the kit's table, spaces collapsed."""
    return " ".join(format_results([result]).splitlines()[2].split())


def test_formgrader_autograde_shows_what_the_kits_command_reports(tmp_path):
    root = make_course_root(tmp_path / "course", [ASSIGNMENT], source=PROBE)
    generate_release(ASSIGNMENT, root)
    write_corpus(load_lab(root, port=9), [e for e in CORPUS if e.name in (FLAGGED, CRASHES)])
    reference = tmp_path / "reference"
    shutil.copytree(root, reference)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--root", str(reference)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    kit = read_results(ASSIGNMENT, reference)
    assert kit[FLAGGED].status == GRADED and kit[FLAGGED].flags, kit
    assert kit[FLAGGED].score == kit[FLAGGED].max_score, kit  # what plain nbgrader would give
    assert kit[CRASHES].status == CRASHED, kit

    expect = playwright.expect
    expect.set_options(timeout=TIMEOUT_MS)
    with (
        jupyterlab_server(root, tmp_path / "jupyter-state", env) as (base, token),
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            # the token on every request: the formgrader's page asks its API by script
            headers = {"Authorization": f"token {token}"}
            page = browser.new_page(
                viewport={"width": 1400, "height": 1000}, extra_http_headers=headers
            )
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/formgrader/manage_submissions/{ASSIGNMENT}")
            for student, title in ((FLAGGED, "Success"), (CRASHES, "Error")):
                row = page.locator("tr").filter(has=page.locator(".student-id", has_text=student))
                expect(row.locator(".status")).to_have_text("needs autograding")
                row.locator(".autograde a").click()
                dialog = page.locator(".modal-dialog").filter(has_text=student)
                expect(dialog).to_be_visible()
                expect(dialog.locator(".modal-title")).to_have_text(title)
                shown = " ".join(dialog.inner_text().split())
                assert _row_line(kit[student]) in shown, shown
                page.screenshot(path=str(tmp_path / f"formgrader-{student}.png"))
                dialog.locator(".modal-footer button").click()
                expect(dialog).to_be_hidden()
                if student == FLAGGED:
                    score = f"{kit[student].score:g} / {kit[student].max_score:g}"
                    expect(row.locator(".score")).to_have_text(score)
                else:
                    expect(row.locator(".status")).to_have_text("needs autograding")
        finally:
            browser.close()

    served = read_results(ASSIGNMENT, root)
    for student in (FLAGGED, CRASHES):
        same = ("status", "score", "max_score", "flags")
        assert [getattr(served[student], f) for f in same] == [
            getattr(kit[student], f) for f in same
        ]
