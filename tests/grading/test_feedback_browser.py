"""Feedback pages opened as their readers open them: a file in headless Chromium (Debian's
``chromium``, driven by Playwright, as in ``test_browser.py``).

The corpus entries that put a script, a ``file:`` iframe, a style faking the score or
``onerror`` handlers into a notebook (``BROWSER`` in ``tests/grading/hostile/feedback.py``)
are graded by the driver; each page is then loaded and must have run no script (the
attacks set ``document.title`` and a global), loaded no frame and nothing from
``/etc``, and show the grader's header, uncovered, with the gradebook's score. A
screenshot of each is saved in pytest's tmp folder (and ``$LABKIT_ARTIFACTS`` when set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.grading.course import generate_release, make_course_root
from autograder.grading.grade import GRADED, grade_assignment
from tests.grading.hostile import ASSIGNMENT, CORPUS, NOTEBOOK, PROBE, load_lab, write_corpus
from tests.grading.hostile.feedback import BROWSER, PWNED_GLOBAL, PWNED_TITLE

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium; scripts/setup.sh does it)",
    ),
]


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """Entry name -> (its feedback page, its score in the gradebook)."""
    root = make_course_root(tmp_path_factory.mktemp("feedback"), [ASSIGNMENT], source=PROBE)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LABKIT_CELL_TIMEOUT", "12")
        generate_release(ASSIGNMENT, root)
        write_corpus(load_lab(root, port=9), [e for e in CORPUS if e.name in BROWSER])
        results = grade_assignment(ASSIGNMENT, root, timeout=60)
    assert {r.student: r.status for r in results} == dict.fromkeys(BROWSER, GRADED), results
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {name: gradebook.find_submission(ASSIGNMENT, name).score for name in BROWSER}
    page = Path(NOTEBOOK).with_suffix(".html")
    return {name: (root / "feedback" / name / ASSIGNMENT / page, scores[name]) for name in BROWSER}


@pytest.mark.parametrize("name", BROWSER)
def test_feedback_page_runs_nothing_loads_nothing_and_shows_the_true_score(pages, name, tmp_path):
    path, score = pages[name]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(500)  # a handler on an image that failed to load, say

            assert page.evaluate(f"typeof window.{PWNED_GLOBAL}") == "undefined"
            assert page.title() != PWNED_TITLE
            assert len(page.frames) == 1  # no iframe, object or embed came to life
            assert page.locator("iframe, object, embed, frame").count() == 0
            assert not [url for url in requested if "/etc/" in url]

            header = page.locator("body > header.labkit-grade")
            playwright.expect(header).to_be_visible()
            playwright.expect(header).to_contain_text(f"Score: {score:g} / 7")
            # nothing covers it: the element at its centre is the header or inside it
            assert header.evaluate(
                """h => { const r = h.getBoundingClientRect();
                          return h.contains(document.elementFromPoint(
                              r.left + r.width / 2, r.top + r.height / 2)); }"""
            )
            if score < 7:  # the failing test's report is on the page, visible
                playwright.expect(page.locator(".output_error").first).to_be_visible()
            shot = tmp_path / f"{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            artifacts = os.environ.get("LABKIT_ARTIFACTS")
            if artifacts:
                Path(artifacts).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(artifacts) / shot.name)
        finally:
            browser.close()
