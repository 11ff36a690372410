"""Hostile article files, generated at test time (nothing large is committed): decompression bombs,
trap page trees, deep nesting, broken files, web pages with scripts, and chunk bombs (a few KB that
would become hundreds of passages).

``hostile_corpus()`` is ``{file name: (bytes, what the reason must mention)}``; every one of them
must be skipped with a reason by ``rag index`` / ``rag add`` and refused with a 4xx by the upload
route. Each is small on disk (at most ~2 MB) and made in well under a second, but expands far beyond
the default limits (``rag.ingest.safe_parse.ParseLimits``).
"""

from __future__ import annotations

import io
import zipfile
import zlib

from tests.doc_files import HOSPITAL_PAGE, make_pdf

MB = 1024 * 1024


def pdf_from_objects(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF file of ``objects`` (numbered from 1) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def _page(contents: int | None = None, parent: int = 2) -> bytes:
    c = b" /Contents %d 0 R" % contents if contents else b""
    return b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842]%s >>" % (parent, c)


def flate_bomb_pdf(expanded: int = 32 * MB) -> bytes:
    """One page whose content stream inflates from ~60 KB to ``expanded`` bytes."""
    stream = zlib.compress(b" " * expanded, 6)
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        _page(4),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ])


def page_tree_dag_pdf(levels: int = 6, fanout: int = 10) -> bytes:
    """A page tree whose every node lists the same child ``fanout`` times: fanout**levels pages
    (a million) from a dozen objects, declaring /Count 1."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(levels):
        me, child = 2 + level, 3 + level
        kids = b" ".join([b"%d 0 R" % child] * fanout)
        parent = b" /Parent %d 0 R" % (me - 1) if level else b""
        objects.append(b"<< /Type /Pages /Kids [%s] /Count 1%s >>" % (kids, parent))
    objects.append(_page(parent=1 + levels))
    return pdf_from_objects(objects)


def many_pages_pdf(pages: int = 30_000) -> bytes:
    """``pages`` real (empty) pages: about 2 MB."""
    first = 3
    kids = b" ".join(b"%d 0 R" % (first + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)]
    objects += [_page()] * pages
    return pdf_from_objects(objects)


def deep_array_pdf(depth: int = 50_000) -> bytes:
    """An array nested ``depth`` levels deep in the catalog: a parser that recurses runs out of stack."""
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R /Deep " + b"[" * depth + b"]" * depth + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        _page(),
    ])


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                 b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 b'<Default Extension="xml" ContentType="application/xml"/>'
                 b'<Override PartName="/word/document.xml" '
                 b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
                 b'</Types>')
RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'officeDocument" Target="word/document.xml"/></Relationships>')
W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx_of(body: bytes) -> bytes:
    """A minimal Word file whose document body is ``body`` (WordprocessingML inside <w:body>)."""
    document = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ' + W + b"><w:body>" + body \
        + b"</w:body></w:document>"
    return _zip({"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": RELS, "word/document.xml": document})


def docx_paragraph_bomb(paragraphs: int = 500_000) -> bytes:
    """Millions of one-word paragraphs (the probe's 3 MB file expanded to ~1 GB of them; this one to ~18 MB)."""
    return docx_of(b"<w:p><w:r><w:t>bom</w:t></w:r></w:p>" * paragraphs)


def docx_whitespace_bomb(expanded: int = 64 * MB) -> bytes:
    """One paragraph of ``expanded`` bytes of spaces (about 60 KB as a file)."""
    return docx_of(b'<w:p><w:r><w:t xml:space="preserve">' + b" " * expanded + b"</w:t></w:r></w:p>")


def zip_bomb(expanded: int = 64 * MB) -> bytes:
    """A plain zip bomb (one member of zeros), to be saved under a .docx name."""
    return _zip({"zeros.bin": b"\0" * expanded})


def lying_zip_bomb(expanded: int = 20 * MB) -> bytes:
    """A Word file whose document.xml says it is 100 bytes in the zip's directory but inflates to
    ``expanded`` bytes."""
    data = bytearray(docx_of(b'<w:p><w:r><w:t xml:space="preserve">' + b" " * expanded + b"</w:t></w:r></w:p>"))
    real = expanded + 300
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size in local and central headers
        start = 0
        while (i := data.find(sig, start)) >= 0:
            size = int.from_bytes(data[i + off:i + off + 4], "little")
            if size > real - 1000:  # only the big member
                data[i + off:i + off + 4] = (100).to_bytes(4, "little")
            start = i + 4
    return bytes(data)


# ----------------------------------------------------------------------------- chunk bombs (issue 37 item 2)
# small files whose text is far larger than the file: each would become hundreds of passages

LINE = b"(Pyongyang lanceerde opnieuw een raket boven de Japanse Zee, meldt het persbureau.) Tj T* "
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _flate_stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode%s >>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"


def repetitive_text_pdf(lines: int = 9_000) -> bytes:
    """One page whose content stream repeats a sentence ``lines`` times: ~3.5 KB on disk, ~770,000
    characters of text (the probe's 3,701-byte PDF gave 780,000 characters and 1,398 passages)."""
    content = b"BT /F1 11 Tf 14 TL 72 770 Td " + LINE * lines + b"ET"
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        _flate_stream(content),
        FONT,
    ])


