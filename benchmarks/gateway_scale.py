"""The gateway at scale: passgate against the bare-proxy floor, three load shapes, N processes.

One run starts the fast upstream (``workers/demo/upstream.py``), then for each ``--processes``
count a bare proxy (``benchmarks/_bare_proxy.py`` under uvicorn with that many workers: no
framework, no key, no billing, one pooled httpx client) and ``passgate serve --workers N`` on
PostgreSQL + Redis, and measures, in alternating wrk rounds (floor, passgate, floor, ...):

- ``hot``: one key, ``--connections`` connections;
- ``fleet``: 200 agents of one platform with a fleet-wide daily spending limit, calls spread
  over their keys by a wrk lua script;
- ``many``: 200 independent keys (``/v1/keys`` signups), spread alike.

For each: calls/s (median of the rounds) and the ratio to the floor; CPU per call (utime +
stime of the server's processes, from ``/proc``, over the calls wrk counted); and latency at
one connection: the added p50 over the direct upstream of passgate and of the floor. The bare
proxy ignores the keys, so both see the same requests. Figures are printed and written to
``benchmarks/results/gateway_scale.json``. The default run (2 processes, 2 rounds of 8 s)
takes about two and a half minutes; ``--processes 1 2 4`` about seven.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import ROOT, free_port, require_wrk, write_result
from benchmarks.gateway_overhead import database, reachable, serve

SCENARIOS = ("hot", "fleet", "many")
SPREAD = 200
ADMIN_TOKEN = "adm_" + "b" * 40
USD = 1_000_000


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def server(cmd: list[str], probe: str, port: int, env: dict[str, str],
           log: Path | None = None) -> Iterator[int]:
    """Start ``cmd``; yield its pid once ``probe`` answers. Its stderr goes to ``log`` (wrk
    cutting connections at the end of a round makes servers complain)."""
    sink = log.open("ab") if log else None
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stderr=sink)
    try:
        _wait_up(f"http://127.0.0.1:{port}{probe}", proc)
        time.sleep(1.0)  # every worker process up, not only the first
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if sink:
            sink.close()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and every descendant, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        todo += _children(pid)
    return total / ticks


def lua_script(keys: list[str], workdir: Path) -> Path:
    """A wrk script sending each request with the next of ``keys``."""
    path = workdir / f"keys_{len(keys)}_{uuid.uuid4().hex[:6]}.lua"
    listed = ",\n".join(f'  "{k}"' for k in keys)
    path.write_text(
        f"local keys = {{\n{listed}\n}}\n"
        "local i = math.random(#keys)\n"
        "request = function()\n"
        "  i = i % #keys + 1\n"
        '  return wrk.format("GET", nil, {["X-API-Key"] = keys[i]})\n'
        "end\n"
    )
    return path


def run_wrk(url: str, seconds: float, connections: int, script: Path) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "-s", str(script),
           url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(label: str) -> float:
        found = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        return float(found.group(1)) * scale[found.group(2)] if found else float("nan")

    calls = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "calls": float(calls.group(1)) if calls else 0.0,
        "p50_ms": latency("50%"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def measured(url: str, pid: int, seconds: float, connections: int,
             script: Path) -> dict[str, float]:
    before = cpu_seconds(pid)
    result = run_wrk(url, seconds, connections, script)
    spent = cpu_seconds(pid) - before
    result["cpu_ms_per_call"] = 1000 * spent / max(result["calls"], 1.0)
    return result


def provision(base: str) -> dict[str, list[str]]:
    """The keys of each scenario, made through the public and admin APIs."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        def signup() -> str:
            response = http.post("/v1/keys", json={"email": f"{uuid.uuid4().hex[:10]}@bench.io"})
            response.raise_for_status()
            return str(response.json()["api_key"])

        platform = http.post("/admin/v1/platforms", json={"name": "bench fleet"}, headers=admin)
        platform.raise_for_status()
        master = {"X-Master-Key": platform.json()["masterKey"]}
        http.put("/v1/platform/spending-limit", json={"dailyLimitMicros": 10**15},
                 headers=master).raise_for_status()
        fleet: list[str] = []
        for n in range(SPREAD):
            agent = http.post("/v1/platform/agents", json={"name": f"bench-{n}"}, headers=master)
            agent.raise_for_status()
            body = agent.json()
            http.post("/admin/v1/credits/adjustments", headers=admin,
                      json={"agentId": body["agent"]["id"], "amountMicros": 10**8 * USD,
                            "reason": "benchmark"}).raise_for_status()
            fleet.append(str(body["api_key"] if "api_key" in body else body["apiKey"]))
        return {"hot": [signup()], "fleet": fleet, "many": [signup() for _ in range(SPREAD)]}


