"""The media worker: a separate process that decodes untrusted images and videos.

Started by app/media/sandbox.py. One job per stdin line (JSON: kind, path, filename,
frames, cpu_seconds); each answer is a 4-byte big-endian length and a JSON body on its
original stdout. Its address space and CPU time are capped like the extraction worker's.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import IO, Any

import orjson

from app.errors import INVALID_PAYLOAD, PAYLOAD_TOO_LARGE, AppError
from app.llm.base import ImagePart
from app.media.images import prepare_image
from app.media.video import video_parts
from app.rag.sandbox_worker import limit_cpu, limit_memory


def _parts(images: list[ImagePart]) -> list[list[str]]:
    return [[p.media_type, base64.b64encode(p.data).decode("ascii")] for p in images]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Decode one file; the reply to send back."""
    data = Path(job["path"]).read_bytes()
    try:
        if job["kind"] == "image":
            return {"ok": True, "images": _parts([prepare_image(data, job["filename"])])}
        audio, frames = video_parts(data, job["filename"], int(job["frames"]))
        return {"ok": True, "images": _parts(frames),
                "audio": base64.b64encode(audio).decode("ascii") if audio else None}
    except AppError as exc:
        return {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        return {"ok": False, "code": PAYLOAD_TOO_LARGE,
                "message": f"{job['filename']}: decoding it needs too much memory"}
    except Exception as exc:  # a decoder failure: the file is not readable
        return {"ok": False, "code": INVALID_PAYLOAD,
                "message": f"{job['filename']}: could not read it ({type(exc).__name__})"}


def serve(jobs: IO[bytes], out: IO[bytes]) -> None:
    """Answer jobs until stdin closes."""
    for line in jobs:
        job = orjson.loads(line)
        limit_cpu(job["cpu_seconds"])
        reply = orjson.dumps(run_job(job))
        out.write(len(reply).to_bytes(4, "big") + reply)
        out.flush()


def main() -> None:
    """Entry point: `python -m app.media.sandbox_worker <memory_mb>`."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's print() goes to stderr, never into the replies
    limit_memory(int(sys.argv[1]))
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