def drawing_xobjects_pdf(levels: int = 12, fanout: int = 2) -> bytes:
    """Form XObjects that draw each other: the page draws X0, each Xi shows a sentence and draws
    X(i+1) ``fanout`` times, and the last draws X0 again (a cycle). Two kilobytes of objects; a parser
    that follows every Do writes the sentence fanout**levels times (and more, round the cycle)."""
    first = 6  # object number of X0
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> "
        b"/XObject << /X %d 0 R >> >> /Contents 4 0 R >>" % first,
        _flate_stream(b"/X Do"),
        FONT,
    ]
    for i in range(levels):
        nxt = first + (i + 1) % levels
        body = b"BT /F1 11 Tf 72 770 Td " + LINE + b"ET " + b"/N Do " * fanout
        extra = (b" /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> "
                 b"/XObject << /N %d 0 R >> >>" % nxt)
        objects.append(_flate_stream(body, extra))
    return pdf_from_objects(objects)


def docx_repeated_runs(runs: int = 300, paragraphs: int = 20) -> bytes:
    """A Word file of ``paragraphs`` paragraphs, each the same run repeated ``runs`` times: a few KB
    as a file, millions of characters of text (the probe's 146 KB file gave 1,222 passages)."""
    run = b'<w:r><w:t xml:space="preserve">Pyongyang lanceerde opnieuw een raket boven de Japanse Zee. </w:t></w:r>'
    return docx_of((b"<w:p>" + run * runs + b"</w:p>") * paragraphs)


def deep_html(depth: int = 20_000) -> bytes:
    return (b"<html><body><article>" + b"<div>" * depth + b"<p>Diep verstopt artikel over Pyongyang.</p>"
            + b"</div>" * depth + b"</article></body></html>")


SCRIPT_ONLY_PAGE = b"""<!doctype html><html><head><title>Niets</title>
<script>fetch('/api/documents', {method: 'POST'}); document.cookie</script></head>
<body onload="alert('onload')"><script>alert('x')</script><img src="x" onerror="alert('img')">
<a href="javascript:alert('link')" onclick="alert('click')"><img src="y"></a><iframe src="javascript:alert(1)"></iframe>
</body></html>"""

SCRIPTED_ARTICLE = """<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Haven van Nampo</title>
<script>alert('head-script')</script></head>
<body onload="alert('onload')"><article><h1>Haven van Nampo</h1>
<p onclick="alert('p-click')">De haven van Nampo is uitgebreid met een nieuwe kade voor containerschepen, meldt het staatspersbureau.</p>
<script>document.write('<p>ingevoegd-door-script</p>')</script>
<p>Volgens de havendirecteur kunnen er voortaan vier schepen tegelijk aanmeren <img src="x" onerror="alert('img')"> aan de kade.</p>
<p><a href="javascript:alert('link')">Lees meer</a> over de uitbreiding van de haven en de nieuwe kranen aan de westkant.</p>
</article></body></html>""".encode()


def hostile_corpus() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """{file name: (bytes, words of which the skip reason must contain one)}."""
    good_pdf = make_pdf([HOSPITAL_PAGE], title="Ziekenhuis")
    big = ("too large once expanded",)
    return {
        "flate-bom.pdf": (flate_bomb_pdf(), big),
        "paginaboom-dag.pdf": (page_tree_dag_pdf(), ("page tree", "too many pages")),
        "dertigduizend-paginas.pdf": (many_pages_pdf(), ("too many pages",)),
        "diepe-arrays.pdf": (deep_array_pdf(), ("nested", "damaged PDF", "hostile")),
        "kapot.pdf": (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\n%%EOF garbage \xff\xfe", ("damaged PDF",)),
        "afgebroken.pdf": (good_pdf[: len(good_pdf) * 2 // 3], ("damaged PDF", "PDF without text")),
        "leeg.pdf": (b"", ("empty",)),
        "alleen-kop.pdf": (b"%PDF-1.4\n%%EOF\n", ("damaged PDF",)),
        "alinea-bom.docx": (docx_paragraph_bomb(), big + ("too many paragraphs",)),
        "spatie-bom.docx": (docx_whitespace_bomb(), big),
        "zip-bom.docx": (zip_bomb(), big),
        "liegende-zip.docx": (lying_zip_bomb(), ("not a valid Word document", "Bad CRC", "cannot be read")),
        "herhaalde-tekst.pdf": (repetitive_text_pdf(), big),  # chunk bombs: a few KB, hundreds of passages
        "tekenende-xobjects.pdf": (drawing_xobjects_pdf(), big),
        "herhaalde-runs.docx": (docx_repeated_runs(), big),
        "diep-genest.html": (deep_html(), ("nested more than",)),
        "alleen-scripts.html": (SCRIPT_ONLY_PAGE, ("without an article",)),
    }
