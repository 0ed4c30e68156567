"""Student-made HTML and JavaScript never reaches a page as active content (issue 10, finding 4).

formgrader renders the autograded notebook on the instructor's Jupyter origin, and the feedback page is that
notebook rendered again; nbgrader's templates put a cell's `text/html`, `application/javascript` output and
its markdown's raw HTML into the page verbatim. `SanitizeStudentContent` rewrites the notebook before either
sees it, so the autograded file itself is safe wherever it is opened:

- outputs keep an allow-list of MIME types: plain text, PNG, JPEG, LaTeX (escaped by the templates, typeset by
  MathJax with its `Safe` extension), and HTML or markdown cleaned by nh3 (the Ammonia sanitizer). Everything
  else (JavaScript, SVG, widgets, Mermaid, any vendor type) is dropped with a note saying what was;
- output metadata keeps only an image's numeric width and height, its background hints and its alt text:
  the templates print width and height into unquoted attributes, and `isolated` HTML becomes an iframe;
- markdown and raw cells that are not the release's own text are rendered by nbconvert's markdown renderer
  and cleaned by nh3; attachments survive only as PNG, JPEG or GIF images inlined by that renderer;
- cell and notebook metadata keep an allow-list (nbgrader's, tags, the kernelspec nbgrader restored): no
  widget state, `title`, `trusted` marks or hidden-source flags;
- the student's id and names, which formgrader's template prints unescaped, are escaped.

nh3 keeps only its default safe tags and attributes: no `<script>`, `<style>`, `<iframe>`, `<form>`,
`<meta>`, `<base>`, `<svg>`, no `on*` handlers, `style`, `id`, `name` or `class`; links only to http, https,
mailto or a `#fragment` of the page (never `javascript:`, `data:` or a file next to the notebook); images
only as `data:image/png|jpeg|gif`.
"""

from __future__ import annotations

import html
import json
import math
import mimetypes
import re
from pathlib import Path
from typing import Any

import nbformat
import nh3
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["ACTIVE_FILE_PATTERNS", "SanitizeStudentContent", "clean_html", "markdown_to_safe_html"]

# Rendered by the templates without any markup of the student's: text is escaped, images are base64 in a
# data: URL the template writes itself.
KEPT_AS_IS = frozenset({"text/plain", "image/png", "image/jpeg", "text/latex"})
IMAGE_METADATA = ("image/png", "image/jpeg")
CELL_METADATA = frozenset({"nbgrader", "tags", "editable", "deletable"})
# The judge's hint ids (coursekit/steps/judge.py), kept on test cells only, as short dotted names.
HINTS_KEY = "coursekit"
HINT_ID = re.compile(r"[a-z0-9_]{1,40}\.[a-z0-9_]{1,60}")
# kernelspec is restored from the gradebook by nbgrader's OverwriteKernelspec; language_info is reduced to its
# name below; coursekit-rejected is intake's own note (coursekit/engine/intake.py).
NOTEBOOK_METADATA = frozenset({"kernelspec", "language_info", "coursekit-rejected"})
DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
# One HTML block in every markdown renderer (CommonMark's type 6 ends only at a blank line, and the whole
# block is on one line), so its text is never parsed as markdown again.
WRAP_OPEN = '<div class="coursekit-student-markdown">'
WRAP_CLOSE = "</div>"


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src":
        # An image reaches nothing but its own bytes: no request to the instructor's server or elsewhere.
        return value if tag == "img" and DATA_IMAGE.fullmatch(value.strip()) else None
    # Browsers drop ASCII whitespace and controls inside a URL (`da&#9;ta:` is `data:`), and so does nh3's
    # own scheme check after this filter: compare the URL as they read it.
    if attribute in ("href", "cite") and re.sub(r"[\x00-\x20]", "", value).lower().startswith("data:"):
        return None
    return value


def _relative_url(url: str) -> str | None:
    # A link relative to the page would reach the files formgrader serves next to the notebook, the student's
    # own among them; only a link within the page stays.
    return url if url.startswith("#") else None


def clean_html(html: str) -> str:
    """`html` with only nh3's default safe tags and attributes, links and images restricted as above."""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "data"},
        attribute_filter=_attribute_filter,
        url_relative=_relative_url,
        strip_comments=True,
    )


