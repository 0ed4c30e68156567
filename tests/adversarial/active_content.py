"""Active content a student can put in a notebook, by channel, each payload marked so a test can see it run.

Every script payload does what issue 10 saw done: it marks the page (`window.__pwned`, `document.title`), logs
to the console and starts a kernel through `/api/kernels` with the page's own XSRF cookie, as the instructor.
The same payloads are graded in the hostile catalog (scores unaffected), rendered through nbconvert in
tests/test_sanitize.py and opened in Chromium in tests/browser/test_active_content.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import nbformat
from nbformat import NotebookNode

MARK = "PWNED"


def script(tag: str) -> str:
    """JavaScript that leaves every trace the browser test looks for, written with no quote, backtick or
    markdown character, so it stays whole in an attribute, a URL, a markdown paragraph or a Python string."""
    body = (
        "(function(){var m='" + MARK + " " + tag + "';"
        "window.__pwned=(window.__pwned||[]).concat([m]);document.title=m;console.log(m);"
        "var x=(document.cookie.match(/_xsrf=([^;]+)/)||[])[1]||'';"
        "fetch(location.origin+'/api/kernels',{method:'POST',credentials:'include',headers:{'X-XSRFToken':x},body:'{}'})})()"
    )
    return "eval(String.fromCharCode(" + ",".join(str(ord(ch)) for ch in body) + "))"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def html_payloads(channel: str) -> list[str]:
    """HTML that runs `script` in a browser, one payload per way in; `channel` tags where it came from."""
    def js(n: int) -> str:
        return script(f"{channel}-{n}")

    return [
        f"<script>{js(1)}</script>",
        f"<img src=x onerror=\"{js(2)}\">",
        f"<svg onload=\"{js(3)}\"><script>{js(4)}</script></svg>",
        f"<iframe srcdoc=\"<script>{js(5)}</script>\"></iframe>",
        f"<iframe src=\"javascript:{js(6)}\"></iframe>",
        f"<a href=\"javascript:{js(7)}\" id=\"js-link-{channel}\">click me</a>",
        f"<a href=\"JaVaScRiPt&colon;{js(8)}\">entity-encoded scheme</a>",
        f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{js(9)}\">",
        "<base href=\"http://192.0.2.1/\">",
        "<form action=\"/api/kernels\" method=\"post\"><button id=\"form-" + channel + "\">go</button></form>",
        f"<div style=\"background:url(javascript:{js(10)});width:expression(alert(1))\">styled</div>",
        f"<style>@import url(javascript:{js(11)}); body {{ background: url(/api/kernels) }}</style>",
        f"<a href=\"data:text/html;base64,{_b64('<script>' + js(12) + '</script>')}\">data link</a>",
        f"<object data=\"data:text/html;base64,{_b64('<script>' + js(13) + '</script>')}\"></object>",
        f"<embed src=\"data:image/svg+xml;base64,{_b64('<svg onload=' + chr(34) + js(14) + chr(34) + '/>')}\">",
        f"<details open ontoggle=\"{js(15)}\"><summary>s</summary></details>",
        f"<math><mtext><table><mglyph><style><img src=x onerror=\"{js(16)}\"></style></mglyph></table></mtext></math>",
        f"<input autofocus onfocus=\"{js(17)}\">",
        f"<video><source onerror=\"{js(18)}\"></video>",
        f"<body onload=\"{js(19)}\">",
        "<img src=\"/api/kernels\" name=\"getElementById\" id=\"notebook\">",
        f"<noscript><p title=\"</noscript><img src=x onerror={js(20)}>\"></noscript>",
    ]


SVG = "<svg xmlns='http://www.w3.org/2000/svg' onload=\"{js}\"><script>{js}</script><rect width='9' height='9'/></svg>"


def display_code(channel: str = "output") -> str:
    """Python for a solution cell: publishes every payload on every MIME channel a kernel can use."""
    payloads = html_payloads(channel)
    svg = SVG.format(js=script(f"{channel}-svg"))
    bundles = [
        ({"text/html": "".join(payloads)}, {}),
        ({"application/javascript": script(f"{channel}-javascript")}, {}),
        ({"image/svg+xml": svg, "text/plain": "<Figure>"}, {}),
        ({"text/markdown": "\n\n".join(html_payloads(f"{channel}-md"))
          + f"\n\n[md link](javascript:{script(channel + '-md-link')})"}, {}),
        ({"text/html": f"<p>isolated</p><script>{script(channel + '-isolated')}</script>"},
         {"text/html": {"isolated": True}}),
        # nbconvert writes an image's width and height into unquoted attributes.
        ({"image/png": "not-a-png"}, {"image/png": {"width": f"1 onerror={script(channel + '-width')} x",
                                                   "height": "1", "filenames": {"image/png": "evil.html"},
                                                   "alt": f"\" onerror=\"{script(channel + '-alt')}"}}),
        ({"application/vnd.jupyter.widget-view+json": {"model_id": "0", "version_major": 2, "version_minor": 0},
          "text/vnd.mermaid": f"graph TD; A[<img src=x onerror={script(channel + '-mermaid')}>]"}, {}),
        ({"application/vnd.coursekit.observation+json": {"grade_id": "test_model_variables", "nonce": "0"},
          "text/plain": "<script>not a tag: plain text is shown as text</script>"}, {}),
    ]
    return (
        "from IPython.display import publish_display_data as _publish\n"
        f"for _data, _meta in {bundles!r}:\n"
        "    _publish(_data, metadata=_meta)\n"
        f"print({payloads[0]!r})\n"
    )


# What must still show: a plain table as HTML, and (from the lab's own plot cells) PNG figures.
HARMLESS_TABLE = ("<table><thead><tr><th>epoch</th><th>loss</th></tr></thead>"
                  "<tbody><tr><td>1</td><td>0.25</td></tr></tbody></table>")
HARMLESS_CODE = f"from IPython.display import HTML as _HTML, display as _display\n_display(_HTML({HARMLESS_TABLE!r}))\n"


# A post-run hook: every later cell, test cells and the lab's locked plot cells included, displays a payload.
HOOK_CODE = (
    "from IPython.display import HTML as _HTML, display as _display\n"
    f"_payload = {html_payloads('hook')[1]!r}\n"
    "get_ipython().events.register('post_run_cell', lambda _result: _display(_HTML(_payload)))\n"
)


def markdown_cells(channel: str = "markdown") -> Iterator[NotebookNode]:
    """Cells a student adds: markdown with raw HTML, links, attachments and math; a raw HTML cell."""
    for n, payload in enumerate(html_payloads(channel)):
        yield nbformat.v4.new_markdown_cell(f"Note {n}: {payload}", id=f"{channel}-{n}")
    svg = SVG.format(js=script(f"{channel}-attachment"))
    yield nbformat.v4.new_markdown_cell(
        "![figure](attachment:fig.svg) ![page](attachment:page.html)"
        f" [md link](javascript:{script(channel + '-link')}) [file](evil.html)"
        f" <a href=\"evil.html\">raw file link</a> $\\href{{javascript:{script(channel + '-tex')}}}{{tex}}$",
        id=f"{channel}-links",
        attachments={"fig.svg": {"image/svg+xml": _b64(svg)},
                     "page.html": {"text/html": _b64("<script>" + script(channel + "-attached") + "</script>")}},
    )
    raw = nbformat.v4.new_raw_cell("".join(html_payloads(f"{channel}-raw")), id=f"{channel}-raw")
    raw.metadata["raw_mimetype"] = "text/html"
    yield raw


def add_markdown(notebook: NotebookNode, channel: str = "markdown") -> None:
    """Adds `markdown_cells` after the first cell, and active content in the metadata the templates print."""
    notebook.cells[1:1] = list(markdown_cells(channel))
    js = script(f"{channel}-metadata")
    notebook.metadata["title"] = f"</title><script>{js}</script>"
    notebook.metadata["kernelspec"]["display_name"] = f"<img src=x onerror=\"{js}\">"
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"0": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls",
                        "model_module_version": "2.0.0", "state": {"value": f"<img src=x onerror=\"{js}\">"}}},
        "version_major": 2, "version_minor": 0}}
    notebook.metadata["signature"] = "sha256:" + "0" * 64
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            # nbformat allows no comma in a tag: a payload without one.
            cell.metadata["tags"] = ["\"><svg/onload=document.title=/PWNED-tag/.source>", "ok-tag"]
            cell.metadata["trusted"] = True
            cell.metadata["jupyter"] = {"source_hidden": True, "outputs_hidden": True}


def as_json(notebook: NotebookNode) -> str:
    return json.dumps(notebook)
