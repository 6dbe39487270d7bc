"""The malformed-input corpus (tests/malformed_corpus.py) through every command: no traceback,
no exit status 0 on bad input, the error in one line naming the file, no partial or temporary
files, and the good inputs beside bad ones converted or prepared.

Each case is its own test id. They run in this process through rawdiffusion.cli.main (stdout,
stderr and file descriptor 2, where LibRaw prints, captured by malformed_corpus.run_case);
only train.py and sample.py run as subprocesses. Cases that fail because of a defect of the
package are strict xfails with the defect in one line: fixing it turns them into failures
here, to be unmarked.

The corpus is built once per session, at collection (the case ids are its file names), into a
temporary folder removed at exit.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from malformed_corpus import SHARED_DNG, build, kinds, problems, run_case

XFAIL = {}  # case name: a defect of the package that makes it fail, in one line


_CORPUS = {}


def corpus() -> dict:
    """The cases by name, built once per session in a temporary folder."""
    if not _CORPUS:
        root = Path(tempfile.mkdtemp(prefix="malformed_corpus_"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _CORPUS.update({c.name: c for c in build(root)})
        _CORPUS["__root__"] = root
    return _CORPUS


def cases() -> dict:
    return {k: v for k, v in corpus().items() if k != "__root__"}


def _params():
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[name])]
                         if name in XFAIL else [])
            for name in cases()]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_corpus_is_large_and_covers_every_command_and_kind():
    all_cases = list(cases().values())
    assert len(all_cases) >= 150
    commands = {c.command for c in all_cases}
    assert commands == {"info", "prepare folder", "convert", "export", "baseline fit",
                        "sample.py", "train.py"}
    count = kinds(all_cases)
    for kind in ("truncated RAW", "zero-byte file", "bad RAW file", "bad sidecar", "bad photo",
                 "odd photo", "broken checkpoint", "broken baseline JSON", "bad option",
                 "mixed good and bad", "good input"):
        assert count.get(kind, 0) >= 5, (kind, count)
    assert len(all_cases) == len(set(cases())), "case names are unique"
    if SHARED_DNG.is_file():
        assert any(n.startswith("info/truncated-shared-") for n in cases())


def test_every_known_defect_names_a_case():
    """A renamed case must not leave its xfail behind (absent shared files excepted)."""
    missing = [n for n in XFAIL if n not in cases() and "shared" not in n]
    assert missing == []


@pytest.mark.parametrize("name", _params())
def test_case(name):
    case = cases()[name]
    result = run_case(case)
    found = problems(case, result)
    assert found == [], (f"{case.command} {' '.join(case.args)}\nexit {result.code}\n"
                         f"stderr:\n{result.stderr[-3000:]}")
