"""Text out of uploaded files (txt, md, html, pdf, docx); sync, run it in an executor."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from app.errors import INVALID_PAYLOAD, AppError

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# extension -> (kind, content type)
ACCEPTED_EXTENSIONS: dict[str, tuple[str, str]] = {
    ".txt": ("text", "text/plain"),
    ".text": ("text", "text/plain"),
    ".md": ("text", "text/markdown"),
    ".markdown": ("text", "text/markdown"),
    ".html": ("html", "text/html"),
    ".htm": ("html", "text/html"),
    ".pdf": ("pdf", "application/pdf"),
    ".docx": ("docx", DOCX_TYPE),
}
_KIND_BY_TYPE = {
    "text/plain": "text", "text/markdown": "text", "text/x-markdown": "text",
    "text/html": "html", "application/xhtml+xml": "html",
    "application/pdf": "pdf", DOCX_TYPE: "docx",
}
UNSUPPORTED = "unsupported file type {name!r}; accepted: txt, md, html, pdf, docx"


@dataclass(slots=True)
class Page:
    """Extracted text; `number` is the 1-based page for paginated formats, else None."""

    number: int | None
    text: str


def content_type_for(filename: str) -> str:
    """The content type to store for `filename`, judged by its extension."""
    ext = Path(filename).suffix.lower()
    if ext in ACCEPTED_EXTENSIONS:
        return ACCEPTED_EXTENSIONS[ext][1]
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def document_kind(filename: str, content_type: str | None) -> str | None:
    """'text', 'html', 'pdf' or 'docx' by extension, else by content type; None if neither."""
    ext = Path(filename).suffix.lower()
    if ext in ACCEPTED_EXTENSIONS:
        return ACCEPTED_EXTENSIONS[ext][0]
    if content_type:
        return _KIND_BY_TYPE.get(content_type.split(";")[0].strip().lower())
    return None


def is_accepted(filename: str, content_type: str | None = None) -> bool:
    """Whether `extract_text` can read this file."""
    return document_kind(filename, content_type) is not None


def extract_text(filename: str, content_type: str | None, data_path: Path) -> list[Page]:
    """The text of the file at `data_path`; invalid_payload if unsupported or unreadable."""
    kind = document_kind(filename, content_type)
    if kind == "text":
        return [Page(None, _tidy(decode_text(data_path.read_bytes())))]
    if kind == "html":
        return [Page(None, html_to_text(decode_text(data_path.read_bytes())))]
    if kind == "pdf":
        return _pdf_pages(data_path)
    if kind == "docx":
        return [Page(None, _docx_text(data_path))]
    raise AppError(INVALID_PAYLOAD, UNSUPPORTED.format(name=filename))


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 with replacement characters."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_SKIPPED_TAGS = {"script", "style", "noscript", "template", "svg"}
# Tags that make a paragraph (a blank line around them) or start a new line.
_PARAGRAPH_TAGS = {
    "p", "div", "table", "section", "article", "header", "footer", "h1", "h2", "h3", "h4",
    "h5", "h6", "pre", "blockquote", "title", "hr", "ul", "ol", "dl", "main", "nav", "aside",
    "figure",
}
_LINE_TAGS = {"br", "li", "tr", "dt", "dd", "figcaption"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._pre_depth += tag == "pre"
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag in _LINE_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # Source line breaks are just spaces in HTML, except inside <pre>.
            self.parts.append(data if self._pre_depth else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: scripts and styles dropped, blocks on new lines."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(collector.parts).split("\n"))
    return _tidy("\n".join(lines))


def _pdf_pages(path: Path) -> list[Page]:
    from pypdf import PdfReader

    # pypdf raises many exception types on malformed input (its own, ValueError,
    # KeyError, struct errors...); any of them means the upload is not a readable PDF.
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise AppError(INVALID_PAYLOAD, "could not read pdf: it is password-protected")
        return [
            Page(number, _tidy(page.extract_text() or ""))
            for number, page in enumerate(reader.pages, start=1)
        ]
    except AppError:
        raise
    except Exception as exc:
        raise AppError(INVALID_PAYLOAD, f"could not read pdf: {exc}") from exc


def _docx_text(path: Path) -> str:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(path))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    blocks.append(" | ".join(cell for cell in cells if cell))
            else:
                blocks.append(block.text)
    except Exception as exc:  # a corrupt zip or XML surfaces as many exception types
        raise AppError(INVALID_PAYLOAD, f"could not read docx: {exc}") from exc
    return _tidy("\n\n".join(block for block in blocks if block.strip()))
