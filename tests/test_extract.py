"""Text extraction (txt, md, html, pdf, docx) and chunking, from files the tests make."""

from __future__ import annotations

import itertools
from pathlib import Path

import docx
import pytest

from app.errors import INVALID_PAYLOAD, AppError
from app.rag.chunking import chunk_pages, count_tokens
from app.rag.extract import (
    DOCX_TYPE,
    Page,
    content_type_for,
    extract_text,
    html_to_text,
    is_accepted,
)


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    count = len(pages)
    font_id = 3 + 2 * count
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(count)), count),
    ]
    for i, text in enumerate(pages):
        stream = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font_id)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref,
    )
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_text_and_markdown(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "\ufeffLine one\r\nLine two\r\n\r\n\r\n\r\nEnd".encode())
    assert extract_text("notes.txt", None, path) == [Page(None, "Line one\nLine two\n\nEnd")]
    md = write(tmp_path, "readme.md", b"# Title\n\nSome *markdown* text.\n")
    assert extract_text("readme.md", "text/markdown", md)[0].text == (
        "# Title\n\nSome *markdown* text."
    )
    legacy = write(tmp_path, "old.txt", "caf\u00e9 \u20ac5".encode("cp1252"))
    assert extract_text("old.txt", None, legacy)[0].text == "caf\u00e9 \u20ac5"


def test_html_drops_scripts_and_styles(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Doc</title><style>p {color: red}</style>"
        "<script>alert('x')</script></head><body><h1>Heading</h1>"
        "<p>First &amp; <b>bold</b>\n   paragraph.</p><noscript>enable js</noscript>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    path = write(tmp_path, "page.html", html.encode())
    text = extract_text("page.html", "text/html", path)[0].text
    assert text == "Doc\n\nHeading\n\nFirst & bold paragraph.\n\none\ntwo"
    assert "alert" not in html_to_text(html) and "color" not in html_to_text(html)


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "report.pdf", make_pdf(["Revenue grew in March.", "Costs fell."]))
    pages = extract_text("report.pdf", "application/pdf", path)
    assert [(p.number, p.text) for p in pages] == [
        (1, "Revenue grew in March."), (2, "Costs fell."),
    ]


@pytest.mark.parametrize(
    "data", [b"not a pdf at all", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", b""]
)
def test_corrupt_pdf_is_invalid_payload(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "broken.pdf", data)
    with pytest.raises(AppError) as caught:
        extract_text("broken.pdf", "application/pdf", path)
    assert caught.value.code == INVALID_PAYLOAD
    assert caught.value.message.startswith("could not read pdf: ")


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Quarterly plan", level=1)
    document.add_paragraph("Ship the retrieval feature.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Owner", "Task"
    table.cell(1, 0).text, table.cell(1, 1).text = "Ana", "Chunking"
    document.add_paragraph("Then celebrate.")
    path = tmp_path / "plan.docx"
    document.save(str(path))
    [page] = extract_text("plan.docx", DOCX_TYPE, path)
    assert page.number is None
    assert page.text == (
        "Quarterly plan\n\nShip the retrieval feature.\n\nOwner | Task\n\nAna | Chunking"
        "\n\nThen celebrate."
    )


def test_corrupt_docx_is_invalid_payload(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.docx", b"PK\x03\x04 truncated zip")
    with pytest.raises(AppError) as caught:
        extract_text("bad.docx", None, path)
    assert caught.value.code == INVALID_PAYLOAD
    assert "could not read docx" in caught.value.message


def test_unsupported_type(tmp_path: Path) -> None:
    path = write(tmp_path, "tool.exe", b"MZ")
    with pytest.raises(AppError) as caught:
        extract_text("tool.exe", "application/octet-stream", path)
    assert caught.value.code == INVALID_PAYLOAD
    assert "accepted: txt, md, html, pdf, docx" in caught.value.message
    assert not is_accepted("tool.exe", "application/x-msdownload")


def test_type_by_extension_then_content_type(tmp_path: Path) -> None:
    assert content_type_for("A.PDF") == "application/pdf"
    assert content_type_for("notes.md") == "text/markdown"
    assert content_type_for("x.docx") == DOCX_TYPE
    assert content_type_for("blob") == "application/octet-stream"
    assert is_accepted("upload", "text/plain; charset=utf-8")
    path = write(tmp_path, "upload", b"plain words")
    assert extract_text("upload", "text/plain; charset=utf-8", path)[0].text == "plain words"


def long_text(paragraphs: int) -> str:
    return "\n\n".join(
        " ".join(f"Paragraph {p} sentence {s} talks about topic {p * s}." for s in range(12))
        for p in range(paragraphs)
    )


def test_chunks_overlap_and_keep_pages() -> None:
    pages = [Page(1, long_text(6)), Page(2, ""), Page(3, "A short last page.")]
    chunks = chunk_pages(pages, max_tokens=120, overlap=30)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.page for c in chunks} == {1, 3}
    assert chunks[-1].page == 3 and chunks[-1].text == "A short last page."
    page_one = [c for c in chunks if c.page == 1]
    assert len(page_one) >= 4
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text) <= 120
    for before, after in itertools.pairwise(page_one):
        first_sentence = after.text.split(". ")[0]
        assert first_sentence in before.text  # the next chunk starts inside the last one
        assert count_tokens(first_sentence) <= 30
    words = set(long_text(6).split())
    assert words == set(" ".join(c.text for c in page_one).split())  # nothing lost


def test_chunks_prefer_paragraph_breaks() -> None:
    # Four paragraphs of ~60 tokens: filling chunks greedily would cut inside paragraphs.
    paragraph = " ".join(["Sentence about retrieval."] * 15)
    chunks = chunk_pages([Page(None, "\n\n".join([paragraph] * 4))], max_tokens=100, overlap=0)
    assert [c.text for c in chunks] == [paragraph] * 4


def test_oversized_sentences_are_split() -> None:
    text = "word " * 1000 + "x" * 3000
    chunks = chunk_pages([Page(7, text)], max_tokens=50, overlap=10)
    assert all(0 < c.tokens <= 50 for c in chunks)
    assert all(c.page == 7 for c in chunks)
    joined = "".join(c.text for c in chunks)
    assert joined.count("x") >= 3000


def test_chunking_arguments() -> None:
    assert chunk_pages([Page(None, "  \n\n ")]) == []
    with pytest.raises(ValueError):
        chunk_pages([], max_tokens=100, overlap=100)
    [only] = chunk_pages([Page(None, "Hello <|endoftext|> world.")])
    assert only.text == "Hello <|endoftext|> world."
