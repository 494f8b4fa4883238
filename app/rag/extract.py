"""Text out of uploaded files (txt, md, html, pdf, docx); sync, run in the extraction sandbox."""

from __future__ import annotations

import mimetypes
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from app.errors import INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError

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


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Caps on what one file may cost to read (see the [ingest] settings)."""

    max_chars: int = 5_000_000
    max_zip_entries: int = 2000
    max_zip_bytes: int = 200 * 1024 * 1024
    max_zip_ratio: float = 100.0


# An entry smaller than this may compress as well as it likes (empty XML parts do).
ZIP_RATIO_FLOOR = 1024 * 1024


def check_zip(path: Path, limits: ExtractLimits, what: str) -> None:
    """Refuse a zip-based file by its directory, before any entry is decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AppError(INVALID_PAYLOAD, f"could not read {what}: {exc}") from exc
    if len(entries) > limits.max_zip_entries:
        raise AppError(
            PAYLOAD_TOO_LARGE,
            f"{what}: {len(entries)} entries in the archive, at most {limits.max_zip_entries} "
            "(ingest.max_zip_entries)",
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_zip_bytes:
        raise AppError(
            PAYLOAD_TOO_LARGE,
            f"{what}: {total / 2**20:.0f} MB uncompressed, at most "
            f"{limits.max_zip_bytes / 2**20:g} MB (ingest.max_zip_uncompressed_mb)",
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > ZIP_RATIO_FLOOR and ratio > limits.max_zip_ratio:
            raise AppError(
                PAYLOAD_TOO_LARGE,
                f"{what}: {entry.filename[:80]} expands {ratio:.0f} times, at most "
                f"{limits.max_zip_ratio:g} (ingest.max_zip_ratio)",
            )


def _too_much_text(chars: int, limits: ExtractLimits) -> AppError:
    return AppError(
        PAYLOAD_TOO_LARGE,
        f"too much text to index (over {limits.max_chars} characters; "
        "ingest.max_extracted_chars)",
    )


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


def extract_text(
    filename: str, content_type: str | None, data_path: Path,
    limits: ExtractLimits | None = None,
) -> list[Page]:
    """The text of the file at `data_path`; invalid_payload if unsupported or unreadable.

    Over a limit (text, archive size or ratio) is `payload_too_large`. Run it in the
    extraction sandbox (app.rag.sandbox), never in the server's process.
    """
    limits = limits or ExtractLimits()
    kind = document_kind(filename, content_type)
    if kind == "text":
        pages = [Page(None, _tidy(decode_text(data_path.read_bytes())))]
    elif kind == "html":
        pages = [Page(None, html_to_text(decode_text(data_path.read_bytes())))]
    elif kind == "pdf":
        pages = _pdf_pages(data_path, limits)
    elif kind == "docx":
        check_zip(data_path, limits, "docx")
        pages = [Page(None, _docx_text(data_path))]
    else:
        raise AppError(INVALID_PAYLOAD, UNSUPPORTED.format(name=filename))
    chars = sum(len(page.text) for page in pages)
    if chars > limits.max_chars:
        raise _too_much_text(chars, limits)
    return pages


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


def _pdf_pages(path: Path, limits: ExtractLimits) -> list[Page]:
    from pypdf import PdfReader

    # pypdf raises many exception types on malformed input (its own, ValueError,
    # KeyError, struct errors...); any of them means the upload is not a readable PDF.
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise AppError(INVALID_PAYLOAD, "could not read pdf: it is password-protected")
        pages: list[Page] = []
        chars = 0
        for number, page in enumerate(reader.pages, start=1):
            pages.append(Page(number, _tidy(page.extract_text() or "")))
            chars += len(pages[-1].text)
            if chars > limits.max_chars:  # stop reading: the rest cannot be indexed
                raise _too_much_text(chars, limits)
        return pages
    except (AppError, MemoryError):
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
    except MemoryError:
        raise
    except Exception as exc:  # a corrupt zip or XML surfaces as many exception types
        raise AppError(INVALID_PAYLOAD, f"could not read docx: {exc}") from exc
    return _tidy("\n\n".join(block for block in blocks if block.strip()))
