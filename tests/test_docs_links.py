"""The README and docs/*.md: every relative link resolves, the README's contents list every section, and
every public name they tell users to type works right after ``import nblstm``."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _text_outside_code(page):
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def _anchors(page):
    """The heading anchors of a page, and its explicit ``<a id="...">`` anchors (table rows)."""
    text = _text_outside_code(page)
    return ({_slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
            | set(re.findall(r'<a id="([^"]+)"></a>', text)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for link in LINK.findall(_text_outside_code(page)):
        if re.match(r"[a-z]+:", link):
            continue                                    # http(s), mailto: not checked offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target.relative_to(ROOT)})")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading with anchor #{anchor})")
    assert not broken, f"{page.name}: {broken}"


def test_links_from_the_code_to_docs_resolve():
    """Comments and docstrings cite measurements as ``docs/<page>.md#anchor``: each anchor exists."""
    sources = [*sorted((ROOT / "nblstm").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py")),
               ROOT / "CONTRIBUTING.md"]
    cited = {(source.name, page, anchor) for source in sources
             for page, anchor in re.findall(r"docs/([\w-]+\.md)#([\w-]+)", source.read_text())}
    assert len(cited) > 20
    broken = [c for c in sorted(cited) if c[2] not in _anchors(ROOT / "docs" / c[1])]
    assert not broken, broken


def test_readme_contents_list_every_section():
    readme = ROOT / "README.md"
    sections = [_slug(h) for h in re.findall(r"^## (.*)$", _text_outside_code(readme), flags=re.M)]
    listed = re.findall(r"^- \[.*\]\(#([^)]*)\)$", readme.read_text(), flags=re.M)
    assert listed == sections


RESOLVE = textwrap.dedent('''
    import json
    import sys
    {before}
    import nblstm

    missing = []
    for name in sys.argv[1:]:
        obj = nblstm
        try:
            for part in name.split(".")[1:]:
                obj = getattr(obj, part)
        except Exception as exc:
            missing.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
    print(json.dumps(missing))
''')


def _missing_after_import(names, before=""):
    """The names of ``names`` that do not resolve in a fresh ``python`` right after ``import nblstm``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", RESOLVE.format(before=before), *names], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_public_name_in_the_docs_works_right_after_import():
    """``nblstm.cpu.config.path = "serial"`` raised AttributeError before the first call imported the backend."""
    names = set()
    for page in PAGES:
        names.update(re.findall(r"\bnblstm(?:\.[A-Za-z_]\w*)+", page.read_text()))
    public = sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))
    if importlib.util.find_spec("dask") is None:
        public = [n for n in public if not n.startswith("nblstm.dask")]   # the dask extra
    if importlib.util.find_spec("sklearn") is None:
        public = [n for n in public if not n.startswith("nblstm.sklearn")]   # the sklearn extra
    if importlib.util.find_spec("numba_cuda") is None:
        # nblstm.cuda's modules import numba-cuda (the cuda extra); the package itself must not
        public = [n for n in public if n.count(".") < 2 or not n.startswith("nblstm.cuda.")
                  or n.split(".")[2] in ("available", "require", "config")]
    assert {"nblstm.cpu.config.path", "nblstm.jit.lstm_cell", "nblstm.cuda.available"} <= set(public)
    assert _missing_after_import(public) == []


@pytest.mark.slow
def test_cuda_is_reachable_without_numba_cuda():
    names = ["nblstm.cuda", "nblstm.cuda.available", "nblstm.cuda.config", "nblstm.cpu.config.path"]
    # as if the cuda extra were not installed
    assert _missing_after_import(names, before='sys.modules["numba_cuda"] = None') == []


HELP_WITHOUT_EXTRAS = textwrap.dedent('''
    import contextlib
    import io
    import sys

    sys.modules["dask"] = None                  # as if the dask extra were not installed
    import nblstm

    with contextlib.redirect_stdout(io.StringIO()):
        help(nblstm)
    assert not hasattr(nblstm, "dask")
    try:
        nblstm.dask
    except AttributeError as exc:
        assert 'pip install "nblstm[dask]"' in str(exc), str(exc)
    print("ok")
''')


@pytest.mark.slow
def test_help_and_hasattr_work_without_an_extra():
    """The lazy names raised ModuleNotFoundError from hasattr(nblstm, "dask") and help(nblstm) without dask."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-c", HELP_WITHOUT_EXTRAS], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr[-3000:]
