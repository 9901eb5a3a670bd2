"""Sphinx configuration of the MCIHN book: the notebooks with their outputs, and the reference pages.

Build (from the repository root; needs the ``docs`` extra, which ``dev`` includes)::

    python -m sphinx -b html docs docs/_build/html

The notebooks are copied from ``notebooks/`` into ``docs/notebooks/`` (git-ignored) and executed by myst-nb in
QUICK mode (``MCIHN_QUICK=1``). The outputs go into a jupyter-cache (``docs/_build/.jupyter_cache``), keyed by
the code cells: a rebuild after a text change reads them back; a changed code cell re-executes its notebook.

``MCIHN_BOOK_NOTEBOOKS=DIR`` takes the notebooks from DIR instead, already executed, and executes nothing
(``tests/test_book.py`` passes the notebooks that ``tests/test_notebooks.py`` has just executed).
Everything the pages load is served from the build folder: MathJax comes from the ``sphinx-mathjax-offline``
package, the search index is Sphinx's own, and ipywidgets outputs are drawn as the pictures they held when the
notebook ran (``_ext/static_widgets.py``), so nothing is fetched from the network when the book is read.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

from sync_notebooks import sync_notebooks  # noqa: E402  (docs/_ext)

# ----------------------------------------------------------------------------- the notebooks
_EXECUTED = os.environ.get("MCIHN_BOOK_NOTEBOOKS")
sync_notebooks(Path(_EXECUTED) if _EXECUTED else ROOT / "notebooks", DOCS / "notebooks")
os.environ.setdefault("MCIHN_QUICK", "1")  # the kernels inherit it: the book shows QUICK runs
os.environ.setdefault("OMP_NUM_THREADS", "1")

# ----------------------------------------------------------------------------- project
project = "MCIHN, annotated"
author = "the mcihn contributors"
copyright = "2025, the mcihn contributors (MIT licence)"

extensions = [
    "myst_nb",                  # Markdown pages and notebooks (includes myst_parser)
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 copied into _static/mathjax: math renders offline
    "static_widgets",           # docs/_ext: ipywidgets outputs as static pictures, no widget JavaScript
]
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
suppress_warnings = ["mystnb.unknown_mime_type"]

# ----------------------------------------------------------------------------- MyST and myst-nb
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off" if _EXECUTED else "cache"
nb_execution_timeout = int(os.environ.get("MCIHN_NB_CELL_TIMEOUT", "600"))
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_ipywidgets_js = {}           # no widget JavaScript from a CDN: static_widgets draws the outputs instead
nb_render_markdown_format = "myst"

# ----------------------------------------------------------------------------- HTML
html_theme = "sphinx_book_theme"
html_title = "MCIHN, annotated"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_context = {"default_mode": "light"}  # the theme logs a console error when no mode is set
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": False,   # would offer the executed .ipynb through a CDN-free link only; kept simple
    "use_fullscreen_button": False,
    "use_repository_button": False,
}
# The sidebar without its own search field: the header's search button is the one way in (it was there twice).
html_sidebars = {"**": ["navbar-logo.html", "sbt-sidebar-nav.html"]}
html_show_sourcelink = False
html_copy_source = False
mathjax_path = "mathjax/tex-chtml.js"
