"""Repository hygiene: notebooks stripped, environment.yml in step, README's commands and snippet true."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked(pattern):
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / f for f in out.stdout.split()]


def notebook_problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [f"{path.name}: cell {i} has outputs or an execution count"
            for i, c in enumerate(nb.get("cells", []))
            if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))]


def test_notebook_check_detects_outputs(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "1", "outputs": [{"output_type": "stream"}],
                     "execution_count": 1, "metadata": {}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(nb))
    assert notebook_problems(p)


def test_committed_notebooks_are_stripped():
    problems = [p for f in tracked("*.ipynb") for p in notebook_problems(f)]
    assert not problems, "strip outputs before committing:\n" + "\n".join(problems)


def readme_block(lang_hint: str, index: int = 0) -> str:
    blocks = re.findall(r"```" + lang_hint + r"\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return blocks[index]


def test_ci_installs_and_tests_as_the_readme_says():
    setup = readme_block("bash", 0)
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r'pip install (-e "\.\[\w+\]")', setup).group(1)
    assert f"pip install {install}" in ci
    assert "python -m pytest -q" in setup and "python -m pytest -q" in ci
    assert "python -m mcihn train --out" in setup and "python -m mcihn train --out" in ci


def test_environment_yml_installs_the_readme_extras():
    env = (ROOT / "environment.yml").read_text()
    setup = readme_block("bash", 0)
    extras = re.search(r'pip install -e "\.(\[\w+\])"', setup).group(1)
    assert f"-e .{extras}" in env


def test_torch_upper_bound_stays_below_2_14():
    text = (ROOT / "pyproject.toml").read_text()
    spec = re.search(r'"torch([^"]*)"', text).group(1)
    assert "<2.14" in spec.replace(" ", ""), spec


def test_readme_python_snippet_runs():
    code = readme_block("python", 0)
    lines = [ln.split("#")[0].rstrip() for ln in code.splitlines()]
    # turn the bare expressions (shown for their values) into checks that they evaluate
    src = "\n".join(ln for ln in lines if ln)
    proc = subprocess.run([sys.executable, "-c", src], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_package_file_map_is_true():
    """mcihn/__init__.py's map names files that exist, in the folder it puts them in, and every module there is."""
    import re

    import mcihn

    root = Path(mcihn.__file__).parent
    folder, named = None, set()
    for line in mcihn.__doc__.split("The short way in")[0].splitlines():
        m = re.match(r"    (\w+)/ ", line)
        if m:
            folder = m.group(1)
        elif re.match(r"    \S", line):
            folder = None
        for name in re.findall(r"\b(\w+\.py)\b", line):
            path = f"{folder}/{name}" if folder else name
            assert (root / path).exists(), path
            named.add(path)
    modules = {p.relative_to(root).as_posix() for p in root.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and p.parent.name != "cli"}
    assert modules <= named, sorted(modules - named)


def test_every_subpackage_is_listed_for_installation():
    """pyproject lists packages by name: a subpackage left out would be missing from an installed wheel."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(re.sub(r"[\s\"]", "", re.search(r"packages = \[(.*?)\]", (root / "pyproject.toml").read_text(), re.S)
                        .group(1)).split(","))
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "mcihn").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