def passgate_env(url: str, upstream: str, prefix: str) -> dict[str, str]:
    return {
        "PASSGATE_DATABASE_URL": url,
        "PASSGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PASSGATE_REDIS_PREFIX": prefix,
        "PASSGATE_KEY_PEPPER": "bench-pepper-" + prefix,
        "PASSGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PASSGATE_STARTER_CREDITS_MICROS": str(10**8 * USD),
        "PASSGATE_PLAN_FREE_PER_MINUTE": str(10**8),
        "PASSGATE_SIGNUP_PER_MINUTE": str(10**6),
        "PASSGATE_SIGNUP_PER_DAY": str(10**6),
        "PASSGATE_CREDITS_LOW_THRESHOLD_MICROS": "0",
        "PASSGATE_LOG_LEVEL": "WARNING",
        "PASSGATE_ACCESS_LOG": "false",
        "PASSGATE_PROVIDERS": json.dumps([{"name": "bench", "base_url": upstream,
                                           "price_micros": 1,
                                           "headers": {"Authorization": "Bearer sk-bench"}}]),
    }


def one_count(processes: int, args: argparse.Namespace, env: dict[str, str], upstream: str,
              scripts: dict[str, Path], workdir: Path) -> dict[str, Any]:
    python = sys.executable
    bare_port, gate_port = free_port(), free_port()
    bare_cmd = [python, "-m", "uvicorn", "benchmarks._bare_proxy:app", "--host", "127.0.0.1",
                "--port", str(bare_port), "--workers", str(processes), "--log-level", "warning",
                "--no-access-log"]
    gate_cmd = [python, "-m", "workers.cli", "serve", "--host", "127.0.0.1", "--port",
                str(gate_port), "--workers", str(processes)]
    bare_url = f"http://127.0.0.1:{bare_port}/v1/ping"
    gate_url = f"http://127.0.0.1:{gate_port}/v1/gateway/bench/v1/ping"
    direct_url = f"{upstream}/v1/ping"
    figures: dict[str, Any] = {}
    with (
        server(bare_cmd, "/ping", bare_port, {"BARE_PROXY_UPSTREAM": upstream,
                                              "BARE_PROXY_SHARDS": str(args.floor_shards)},
               workdir / "bare.log") as bare_pid,
        server(gate_cmd, "/v1/health/live", gate_port, env, workdir / "passgate.log") as gate_pid,
    ):
        for scenario in SCENARIOS:
            script = scripts[scenario]
            # Warm-up: every key seen once by the gateway, connections open (and, with
            # --warmup, leases past their first sizes).
            run_wrk(gate_url, args.warmup, args.connections, script)
            run_wrk(bare_url, 1, args.connections, script)
            floor, gate = [], []
            for _ in range(args.rounds):
                floor.append(measured(bare_url, bare_pid, args.seconds, args.connections, script))
                gate.append(measured(gate_url, gate_pid, args.seconds, args.connections, script))
            lat_direct = run_wrk(direct_url, args.latency_seconds, 1, script)["p50_ms"]
            lat_floor = run_wrk(bare_url, args.latency_seconds, 1, script)["p50_ms"]
            lat_gate = run_wrk(gate_url, args.latency_seconds, 1, script)["p50_ms"]
            floor_rps = statistics.median(r["rps"] for r in floor)
            gate_rps = statistics.median(r["rps"] for r in gate)
            floor_added = lat_floor - lat_direct
            gate_added = lat_gate - lat_direct
            figures[scenario] = {
                "floor_rps": round(floor_rps, 1),
                "passgate_rps": round(gate_rps, 1),
                "ratio": round(gate_rps / floor_rps, 3),
                "ratios_by_round": [round(g["rps"] / f["rps"], 3)
                                    for f, g in zip(floor, gate, strict=True)],
                "floor_cpu_ms_per_call": round(statistics.median(
                    r["cpu_ms_per_call"] for r in floor), 3),
                "passgate_cpu_ms_per_call": round(statistics.median(
                    r["cpu_ms_per_call"] for r in gate), 3),
                "floor_added_p50_ms": round(floor_added, 3),
                "passgate_added_p50_ms": round(gate_added, 3),
                "added_p50_vs_floor": round(gate_added / floor_added, 2)
                if floor_added > 0 else None,
                "passgate_non_2xx": sum(r["non_2xx"] for r in gate),
            }
            row = figures[scenario]
            print(f"  P={processes} {scenario:>5}: floor {row['floor_rps']:>7} /s, passgate "
                  f"{row['passgate_rps']:>7} /s, ratio {row['ratio']} {row['ratios_by_round']}; "
                  f"CPU/call {row['passgate_cpu_ms_per_call']} vs "
                  f"{row['floor_cpu_ms_per_call']} ms; added p50 "
                  f"{row['passgate_added_p50_ms']} vs {row['floor_added_p50_ms']} ms "
                  f"(x{row['added_p50_vs_floor']}); non-2xx {row['passgate_non_2xx']:.0f}",
                  flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--latency-seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of calls before each scenario's rounds (credit leases "
                        "grow from 8 calls over their first ~30 s: 40 measures steady state)")
    parser.add_argument("--label", default="", help="a note stored with the figures")
    parser.add_argument("--floor-shards", type=int, default=1,
                        help="pooled clients of the bare proxy, taken in turn (passgate: 8)")
    parser.add_argument("--leases", action="store_true",
                        help="pay calls from credit leases (PASSGATE_GATEWAY_CREDIT_LEASES)")
    args = parser.parse_args()
    require_wrk()
    if not (reachable(5432) and reachable(6379)):
        print("skipped: needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
        return

    workdir = Path(tempfile.mkdtemp(prefix="passgate-scale-"))
    prefix = f"gwscale:{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {"label": args.label, "cpus": os.cpu_count(),
                               "rounds": args.rounds, "seconds": args.seconds,
                               "connections": args.connections, "leases": args.leases,
                               "warmup": args.warmup,
                               "floor_shards": args.floor_shards,
                               "by_processes": {}}
    with database("postgres") as url, serve("workers.demo.upstream:app", "/ping") as upstream:
        env = passgate_env(url, upstream, prefix)
        env["PASSGATE_GATEWAY_CREDIT_LEASES"] = "true" if args.leases else "false"
        port = free_port()
        setup_cmd = [sys.executable, "-m", "workers.cli", "serve", "--host", "127.0.0.1",
                     "--port", str(port)]
        with server(setup_cmd, "/v1/health/live", port, env):
            keys = provision(f"http://127.0.0.1:{port}")
        scripts = {name: lua_script(keys[name], workdir) for name in SCENARIOS}
        for processes in args.processes:
            results["by_processes"][str(processes)] = one_count(
                processes, args, env, upstream, scripts, workdir)
    print(f"server logs in {workdir}")
    print(f"written to {write_result('gateway_scale', results)}")


if __name__ == "__main__":
    main()
