"""Feedback pages that cannot harm whoever opens them.

A feedback page is HTML built from the student's notebook: a ``<script>``, an
``<iframe src="file:...">``, a ``<style>`` or an ``onerror=`` in a markdown cell or an
output would run in the browser of the student, the TA or the instructor who opens it
(a style once hid a failing test and showed a fake "Score: 7 / 7"). So:

* ``clean_html``: every piece of student HTML (markdown cells as rendered, ``text/html``
  and ``text/markdown`` outputs, raw cells) goes through nh3 (the Ammonia sanitiser):
  no script, style, iframe, form or event handler, no ``class``, ``id`` or ``style``
  attribute, links to http(s) and mailto only, images only inline (``data:image/...``);
* ``SanitiseStudentContent``: outputs keep only the types the page shows safely
  (JavaScript and widgets are dropped, SVG is shown as an ``<img>``, where it cannot
  run), and metadata the template copies into attributes is dropped;
* ``FeedbackExporter``: the page gets a Content-Security-Policy that lets no script,
  frame or remote resource load and only the grader's own stylesheets apply, and a
  header the grader writes from the gradebook: the real score, which nothing below it
  can restyle or cover. Math is shown as TeX source (MathJax is a script).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Mapping

import nh3
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import from_dict
from traitlets import Bool

__all__ = ["CSP", "FeedbackExporter", "SanitiseStudentContent", "clean_html", "seal_page"]

# Output types the page renders without running anything; the rest is dropped.
_SAFE_MIMETYPES = frozenset(
    {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg"}
    | {"image/svg+xml"}  # rendered as <img src="data:image/svg+xml;base64,...">
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)
CSP = "default-src 'none'; img-src data:; style-src {styles}; base-uri 'none'; form-action 'none'"
_HEADER_CSS = (
    "body > header.labkit-grade { margin: 1em auto; max-width: 1140px; padding: 0.8em 1em;"
    " border: 3px solid #1f4e79; background: #eef4fb; color: #000; font: 16px sans-serif; }"
    " body > header.labkit-grade p { margin: 0.3em 0; }"
    " body > header.labkit-grade .labkit-score { font-size: 22px; font-weight: bold; }"
)


def _url_allowed(element: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: an image only inline (a remote one would tell a server
    who opened the page), and ``data:`` URLs only as such images."""
    if element == "img" and attribute == "src":
        return value if _INLINE_IMAGE.fullmatch(value.strip()) else None
    if attribute in {"src", "href", "cite"} and value.strip().lower().startswith("data:"):
        return None
    return value


def clean_html(fragment: str) -> str:
    """``fragment`` with everything that could run, load, restyle or escape its place
    removed. Sanitised on its own, an unclosed tag or comment cannot swallow the page
    after it."""
    return nh3.clean(
        fragment,
        url_schemes={"http", "https", "mailto", "data"},
        attribute_filter=_url_allowed,
        url_relative="deny",  # a relative src would load the viewer's own files
    )


def _dimensions(metadata: object) -> dict:
    """Only integer width and height survive: the template writes them into the tag
    unquoted, where anything else becomes an attribute of its own."""
    if not isinstance(metadata, Mapping):
        return {}
    kept = {}
    for mime, value in metadata.items():
        if mime.startswith("image/") and isinstance(value, Mapping):
            sizes = {k: v for k, v in value.items() if k in ("width", "height")}
            sizes = {k: v for k, v in sizes.items() if isinstance(v, int)}
            if sizes:
                kept[mime] = sizes
    return kept


def _safe_data(data: Mapping) -> dict:
    kept = {}
    for mime, value in data.items():
        if mime not in _SAFE_MIMETYPES or not isinstance(value, str):
            continue
        if mime == "text/html":
            value = clean_html(value)
        if mime in ("image/png", "image/jpeg") and not _BASE64.fullmatch(value):
            continue
        kept[mime] = value
    return kept


class SanitiseStudentContent(Preprocessor):
    """Student outputs, raw cells and metadata reduced to what renders safely (markdown
    is cleaned when rendered, by ``FeedbackExporter``)."""

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)  # widget state: scripts the page would load
        for cell in nb.cells:
            # tags become class names; "nbgrader" holds the grades the template shows
            cell.metadata = from_dict({k: v for k, v in cell.metadata.items() if k == "nbgrader"})
            if cell.cell_type == "raw":
                cell.source = clean_html(cell.source)
            outputs = []
            for output in cell.get("outputs", []):
                if "data" in output:
                    output["data"] = from_dict(_safe_data(output["data"]))
                    if not output["data"]:
                        continue
                if "metadata" in output:
                    output["metadata"] = from_dict(_dimensions(output["metadata"]))
                outputs.append(output)
            if cell.cell_type == "code":
                cell.outputs = outputs
        return nb, resources


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "not recorded"


def seal_page(page: str, grades: Mapping) -> str:
    """``page`` with the grader's header first in its body and a Content-Security-Policy
    first in its head that allows only the stylesheets already in the head (the
    template's and the header's), by hash. ``grades``: nbgrader's ``resources["nbgrader"]``
    (notebook, score, max_score, late_penalty), read from the gradebook."""
    score = f"Score: {_number(grades.get('score'))} / {_number(grades.get('max_score'))}"
    penalty = grades.get("late_penalty") or 0
    late = f" (after a late penalty of {_number(penalty)})" if penalty else ""
    header = (
        '<header class="labkit-grade">'
        f"<p>Feedback on <b>{html.escape(str(grades.get('notebook', 'this notebook')))}</b></p>"
        f'<p class="labkit-score">{html.escape(score + late)}</p>'
        "<p>Written by the grader from the gradebook. Everything below is the notebook as "
        "it was graded: nothing in it can change this score.</p></header>"
    )
    head, head_end = re.search(r"<head[^>]*>", page), page.find("</head>")
    body = re.search(r"<body[^>]*>", page)
    if head is None or body is None or not head.end() <= head_end < body.start():
        raise ValueError("feedback page without <head>...</head> before <body>: template changed?")
    page = page[: body.end()] + header + page[body.end() :]
    page = f"{page[:head_end]}<style>{_HEADER_CSS}</style>{page[head_end:]}"
    body = re.search(r"<body[^>]*>", page)
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
        for css in _STYLE.findall(page[: body.start()])
    ]
    policy = CSP.format(styles=" ".join(hashes) or "'none'")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    return page[: head.end()] + meta + page[head.end() :]


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback page with markdown sanitised as rendered, sealed by
    ``seal_page`` (``GenerateFeedback.exporter_class`` in ``nbgrader_config.py``)."""

    # a heading's "¶" link points at its id, which sanitising removes
    exclude_anchor_links = Bool(True).tag(config=True)

    @pass_context
    def markdown2html(self, context, source):
        """Markdown cells and outputs render to HTML, then are cleaned: raw HTML in
        markdown passes through the renderer untouched."""
        return clean_html(HTMLExporter.markdown2html(self, context, source))

    def _init_resources(self, resources):
        resources = super()._init_resources(resources)
        resources["should_not_encode_svg"] = False  # SVG inline could run its scripts
        return resources

    def from_notebook_node(self, nb, resources=None, **kw):
        page, resources = super().from_notebook_node(nb, resources, **kw)
        return seal_page(page, resources.get("nbgrader", {})), resources
