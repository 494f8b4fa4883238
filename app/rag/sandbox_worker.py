"""The extraction worker: a separate process that reads untrusted files (started by sandbox.py).

The loop, the protocol and the memory and CPU caps are app/worker_main.py's; this module
only reads and chunks one file per job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.errors import INTERNAL, PAYLOAD_TOO_LARGE, AppError
from app.rag.chunking import split_chunks
from app.rag.extract import ExtractLimits, extract_text
from app.worker_main import limit_cpu, limit_memory
from app.worker_main import main as worker_main

__all__ = ["limit_cpu", "limit_memory", "main", "run_job"]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Extract and chunk one file; the reply to send back."""
    limits = ExtractLimits(
        max_chars=job["max_chars"], max_zip_entries=job["max_zip_entries"],
        max_zip_bytes=job["max_zip_bytes"], max_zip_ratio=job["max_zip_ratio"],
    )
    try:
        pages = extract_text(job["filename"], job["content_type"], Path(job["path"]), limits)
        chunks = split_chunks(pages, job["chunk_tokens"], job["chunk_overlap"])
    except AppError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        return {"ok": False, "code": PAYLOAD_TOO_LARGE,
                "message": "reading it needs more memory than ingest.extract_memory_mb allows"}
    except RecursionError:
        return {"ok": False, "code": PAYLOAD_TOO_LARGE, "message": "too deeply nested to read"}
    except Exception as exc:  # an unexpected parser failure: the file is not readable
        return {"ok": False, "code": INTERNAL,
                "message": f"could not read it ({type(exc).__name__})"}
    return {"ok": True, "chunks": [[c.index, c.text, c.page, c.tokens] for c in chunks]}


def main() -> None:
    """Entry point: `python -m app.rag.sandbox_worker <memory_mb>`."""
    worker_main(run_job)


if __name__ == "__main__":
    main()