def markdown_to_safe_html(source: str, attachments: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown rendered as nbconvert renders it, cleaned, on one line wrapped in a div (see WRAP_OPEN)."""
    stripped = source.strip()
    if stripped.startswith(WRAP_OPEN) and stripped.endswith(WRAP_CLOSE) and "\n" not in stripped:
        # Already the output of this function (feedback runs it again on the autograded notebook): clean the
        # HTML inside again rather than wrap it twice.
        html = stripped[len(WRAP_OPEN) : -len(WRAP_CLOSE)]
    else:
        renderer = IPythonRenderer(escape=False, attachments=_image_attachments(attachments or {}),
                                   embed_images=False, exclude_anchor_links=True)
        html = MarkdownWithMath(renderer=renderer).render(source)
    # Inside <pre> the entity is the newline it stands for; elsewhere a newline is whitespace anyway.
    return WRAP_OPEN + clean_html(html).replace("\r", "").replace("\n", "&#10;") + WRAP_CLOSE


class _Attachments(dict):
    """Image attachments; any other name, present or not, is an empty PNG rather than nbconvert's error."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> dict[str, str]:
        return {"image/png": ""}


def _image_attachments(attachments: dict[str, Any]) -> dict[str, dict[str, str]]:
    images = _Attachments()
    for name, bundle in attachments.items():
        if isinstance(bundle, dict):
            kept = {mime: data for mime, data in bundle.items()
                    if mime in ("image/png", "image/jpeg", "image/gif") and isinstance(data, str)}
            if kept:
                images[str(name)] = kept
    return images


def _image_metadata(metadata: Any) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    if not isinstance(metadata, dict):
        return kept
    for key in ("width", "height"):
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            kept[key] = int(value)
    if metadata.get("unconfined") is True:
        kept["unconfined"] = True
    if metadata.get("needs_background") in ("light", "dark"):
        kept["needs_background"] = metadata["needs_background"]
    # The templates escape it inside a quoted attribute: a figure's text alternative, kept (bounded).
    if isinstance(metadata.get("alt"), str):
        kept["alt"] = metadata["alt"][:1000]
    return kept


def _sanitize_output(output: NotebookNode) -> NotebookNode | None:
    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stderr" if output.get("name") == "stderr" else "stdout",
                                      text=str(output.get("text", "")))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=str(output.get("ename", "")),
                                      evalue=str(output.get("evalue", "")),
                                      traceback=[str(line) for line in output.get("traceback", [])])
    if kind not in ("display_data", "execute_result"):
        return None
    data: dict[str, Any] = {}
    dropped = []
    for mime, value in dict(output.get("data", {})).items():
        text = "".join(value) if isinstance(value, list) else value
        if mime in KEPT_AS_IS and isinstance(text, str):
            data[mime] = text
        elif mime == "text/html" and isinstance(text, str):
            data[mime] = clean_html(text)
        elif mime == "text/markdown" and isinstance(text, str):
            data["text/html"] = markdown_to_safe_html(text)
        else:
            dropped.append(mime)
    if dropped and "text/plain" not in data:
        data["text/plain"] = f"[output of type {', '.join(sorted(dropped))} not shown: it could run code]"
    metadata = {mime: meta for mime in IMAGE_METADATA if mime in data
                and (meta := _image_metadata(output.get("metadata", {}).get(mime)))}
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, metadata=metadata,
                                      execution_count=_count(output.get("execution_count")))
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata)


def _count(value: Any) -> int | None:
    # The kernel reports execution counts, and the templates print them raw into the `In [ ]:` prompt.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _hints(cell: NotebookNode) -> dict[str, list[str]] | None:
    """The judge's hint ids on a test cell (coursekit/steps/judge.py, HINTS_KEY), if well formed; else none."""
    recorded = cell.get("metadata", {}).get(HINTS_KEY)
    meta = cell.get("metadata", {}).get("nbgrader")
    test_cell = cell.cell_type == "code" and isinstance(meta, dict) and meta.get("grade") and not meta.get("solution")
    if not test_cell or not isinstance(recorded, dict) or not isinstance(recorded.get("hints"), list):
        return None
    hints = recorded["hints"]
    if len(hints) > 10 or not all(isinstance(h, str) and HINT_ID.fullmatch(h) for h in hints):
        return None
    return {"hints": list(hints)}


def _cell_metadata(metadata: Any) -> dict[str, Any]:
    kept = {key: value for key, value in dict(metadata).items() if key in CELL_METADATA}
    if "tags" in kept:
        kept["tags"] = [tag for tag in kept["tags"] if isinstance(tag, str) and re.fullmatch(r"[\w.-]+", tag)] \
            if isinstance(kept["tags"], list) else []
    for flag in ("editable", "deletable"):
        if flag in kept and not isinstance(kept[flag], bool):
            del kept[flag]
    return kept


