"""`make bench`'s cross-node run: one node with Redis, then two nodes sharing it.

Called by bench/run.py (`--only cross`). Besides server CPU per delivery it reports the
Redis hop as members see it (probe members in their own idle process, bench/probe.py),
the end-to-end latency beside it, and the floor of the two-node/one-node ratio
(bench/redis_cost.py: what receiving a publication costs a node).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from bench.run import ROOT, Row, Sizes, Stack, _us, load, parlour_config, start_parlour


def redis_cost(redis_url: str) -> dict[str, Any]:
    """bench/redis_cost.py: a node's CPU to publish and to receive one publication."""
    out = subprocess.run([sys.executable, "-m", "bench.redis_cost", redis_url], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cross_node(stack: Stack, sizes: Sizes, base: dict[str, Any], mongo_uri: str,
               stub_url: str, redis_url: str, log: Any) -> tuple[list[Row], dict[str, Any]]:
    """One node with Redis, then two nodes sharing it: the same room, load and probes.

    Two of the members are probes in their own idle process (bench/probe.py), one on the
    senders' node, one on the other: their arrival times give the Redis hop alone and
    the end-to-end latency, unskewed by the busy load generator.
    """
    log("cross-node")
    redis_pids = [p.pid for p in stack.procs if p.name == "redis"]
    spec = {**base, "scenario": "fanout", "target": "parlour", "probes": True,
            "members": sizes.cross_members, "senders": sizes.cross_senders,
            "redis_pids": redis_pids,
            "redis": {"url": redis_url, "channel": "parlour"}}
    one = start_parlour(stack, "r1", parlour_config(
        stack.tmp, "r1", mongo_uri, stub_url, redis_url))
    single = load({**spec, "urls": [one.url], "pids": [one.pid]})
    log(f"  fanout   1 node   {json.dumps(single)}")
    two = start_parlour(stack, "r2", parlour_config(
        stack.tmp, "r2", mongo_uri, stub_url, redis_url))
    result = load({**spec, "urls": [one.url, two.url], "pids": [one.pid, two.pid]})
    log(f"  fanout   2 nodes  {json.dumps(result)}")
    load_average = os.getloadavg()[0]  # latency on a busy machine is mostly its scheduler
    hop_cost = redis_cost(redis_url)
    log(f"  redis hop cost    {json.dumps(hop_cost)}")
    logs = [p.log.read_text(errors="replace") for p in (one, two)]
    errors = sum(text.count('"level":"ERROR"') for text in logs)
    publish_errors = sum(text.count("Cannot publish") for text in logs)
    stack.stop(two)
    stack.stop(one)
    # The floor: node 1 does all the one node did but 16 deliveries, node 2 does those 16
    # and receives each publication. At best (a delivery costs the same on either node)
    # the two cost one node's CPU per message plus one receive.
    per_msg = single["cpu_s"] / single["messages"] * 1e6
    floor = (per_msg + hop_cost["receive_us"]) / per_msg
    raw = {"one_node": single, "two_nodes": result, "error_lines": errors,
           "publish_errors": publish_errors, "redis_hop_cost": hop_cost,
           "one_node_cpu_per_msg_us": per_msg, "floor_ratio": floor,
           "load_average_1min": load_average}
    cost = result["cpu_per_delivery_us"] / single["cpu_per_delivery_us"]
    n1, n2 = result["node_cpu_s"]
    lost = result["probe_missing"] + result["probe_repeats"]
    clean = result["refused"] == 0 and errors == 0 and publish_errors == 0 and lost == 0
    return [
        Row(f"cross-node delivery through Redis, server CPU per delivery, two nodes / one "
            f"node, both with Redis ({sizes.cross_senders} in flight, {sizes.cross_members} "
            "members: senders on node 1, the rest on node 2)",
            f"{_us(result['cpu_per_delivery_us'])} vs {_us(single['cpu_per_delivery_us'])} "
            f"(node 1 {n1:.2f} s + node 2 {n2:.2f} s of CPU for {result['deliveries']} "
            f"deliveries, against {single['cpu_s']:.2f} s for {single['deliveries']}; "
            f"redis-server {result['redis_cpu_s']:.2f} s vs {single['redis_cpu_s']:.2f} s, "
            "not counted). Floor: one node's "
            f"{per_msg:.0f} µs per message + {hop_cost['receive_us']:.0f} µs for node 2 to "
            f"receive it from Redis (publishing: {hop_cost['publish_us']:.0f} µs, paid alike "
            f"by one node) = {floor:.2f}x",
            "—", f"{cost:.2f}x", "≤ 0.88x (kept)", cost <= 0.88 and clean),
        Row("cross-node hop, p99 at 64 in flight: arrival at a member on node 2 minus "
            "arrival of the same message at a member on node 1 (negative when node 1, busy "
            "with 64 senders, is the slower); and arrival on node 2 minus the publication "
            "reaching a Redis subscriber (node 2's share). Members and subscriber in one idle "
            "probe process",
            f"{result['hop_p99_ms']:.1f} ms (p50 {result['hop_p50_ms']:.1f} ms); after the "
            f"publication {result['after_publish_p99_ms']:.1f} ms (p50 "
            f"{result['after_publish_p50_ms']:.1f} ms); {result['probe_samples']} messages, "
            f"{result['probe_missing']} lost, {result['probe_repeats']} repeated, {errors} "
            f"error lines, {publish_errors} publish errors; machine load average "
            f"{load_average:.1f}",
            "—", "—", "≤ 20 ms",
            max(result["hop_p99_ms"], result["after_publish_p99_ms"]) <= 20 and clean),
        Row("cross-node end to end: send → arrival at a member on node 2 (p99); with "
            f"{sizes.cross_senders} always in flight a message waits in flight / throughput "
            "(Little's law), set by the database's rate",
            f"{result['e2e_p99_ms']:.1f} ms (p50 {result['e2e_p50_ms']:.1f} ms; "
            f"{sizes.cross_senders} / {result['msgs_per_s']:.0f} msg/s = "
            f"{result['queueing_ms']:.0f} ms; one node p99 {single['e2e_p99_ms']:.1f} ms)",
            "—", "—", "(context)", None),
    ], raw
