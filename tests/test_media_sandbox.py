"""Untrusted images and videos are decoded in capped worker processes, not in the server."""

from __future__ import annotations

import os

import pytest

from app.config import IngestSettings
from app.errors import AppError
from app.media.sandbox import MediaSandbox
from tests.media_fixtures import png, short_video


async def test_decoding_happens_in_a_worker_that_survives_bad_files() -> None:
    sandbox = MediaSandbox(IngestSettings(extract_memory_mb=512), size=1)
    try:
        part = await sandbox.image(png(3000, 100), "wide.png")
        assert part.media_type == "image/png"
        (worker,) = sandbox.pids()
        assert worker != os.getpid()
        with pytest.raises(AppError) as caught:
            await sandbox.image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "broken.png")
        assert caught.value.code == "invalid_payload" and "broken.png" in caught.value.message
        audio, frames = await sandbox.read(short_video(), "clip.mp4", 4)
        assert audio is not None and audio.startswith(b"RIFF") and len(frames) == 4
        assert sandbox.pids() == [worker]  # the same worker, kept for the next job
    finally:
        await sandbox.close()
    assert sandbox.pids() == []
