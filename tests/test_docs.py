"""The documentation: README.md as a front page, and the pages of docs/.

Every relative link and image resolves to a file of the repository (and a `#section` anchor to a
heading of its target, slugged as GitHub slugs headings); every docs page is reachable from the
README; the README's Python example runs verbatim; the README stays a front page (<= 250 lines);
every Python block of docs/python.md runs as it stands; and no page leans on words or files an
outside reader cannot place.
"""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy
from skimage import data as skimage_data

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), an optional "title" after the target; text may wrap lines.
LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def links(page: Path) -> list[str]:
    """Every link and image target of a page, outside code blocks and code spans."""
    prose = CODE_SPAN.sub("code", "\n".join(prose_lines(page.read_text(encoding="utf-8"))))
    return [m.group(2) for m in LINK.finditer(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its rendered text lower-cased, every character but letters,
    digits, '_', '-' and spaces dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings; a repeated one gets -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    """The relative links of a page that name no file of the repository, or no heading of it."""
    broken = []
    for target in links(page):
        if SCHEME.match(target):
            continue  # http:, https:, mailto: ... are not the repository's
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT) or not dest.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
        elif anchor and dest.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
    return broken


def test_slugs_are_githubs():
    # GitHub's rule (github-slugger): nothing is collapsed, so '.py ... (' leaves two hyphens.
    assert slug("Set-up: two commands") == "set-up-two-commands"
    assert slug("The paper's pipeline: from a few RAW photos to Cityscapes-RAW and BDD100K-RAW") \
        == "the-papers-pipeline-from-a-few-raw-photos-to-cityscapes-raw-and-bdd100k-raw"
    assert slug("`rawdiffusion info FILE... [--preview DIR]`") \
        == "rawdiffusion-info-file---preview-dir"
    assert slug("Training: `python train.py ...` (or `rawdiffusion train ...`)") \
        == "training-python-trainpy--or-rawdiffusion-train-"
    assert slug("`gen(photo, seed=0)` -> `rd.RawImage`") == "genphoto-seed0---rdrawimage"


def test_link_checker_finds_broken_links(tmp_path, monkeypatch):
    # The checker itself: a missing file, a missing anchor, one inside code (ignored), good ones.
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Two words\n\n```\n# not a heading\n```\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md) [ok](docs/a.md#two-words) [gone](docs/b.md)\n"
                    "[no anchor](docs/a.md#not-a-heading) [web](https://example.org/x)\n"
                    "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n[self](#nothing)\n")
    assert broken_links(page) == [
        "docs/b.md: no such file in the repository",
        "docs/a.md#not-a-heading: no heading with that anchor in a.md",
        "#nothing: no heading with that anchor in README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_resolves(page):
    assert links(page), f"{page.name} links nowhere"
    assert broken_links(page) == []


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for target in links(page):
            path = target.partition("#")[0]
            if SCHEME.match(target) or not path.endswith(".md"):
                continue
            dest = (page.parent / path).resolve()
            if dest.is_file() and dest not in reached:
                reached.add(dest)
                todo.append(dest)
    assert sorted(p.name for p in set(PAGES) - reached) == []


def test_readme_is_a_front_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


@pytest.mark.parametrize("words", ["REFERENCE.md", "the seed", "the issue"])
def test_no_words_an_outsider_cannot_place(words):
    # The project's internal notes and tracker are not in the repository: cite the papers and
    # say "the reference implementation" or "the paper's released code" instead.
    found = [f"{p.relative_to(ROOT)}:{i}" for p in PAGES
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if words.lower() in line.lower()]
    assert found == []


def readme_python_example() -> str:
    """The README's fenced Python block that loads the shipped model, verbatim."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"),
                        re.MULTILINE | re.DOTALL)
    found = [b for b in blocks if "rd.load()" in b]
    assert len(found) == 1, "README.md: one ```python block with rd.load() expected"
    return found[0]


def test_readme_python_example_runs_verbatim(tmp_path, monkeypatch):
    # A real photo (scikit-image's cat, no download) cut to 64 x 96; the example from a folder
    # that is not the checkout, as a user runs it after the README's install.
    photo = np.ascontiguousarray(skimage_data.chelsea()[:256:4, :384:4])
    assert photo.shape == (64, 96, 3) and photo.dtype == np.uint8
    monkeypatch.chdir(tmp_path)
    scope = {"photo": photo}
    exec(compile(readme_python_example(), "README.md", "exec"), scope)
    assert isinstance(scope["raw"], scope["rd"].RawImage)
    assert scope["raw"].mosaic.shape == (64, 96)
    assert (tmp_path / "out.dng").is_file()
    with rawpy.imread(str(tmp_path / "out.dng")) as dng:
        assert dng.raw_image_visible.shape == (64, 96)


def python_blocks(page: Path) -> list[str]:
    """The fenced ```python blocks of a page, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                      re.MULTILINE | re.DOTALL)


def test_every_python_block_of_the_python_page_runs(tmp_path, monkeypatch, capsys):
    # As the page says: one block after the other in one session, from a folder that is not
    # the checkout, `photo` a 64 x 96 crop of scikit-image's cat; what the blocks print and
    # write is what their comments say.
    blocks = python_blocks(ROOT / "docs" / "python.md")
    assert len(blocks) == 8 and "rd.load()" in blocks[0]
    assert blocks[0] == readme_python_example()  # the page's three lines are the README's
    photo = np.ascontiguousarray(skimage_data.chelsea()[:256:4, :384:4])
    monkeypatch.chdir(tmp_path)
    scope = {"photo": photo}
    for n, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python.md, python block {n}", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "GoPro FUSION RGGB"
    assert printed[1:3] == ["(64, 96) uint16", "(4, 32, 48) float32"]
    assert printed[4].startswith("torch.Size([2, 4, 128, 192])")
    assert printed[5] == "(4, 32, 48)"
    assert printed[6] == "steps | steps=0: the ddim sampler takes 1 to 1000 steps"
    assert printed[7].startswith("Settings(steps=1, sampler='ddim', tile=256, overlap=64, ")
    assert tuple(scope["raw_x"].shape) == (1, 4, 32, 48)  # sampling.generate's, normalised
    assert float(scope["raw_x"].min()) >= 0 and float(scope["raw_x"].max()) <= 1
    for name in ("out.dng", "cat.dng", "copy.dng"):
        with rawpy.imread(str(tmp_path / name)) as dng:
            assert dng.raw_image_visible.shape == (64, 96)
    np.testing.assert_array_equal(scope["raw"].mosaic, scope["io"].read_raw("copy.dng").mosaic)
