"""The extraction worker: a separate process that reads untrusted files (started by sandbox.py).

It reads one job per line on stdin (JSON) and answers each on its original stdout with a
4-byte big-endian length and a JSON body. Its address space is capped (RLIMIT_AS) once,
and before each job its CPU time is capped (RLIMIT_CPU) to what it used so far plus the
job's allowance; past that the kernel ends it with SIGXCPU. The server kills it on a
wall-clock timeout, a deleted document or shutdown. It exits when stdin closes.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from pathlib import Path
from typing import IO, Any

import orjson

from app.errors import INTERNAL, PAYLOAD_TOO_LARGE, AppError
from app.rag.chunking import split_chunks
from app.rag.extract import ExtractLimits, extract_text

MIB = 1024 * 1024


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space."""
    size = megabytes * MIB
    resource.setrlimit(resource.RLIMIT_AS, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def limit_cpu(seconds: float) -> None:
    """Allow `seconds` more CPU time from now (RLIMIT_CPU counts the whole process life)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


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


def serve(jobs: IO[bytes], out: IO[bytes]) -> None:
    """Answer jobs until stdin closes."""
    for line in jobs:
        job = orjson.loads(line)
        limit_cpu(job["cpu_seconds"])
        data = orjson.dumps(run_job(job))
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()


def main() -> None:
    """Entry point: `python -m app.rag.sandbox_worker <memory_mb>`."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's print() goes to stderr (nowhere), never into the replies
    limit_memory(int(sys.argv[1]))
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