class SanitizeStudentContent(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    """Neutralise active content in a student's notebook: outputs, markdown, raw cells and metadata.

    Runs in autograding after the judge (which reads its own observation bundles first), and in every
    HTMLExporter: formgrader's page and the feedback. Markdown and raw cells identical to one of the
    release's are the instructor's and stay as they are.
    """

    release_root = Unicode("", help="the course's release folder, for the instructor's own markdown").tag(
        config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        # autograde and feedback pass nbgrader's resources; formgrader's page passes its own names.
        info = resources.get("nbgrader") or {"assignment": resources.get("assignment_id"),
                                             "notebook": resources.get("notebook_id")}
        instructor = self._release_text_cells(info)
        for cell in nb.cells:
            self._sanitize_cell(cell, instructor)
        nb.metadata = nbformat.from_dict(self._notebook_metadata(nb.metadata))
        # formgrader's template prints the student's id and names, and a path made of the id, unescaped (the
        # path inside an attribute); an id may hold `<`, `>` and quotes. The escaped path reads back the same.
        for key in ("student", "first_name", "last_name", "notebook_path"):
            if isinstance(resources.get(key), str):
                resources[key] = html.escape(resources[key], quote=True)
        return nb, resources

    def _sanitize_cell(self, cell: NotebookNode, instructor: dict[tuple[str, str], NotebookNode]) -> None:
        hints = _hints(cell)
        cell.metadata = nbformat.from_dict(_cell_metadata(cell.get("metadata", {})))
        if hints is not None:
            cell.metadata[HINTS_KEY] = hints
        if cell.cell_type == "code":
            cell.outputs = [clean for output in cell.get("outputs", []) if (clean := _sanitize_output(output))]
            cell.execution_count = _count(cell.get("execution_count"))
            return
        original = instructor.get((cell.cell_type, cell.source))
        if original is not None:
            if "attachments" in original:
                cell.attachments = original.attachments
            else:
                cell.pop("attachments", None)
            return
        if cell.cell_type == "markdown":
            cell.source = markdown_to_safe_html(cell.source, cell.get("attachments"))
        else:
            cell.source = clean_html(cell.source)
        cell.pop("attachments", None)

    def _release_text_cells(self, info: dict[str, Any]) -> dict[tuple[str, str], NotebookNode]:
        if not self.release_root or not info.get("assignment") or not info.get("notebook"):
            return {}
        path = Path(self.release_root) / info["assignment"] / f"{info['notebook']}.ipynb"
        try:
            release = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            self.log.warning("No release notebook at %s: every markdown cell is treated as the student's", path)
            return {}
        return {(c.cell_type, c.source): c for c in release.cells if c.cell_type in ("markdown", "raw")}

    @staticmethod
    def _notebook_metadata(metadata: Any) -> dict[str, Any]:
        kept = {key: value for key, value in dict(metadata).items() if key in NOTEBOOK_METADATA}
        info = kept.get("language_info")
        name = info.get("name") if isinstance(info, dict) else None
        if isinstance(name, str) and re.fullmatch(r"[\w.+-]+", name):
            kept["language_info"] = {"name": name}
        else:
            kept.pop("language_info", None)
        if "coursekit-rejected" in kept:
            kept["coursekit-rejected"] = str(kept["coursekit-rejected"])
        kernelspec = kept.get("kernelspec")
        if isinstance(kernelspec, dict):
            kept["kernelspec"] = json.loads(json.dumps({k: str(v) for k, v in kernelspec.items()}))
        else:
            kept.pop("kernelspec", None)
        return kept


def _active_extensions() -> list[str]:
    """Extensions a browser would render as a page that can run script, by the system's MIME map."""
    types = mimetypes.MimeTypes()
    for path in mimetypes.knownfiles:
        if Path(path).is_file():
            types.read(path)
    active = set()
    for extension, mime in {**types.types_map[True], **types.types_map[False]}.items():
        if mime in ("text/html", "message/rfc822", "application/pdf", "application/javascript", "text/javascript") \
                or mime.endswith(("/xml", "+xml")):
            active.add(extension.lower())
    return sorted(active)


def _any_case(extension: str) -> str:
    # nbgrader matches these with glob, case-sensitively: `*.[hH][tT][mM][lL]`.
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else ch for ch in extension)


# Files a submission may carry next to its notebook are copied to autograded/ and feedback/, and formgrader
# serves autograded/ on the instructor's origin without a sandbox: no file of these types is copied at all
# (nbgrader_config.py adds them to CourseDirectory.ignore).
# glob's `*` skips names that start with a dot, hence the second pattern of each pair.
ACTIVE_FILE_PATTERNS = [prefix + _any_case(extension) for extension in _active_extensions() for prefix in ("*", ".*")]
