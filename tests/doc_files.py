"""Build test articles in other formats: PDF (hand-written PDF syntax, metadata and encryption with
pypdf), DOCX (python-docx) and saved news web pages (HTML with navigation, cookie banner and a
related-articles list around the article)."""

from __future__ import annotations

import io
from pathlib import Path


HOSPITAL_PAGE = [  # a full first page (more than one chunk of 250 tokens), about a hospital
    f"Afdeling {n} van het nieuwe kinderziekenhuis in Pyongyang heeft {10 + n} bedden, zegt directeur Ri."
    for n in range(1, 41)
]


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], *, title: str | None = None, author: str | None = None,
             password: str | None = None, created: str | None = None) -> bytes:
    """A PDF whose page i shows the lines ``pages[i]`` (Latin-1 text, Helvetica 11 pt). Its CreationDate is
    ``created`` (PDF date syntax, "D:20240305120000Z"), or that one when it has a title or an author."""
    from pypdf import PdfReader, PdfWriter

    objects: list[bytes] = []
    n_pages = len(pages)
    page_ids = [3 + 2 * i for i in range(n_pages)]
    font_id = 3 + 2 * n_pages
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 {font_id} 0 R >> >> "
                       f"/Contents {page_ids[i] + 1} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(out))))
    meta = {k: v for k, v in (("/Title", title), ("/Author", author)) if v}
    if meta or created:
        writer.add_metadata({**meta, "/CreationDate": created or "D:20240305120000Z"})
    if password:
        writer.encrypt(password, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_docx(path: Path, *, title: str | None, heading: str | None, paragraphs: list[str],
              author: str | None = None) -> Path:
    import docx

    d = docx.Document()
    if title is not None:
        d.core_properties.title = title
    d.core_properties.author = author or ""
    if heading:
        d.add_heading(heading, level=1)
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))
    return path


def news_page(title: str, paragraphs: list[str], *, author: str = "Jan de Vries", date: str = "2024-03-05",
              url: str = "https://nieuws.example/artikel") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>{title} | Nieuwsblad</title>
<meta property="og:title" content="{title}"><meta name="author" content="{author}">
<meta property="article:published_time" content="{date}T10:00:00Z"><link rel="canonical" href="{url}"></head><body>
<div id="cookie-banner" class="cookie-consent">Wij gebruiken cookies. Accepteer alle cookies om verder te gaan.</div>
<nav><ul><li><a href="/">Home</a></li><li><a href="/binnenland">Binnenland</a></li><li><a href="/buitenland">Buitenland</a></li></ul></nav>
<main><article><h1>{title}</h1><p class="byline">Door {author}</p>
{body}
</article>
<aside class="related"><h2>Lees ook</h2><ul><li><a href="/a">Zuid-Korea verhoogt paraatheid</a></li>
<li><a href="/b">Raket landt in Japanse zee</a></li></ul></aside></main>
<footer>Copyright Nieuwsblad 2024 - Privacy - Contact</footer></body></html>"""


NO_ARTICLE_PAGE = """<!doctype html><html><head><title>Home</title></head><body>
<div class="cookie-banner">Wij gebruiken cookies om de site te verbeteren. Accepteer alle cookies.</div>
<nav><ul><li><a href="/">Home</a></li><li><a href="/b">Binnenland</a></li><li><a href="/c">Buitenland</a></li></ul></nav>
<footer>Contact Privacy</footer></body></html>"""
