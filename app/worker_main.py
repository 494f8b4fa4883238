"""The child loop of a sandbox worker (started by app/workers.py).

It reads one job per line on stdin (JSON) and answers each on its original stdout with a
4-byte big-endian length and a JSON body. Its address space is capped (RLIMIT_AS) once,
and before each job its CPU time is capped (RLIMIT_CPU) to what it used so far plus the
job's `cpu_seconds`; past that the kernel ends it with SIGXCPU. The server kills it on a
wall-clock timeout, a cancelled job or shutdown. It exits when stdin closes.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Callable
from typing import IO, Any

import orjson

MIB = 1024 * 1024

Job = Callable[[dict[str, Any]], dict[str, Any]]


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


def serve(run_job: Job, jobs: IO[bytes], out: IO[bytes]) -> None:
    """Answer jobs with `run_job` until stdin closes."""
    for line in jobs:
        job = orjson.loads(line)
        limit_cpu(job["cpu_seconds"])
        data = orjson.dumps(run_job(job))
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()


def main(run_job: Job) -> None:
    """A worker's entry point: `python -m <its module> <memory_mb>`."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's print() goes to stderr (nowhere), never into the replies
    limit_memory(int(sys.argv[1]))
    serve(run_job, sys.stdin.buffer, out)
