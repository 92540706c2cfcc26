"""The Korean notebooks: the English ones with their catalog's translations put in.

``notebooks/ko/<assignment>/<name>.ipynb`` is written from ``notebooks/<assignment>/``
(nbgrader's release) and ``translations/ko/<assignment>.po``, so it has the English
release's cells, cell ids and nbgrader metadata (grade ids, points, locked cells,
checksums) and differs only in text: markdown cells, strings the code prints, and the
Colab badge, which opens the Korean notebook. It keeps the English file name, so that a
submission from either edition is collected and graded as the same notebook of the
same assignment. Two more things make it the Korean edition: the notebook metadata
``{"labkit": {"language": "ko"}}`` (the grading driver reads it), and one cell after
the setup cell, ``set_language("ko")``, which makes the kit and the checks speak Korean.
The same function turns a solution notebook into its Korean twin (for nbval).
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import polib
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

from autograder.grading.course import REPO_ROOT, find_leaks, notebook_names
from autograder.translation.catalog import LANGUAGE, lab_catalog_path, read_catalog, translation_of
from labkit.i18n import fill_template

__all__ = [
    "LANGUAGE_CELL_ID",
    "RestoreEditionText",
    "edition_path",
    "edition_release",
    "translate_code",
    "translate_notebook",
    "write_edition",
]

LANGUAGE_CELL_ID = "labkit-language"
_LANGUAGE_CELL = {
    "ko": (
        "# 한국어판: 안내, 검사 메시지, 학습 출력과 그래프가 한국어로 나옵니다.\n"
        "from labkit.i18n import set_language\n"
        "\n"
        'set_language("ko")'
    ),
}


def edition_path(assignment: str, name: str, root: Path = REPO_ROOT, language: str = LANGUAGE):
    return root / "notebooks" / language / assignment / name


def translate_code(source: str, strings: dict[str, str]) -> str:
    for english, korean in strings.items():
        for quote in ('"', "'"):
            if quote in korean:
                continue  # would end the literal: keep the English
            source = source.replace(f"{quote}{english}{quote}", f"{quote}{korean}{quote}")
    return source


def _translate_outputs(cell: NotebookNode, strings: dict[str, str]) -> None:
    """A stored output that nbval compares (``nbval-check-output``) printed as the Korean
    code prints it: each line made by one of the notebook's translated print templates."""
    pairs = sorted(strings.items(), key=lambda pair: -len(pair[0]))
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and pairs:
            lines = output.text.split("\n")
            output.text = "\n".join(
                line if (filled := fill_template(line, pairs)) is None else filled for line in lines
            )


def translate_notebook(
    nb: NotebookNode, assignment: str, name: str, po, language: str = LANGUAGE
) -> NotebookNode:
    """``nb`` (a lab's release or source notebook) in ``language``, from catalog ``po``."""
    found = translation_of(po)
    out = copy.deepcopy(nb)
    english_badge = f"notebooks/{assignment}/{name}"
    korean_badge = f"notebooks/{language}/{assignment}/{name}"
    # a stored output may come from a function another cell defines: any printed string
    code = {f"{name}#{c.get('id')}" for c in nb.cells if c.cell_type == "code"}
    printed = {msgid: text for (ctx, msgid), text in found.items() if ctx in code}
    for cell in out.cells:
        context = f"{name}#{cell.get('id')}"
        if cell.cell_type == "markdown":
            cell.source = found.get((context, cell.source), cell.source)
            cell.source = cell.source.replace(english_badge, korean_badge)
        elif cell.cell_type == "code":
            strings = {msgid: text for (ctx, msgid), text in found.items() if ctx == context}
            cell.source = translate_code(cell.source, strings)
            _translate_outputs(cell, printed)
    setup = next(
        (i for i, c in enumerate(out.cells) if c.cell_type == "code"),
        -1,
    )
    first = out.cells[setup] if setup >= 0 else None
    is_setup = first is not None and first.metadata.get("nbgrader", {}).get("locked")
    language_cell = nbformat.v4.new_code_cell(_LANGUAGE_CELL[language], id=LANGUAGE_CELL_ID)
    out.cells.insert(setup + 1 if is_setup else max(setup, 0), language_cell)
    out.metadata["labkit"] = {"language": language}
    return out


def write_edition(assignment: str, root: Path = REPO_ROOT, language: str = LANGUAGE) -> list[Path]:
    """Write ``notebooks/<language>/<assignment>/`` from the release in ``root`` and the
    lab's catalog; refuse one that leaks solution text. Returns the notebooks written."""
    po = read_catalog(lab_catalog_path(assignment, root, language))
    written = []
    for name in notebook_names(assignment, root):
        release = nbformat.read(root / "notebooks" / assignment / name, as_version=4)
        translated = translate_notebook(release, assignment, name, po, language)
        path = edition_path(assignment, name, root, language)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(translated, path)
        leaks = find_leaks(root / "solutions" / assignment / name, path)
        if leaks:
            raise RuntimeError(f"{path} leaks solution text:\n" + "\n".join(leaks))
        written.append(path)
    return written


def edition_release(
    release: NotebookNode, assignment: str, name: str, language: str = LANGUAGE
) -> NotebookNode:
    """The ``language`` edition of ``release`` as ``write_edition`` writes it, from the
    kit's catalog (what a submission of that edition started from)."""
    path = lab_catalog_path(assignment, REPO_ROOT, language)
    po = read_catalog(path) if path.exists() else polib.POFile()
    return translate_notebook(release, assignment, name, po, language)


class RestoreEditionText(Preprocessor):
    """Locked cells in the submission's own language again, after nbgrader's
    ``OverwriteCells`` put back their source from the gradebook, which holds the English
    release: the strings those cells print (a test cell's ✔ line) come from the lab's
    catalog, as in the edition the student was given. Only string literals that the
    catalog lists for that cell change; the code the checks run, hidden tests included,
    is the gradebook's. English submissions are left as they are."""

    # nbconvert's preprocessors are off unless enabled: registered by class in a list of
    # preprocessors, this one would silently do nothing.
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        from autograder.grading.preflight import edition_language  # it imports this module

        language = edition_language(nb)
        about = resources.get("nbgrader", {})
        assignment, notebook = about.get("assignment"), about.get("notebook")
        if language == "en" or not assignment or not notebook:
            return nb, resources
        path = lab_catalog_path(assignment, REPO_ROOT, language)
        if not path.exists():
            return nb, resources
        found = translation_of(read_catalog(path))
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("locked"):
                context = f"{notebook}.ipynb#{cell.get('id')}"
                strings = {msgid: text for (ctx, msgid), text in found.items() if ctx == context}
                cell.source = translate_code(cell.source, strings)
        return nb, resources
