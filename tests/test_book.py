"""The book (docs/), built from the notebooks that tests/test_notebooks.py executes, read in a real browser.

The notebooks are not executed again: the session's ``executed`` fixture (tests/conftest.py) has them, with their
outputs. They are written into a copy of the book's source and Sphinx builds it with execution off
(``MCIHN_BOOK_NOTEBOOKS``, see docs/conf.py). Then Debian's ``chromium``, driven by Playwright through its
executable path (no ``playwright install``), opens every page from a local HTTP server and checks:

* no console error, no failed request, no request that leaves this machine (MathJax, search and the theme are
  served from the build folder);
* every notebook page shows every picture its executed notebook made (image outputs, and those held by its
  widgets), each loaded with a non-zero size;
* the math is typeset by MathJax (every math element holds MathJax output, no raw ``$$`` left);
* the paper-to-code table and the results tables are there, and the search finds a word offline;
* "next" from the first page walks through the notebooks 01, 02, ... in order.

A screenshot of each notebook page goes to a temporary folder (``MCIHN_BOOK_SHOTS=DIR`` keeps them in DIR),
printed at the end. Without chromium (``.ci/run`` installs Debian's package), Playwright or Sphinx the test is
skipped with a message saying what is missing.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = os.environ.get("MCIHN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")


def _missing() -> str | None:
    """Why the book cannot be tested here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)"
    for module, extra in (("playwright", "playwright"), ("sphinx", "docs"), ("myst_nb", "docs"),
                          ("sphinx_book_theme", "docs")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e \".[{extra}]\"; the dev extra has it)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def expected_images(nb) -> int:
    """Pictures a reader should see: image outputs of the cells, and those captured by the widgets' Output
    models (the book draws a widget as what it showed when the notebook ran)."""
    def has_image(out) -> bool:
        return any(m in out.get("data", {}) for m in IMAGE_TYPES)

    cells = sum(has_image(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    widgets = sum(has_image(o) for m in state.values() for o in m.get("state", {}).get("outputs", []) or [])
    return cells + widgets


def _source_copy(dest: Path) -> Path:
    """A copy of docs/ beside links to the rest of the checkout, so the build writes nothing into it."""
    dest.mkdir(parents=True)
    shutil.copytree(DOCS, dest / "docs", ignore=shutil.ignore_patterns(
        "_build", "jupyter_execute", ".jupyter_cache", "[0-9][0-9]_*.ipynb"))
    for entry in ROOT.iterdir():
        if entry.name not in {"docs", ".git", ".venv"}:
            (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return dest / "docs"


@pytest.fixture(scope="module")
def book(executed, tmp_path_factory):
    """(html folder, {notebook stem: pictures expected}, build seconds)."""
    import nbformat

    tmp = tmp_path_factory.mktemp("book")
    nb_dir = tmp / "executed"
    nb_dir.mkdir()
    expected = {}
    for path in NOTEBOOKS:
        nb = executed(path.stem)["nb"]
        # the book shows the notebook as a reader runs it: without the cell papermill injected for the tests
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        nbformat.write(nb, nb_dir / path.name)
        expected[path.stem] = expected_images(nb)
    src, out = _source_copy(tmp / "src"), tmp / "html"
    env = {**os.environ, "MCIHN_BOOK_NOTEBOOKS": str(nb_dir)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(src), str(out),
                           "-d", str(tmp / "doctrees")], env=env, capture_output=True, text=True, timeout=600)
    seconds = time.time() - t0
    assert proc.returncode == 0, f"the book does not build:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"book built in {seconds:.1f} s")
    return out, expected, seconds


@pytest.fixture(scope="module")
def site(book):
    """The built book on a local HTTP server: its base URL."""
    out = book[0]
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class PageProblems:
    """Console errors, uncaught exceptions, failed requests and requests leaving this machine, for one page."""

    def __init__(self, page, base: str):
        self.errors: list[str] = []
        host = urlparse(base).netloc

        def on_request(route):
            url = route.request.url
            if urlparse(url).netloc == host or url.startswith(("data:", "blob:", "about:")):
                route.continue_()
            else:
                self.errors.append(f"request leaving the machine: {url}")
                route.abort()

        page.route("**/*", on_request)
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))


def _open(browser, base: str, rel: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page, base)
    page.goto(base + rel, wait_until="networkidle")
    if page.evaluate("() => !!(window.MathJax && MathJax.startup)"):
        page.evaluate("() => MathJax.startup.promise")  # typesetting done
    return page, problems


def _math_state(page) -> dict:
    return page.evaluate("""() => {
        const math = [...document.querySelectorAll('span.math, div.math')];
        const text = document.querySelector('main, article, body').innerText;
        return {math: math.length, typeset: math.filter(m => m.querySelector('mjx-container')).length,
                raw: (text.match(/\\$\\$/g) || []).length};
    }""")


def _image_state(page) -> dict:
    return page.evaluate("""() => {
        const all = [...document.querySelectorAll('img')];
        const broken = all.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 120));
        return {outputs: document.querySelectorAll('.cell_output img').length, broken: broken};
    }""")


def test_every_page_loads_offline_with_its_figures_and_math(book, site, browser, tmp_path_factory):
    out, expected, _ = book
    shots = Path(os.environ.get("MCIHN_BOOK_SHOTS") or tmp_path_factory.mktemp("book_screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html") if "_static" not in p.parts)
    assert {f"notebooks/{p.stem}.html" for p in NOTEBOOKS} <= set(pages), pages
    failures, math_pages = [], 0
    for rel in pages:
        page, problems = _open(browser, site, rel)
        images, math = _image_state(page), _math_state(page)
        failures += [f"{rel}: {e}" for e in problems.errors]
        failures += [f"{rel}: image not shown: {src}" for src in images["broken"]]
        if math["math"] != math["typeset"] or math["raw"]:
            failures.append(f"{rel}: math not typeset: {math}")
        math_pages += math["typeset"] > 0
        stem = Path(rel).stem
        if rel.startswith("notebooks/") and stem in expected:
            if images["outputs"] != expected[stem]:
                failures.append(f"{rel}: {images['outputs']} pictures shown, the notebook made {expected[stem]}")
            page.screenshot(path=str(shots / f"{stem}.png"), full_page=True)
        page.close()
    print(f"screenshots of the notebook pages: {shots}")
    assert not failures, "\n".join(failures)
    assert math_pages >= 2, "MathJax typeset math on fewer than two pages"


def test_the_tables_are_there(site, browser):
    page, problems = _open(browser, site, "paper_to_code.html")
    headers = page.evaluate("() => [...document.querySelectorAll('table thead')].map(t => t.innerText)")
    assert any("departure from the printed text" in h for h in headers), headers
    rows = page.evaluate("() => [...document.querySelectorAll('table tbody tr')].map(r => r.innerText)")
    for eq in ("Eq. 4", "Eq. 9", "Eq. 12", "Eq. 15", "Eq. 19"):
        assert any(r.startswith(eq) for r in rows), f"the paper-to-code table has no row for {eq}"
    page.close()
    page, problems = _open(browser, site, "results.html")
    tables = page.evaluate("() => document.querySelectorAll('table').length")
    text = page.inner_text("main")
    assert tables >= 8, f"results: {tables} tables"
    assert "Table 2 re-run" in text and "Table 3 re-run" in text and "mean predictor" in text
    assert not problems.errors, problems.errors
    page.close()


def test_search_works_offline(site, browser):
    page, problems = _open(browser, site, "search.html?q=discriminator")
    page.wait_for_selector("#search-results li", timeout=20000)
    hits = page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.href)")
    assert any("paper_to_code" in h for h in hits), hits
    assert not problems.errors, problems.errors
    page.close()


def test_next_walks_through_the_notebooks_in_order(site, browser):
    page, _ = _open(browser, site, "index.html")
    visited = []
    for _ in range(40):
        visited.append(urlparse(page.url).path.rsplit("/", 1)[-1].removesuffix(".html"))
        nxt = page.query_selector("a.right-next")
        if nxt is None:
            break
        nxt.click()
        page.wait_for_load_state("networkidle")
    page.close()
    stems = [p.stem for p in NOTEBOOKS]
    walked = [v for v in visited if v in stems]
    assert walked == stems, f"'next' from the first page reaches {walked}, expected {stems} (visited {visited})"
