"""ipywidgets outputs drawn as what they showed when the notebook ran, with no widget JavaScript.

A notebook executed with widgets stores their state in its metadata; myst-nb would load the widget manager
from a CDN to draw it. A static page cannot run the Python behind a slider anyway, so this extension replaces
each widget view by the pictures (and text) that its ``Output`` widgets captured, with a note that the controls
work in Jupyter. Set ``nb_ipywidgets_js = {}`` so that myst-nb adds no widget scripts.
"""
from __future__ import annotations

import json
import re

from docutils import nodes

VIEW = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">(.*?)</script>', re.S)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")


def _outputs_of(model_id: str, state: dict, seen=None) -> list[dict]:
    """The outputs captured by ``model_id`` and the widgets it contains, depth first."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id].get("state", {})
    found = list(model.get("outputs", []))
    children = model.get("children", [])
    for child in children if isinstance(children, list) else []:
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += _outputs_of(child[len("IPY_MODEL_"):], state, seen)
    return found


def _static_nodes(outputs: list[dict]) -> list[nodes.Node]:
    result = []
    for out in outputs:
        data = out.get("data", {})
        mime = next((m for m in IMAGE_TYPES if m in data), None)
        if mime is not None:
            body = data[mime]
            body = "".join(body) if isinstance(body, list) else body
            if mime == "image/svg+xml":
                import base64
                body = base64.b64encode(body.encode()).decode()
            image = nodes.image(uri=f"data:{mime};base64,{body.strip()}", alt="widget output")
            result.append(nodes.container("", image, classes=["cell_output", "static-widget"]))
        elif out.get("output_type") == "stream" or "text/plain" in data:
            text = out.get("text") if out.get("output_type") == "stream" else data["text/plain"]
            text = "".join(text) if isinstance(text, list) else text
            result.append(nodes.literal_block(text, text, classes=["output", "static-widget"]))
    return result


def replace_widget_views(app, doctree):
    from myst_nb.sphinx_ import NbMetadataCollector

    docname = app.env.docname
    js = NbMetadataCollector.get_doc_data(app.env).get(docname, {}).get("js_files", {})
    entry = js.pop("ipywidgets_state", None)  # the state goes no further than this build step
    state = json.loads(entry[1]["body"]).get("state", {}) if entry else {}
    for raw in list(doctree.findall(nodes.raw)):
        match = VIEW.search(raw.astext())
        if not match:
            continue
        view = json.loads(match.group(1))
        outputs = _outputs_of(view.get("model_id", ""), state)
        note = nodes.paragraph(
            "", "Interactive in Jupyter; here, the view drawn when the notebook ran:", classes=["static-widget-note"])
        raw.replace_self([note, *_static_nodes(outputs)] if outputs else [note])


def setup(app):
    app.connect("doctree-read", replace_widget_views, priority=100)  # before Sphinx collects the images
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
