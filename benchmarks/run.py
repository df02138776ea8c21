"""Start-up and scale of ftctl, measured as a user meets it: whole processes, repeated runs, each
printed with its spread (min/median/max), its absolute time and its ratio to ``python -c pass``
measured in the same run (so a busy or slow machine moves both sides). Peak memory is the child's
max RSS.

Budgets are checked against the quiet floor: the fastest of many ``python -c pass`` runs, set
against each case's fastest run (the run the load disturbed least), so a pass does not depend on
what else the machine is doing; a fixed CPU-bound reference workload, timed the same way, says how
fast the machine is. A case over its budget prints OVER and the script exits 1.

    python benchmarks/run.py            # the full table (a few minutes: it builds large jobs first)
    python benchmarks/run.py --quick    # fewer repeats, the small cases only
    python benchmarks/run.py --check-mib 256   # `files check` on a 256 MiB file (default 1024; quick 64)
    python benchmarks/run.py --hostile  # only the hostile-server figures (issue 11)

It writes the table to ``benchmarks/RESULTS.md`` (with the machine and its load) and prints it. It
is not a test: the test suite asserts no timing; this script is where budgets are checked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
# The console script users run, from this interpreter's environment (else `python -m ftctl`).
_SCRIPT = Path(sys.executable).parent / "ftctl"
FTCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ftctl"]
MODEL = "Qwen/Qwen3.5-9B"  # one of the catalogue's models: the simulator refuses others, as the API does


@dataclass
class Case:
    name: str
    argv: list[str]
    budget: float | None  # ratio to `python -c pass` (the quiet floor)
    memory_budget_mib: float | None = None
    env: dict[str, str] | None = None
    size_bytes: int | None = None  # the input it reads, for a throughput figure
    repeat: int | None = None  # fewer runs for the long cases
    raw: bool = False  # argv is a whole command (e.g. cp, for comparison), not ftctl's arguments
    seconds_budget: float | None = None  # an absolute budget (metrics --plot: a person waits for it)


@dataclass
class Measured:
    case: Case
    runs: list[float]  # wall seconds of each run
    peak_mib: float
    cpu_ms: float  # user + system time of the child (what a loaded machine does not inflate much)
    floor: float  # seconds: the quiet floor this run's ratios are to

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def ratio(self) -> float:
        """The budgeted ratio: the fastest run against the fastest `python -c pass`."""
        return self.best / self.floor

    @property
    def spread(self) -> str:
        return f"{min(self.runs) * 1000:.0f} / {self.median_ms:.0f} / {max(self.runs) * 1000:.0f} ms"

    @property
    def throughput(self) -> str:
        if not self.case.size_bytes:
            return ""
        mb = self.case.size_bytes / 1e6
        return f" ({mb / (self.median_ms / 1000):.0f} MB/s; {mb / (self.cpu_ms / 1000):.0f} MB per CPU-second)"

    @property
    def verdict(self) -> str:
        c = self.case
        ok = ((c.budget is None or self.ratio <= c.budget)
              and (c.memory_budget_mib is None or self.peak_mib <= c.memory_budget_mib)
              and (c.seconds_budget is None or self.best <= c.seconds_budget))
        return "ok" if ok else "OVER"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one run of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}\n{err}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # Linux reports KiB


def runs_of(argv: list[str], env: dict[str, str], repeat: int) -> tuple[list[float], float, float]:
    """Each run's wall seconds, the peak RSS and the median CPU seconds; one warm-up run first."""
    timed(argv, env)  # warm the file cache (and ftctl's help cache); not counted
    runs = [timed(argv, env) for _ in range(repeat)]
    return [t for t, _, _ in runs], max(m for _, m, _ in runs), statistics.median(c for _, _, c in runs)


# A fixed CPU-bound workload: how fast this machine is, independent of Python's start-up.
REFERENCE = "s = 0\nfor i in range(3_000_000): s += i * i % 7"


@dataclass
class Floors:
    quiet: float  # the fastest of many `python -c pass` runs: the floor budgets are checked against
    median: float  # their median: the floor a loaded machine gives
    spread: str
    reference: float  # the fastest run of REFERENCE, seconds


def floors(env: dict[str, str], runs: int) -> Floors:
    passes, _, _ = runs_of([sys.executable, "-c", "pass"], env, runs)
    reference, _, _ = runs_of([sys.executable, "-c", REFERENCE], env, 5)
    return Floors(min(passes), statistics.median(passes),
                  f"{min(passes) * 1000:.1f} / {statistics.median(passes) * 1000:.1f} / {max(passes) * 1000:.1f} ms",
                  min(reference))


def ftctl(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(FTCTL + list(args), env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"setup failed: ftctl {' '.join(args)}\n{out.stderr}")
    return out.stdout.strip()


def scenario(path: Path, values: list[float], steps_per_epoch: int) -> Path:
    path.write_text(json.dumps({"eval_loss": values, "steps_per_epoch": steps_per_epoch}))
    return path


def falling_then_flat(n: int) -> list[float]:
    """A realistic long history: a fall, a plateau with small wiggles, a late rise."""
    import math
    import random

    rng = random.Random(n)
    return [round(0.5 + 1.7 * math.exp(-6 * i / n) + 0.4 * max(0.0, i / n - 0.8) ** 2 + rng.gauss(0, 0.002), 6)
            for i in range(1, n + 1)]


def create(env: dict[str, str], tmp: Path, *args: str) -> str:
    return ftctl(env, "create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "-q", *args)


def conversations_file(path: Path, size_mib: int) -> tuple[int, int]:
    """A realistic conversational training file of about ``size_mib`` MiB (a block of 2,000 varied
    conversations, repeated): (bytes, examples)."""
    import random

    rng = random.Random(7)
    words = ("the model learns from examples and each answer should be short clear and correct when a user "
             "asks about data files tokens steps batch epoch loss").split()

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

    rows = []
    for _ in range(2000):
        messages = [{"role": "system", "content": "You are a concise assistant."}]
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": sentence(rng.randint(8, 30))})
            messages.append({"role": "assistant",
                             "content": " ".join(sentence(rng.randint(8, 25)) for _ in range(rng.randint(1, 4)))})
        rows.append(json.dumps({"messages": messages}) + "\n")
    block = "".join(rows).encode()
    copies = max(1, size_mib * 2**20 // len(block))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(block)
    return copies * len(block), copies * len(rows)


def build_cases(env: dict[str, str], tmp: Path, quick: bool, check_mib: int) -> tuple[list[Case], dict[str, str]]:
    """The cases, and the jobs made for them by size ("10", "1000", ...), for the side-by-side."""
    small = create(env, tmp, "--n-epochs", "5", "--n-evals", "10", "--early-stopping")
    jobs = {"10": small}
    cases = [
        Case("ftctl --version", ["--version"], 8),
        Case("ftctl --help", ["--help"], 8),
        Case("ftctl create --help", ["create", "--help"], 8),
        Case("TAB completion round-trip (ftctl retrieve ft-<TAB>)", [], 8,
             env={"_FTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "ftctl retrieve ft-", "COMP_CWORD": "2"}),
        Case("ftctl retrieve ID --json (simulator)", ["retrieve", small, "--json"], 6),
        Case("ftctl list --json (simulator, a few jobs)", ["list", "--json"], None),
    ]
    data = tmp / "train.jsonl"
    size, examples = conversations_file(data, check_mib)
    cases.append(Case(f"ftctl files check ({size / 2**20:,.0f} MiB JSONL, {examples:,} conversations)",
                      ["files", "check", str(data)], None, 64, size_bytes=size, repeat=3))
    sizes = [1_000] if quick else [1_000, 10_000, 100_000]
    large: list[str] = []
    for n in sizes:
        # early stopping on, patience wide enough that the whole history is recorded
        job = create(env, tmp, "--n-evals", str(n), "--early-stopping", "--patience", str(n // 2),
                     "--sim-scenario", str(scenario(tmp / f"curve-{n}.json", falling_then_flat(n), n)))
        jobs[str(n)] = job
        big = n == 100_000
        cases.append(Case(f"ftctl metrics ID ({n:,} evaluations, chart + explanation)", ["metrics", job],
                          25 if big else None, 60 if big else None))
        if n == sizes[-1]:
            large = [job, create(env, tmp, "--n-evals", str(n), "--early-stopping", "--patience", "3",
                                 "--sim-scenario", str(tmp / f"curve-{n}.json"))]
    cases.append(Case(f"ftctl report ID --format markdown ({sizes[-1]:,} evaluations and events)",
                      ["report", large[0], "--format", "markdown"], 60 if not quick else None, 150))
    cases.append(Case(f"ftctl compare ID ID ({sizes[-1]:,} evaluations each)", ["compare", *large],
                      60 if not quick else None, 200))
    if importlib.util.find_spec("matplotlib") is not None:
        cases.append(Case("ftctl metrics ID --plot chart.png (1,000 evaluations)",
                          ["metrics", jobs["1000"], "--plot", str(tmp / "chart.png")], None,
                          seconds_budget=1.0, repeat=3))
    if not quick:
        many_events = create(env, tmp, "--n-evals", "100000", "--early-stopping", "--sim-scenario", "improving")
        cases.append(Case("ftctl events ID --json (100,000 events)", ["events", many_events, "--json"], 25, 60))
        # 400,000 steps: the simulated account's credit limit ($1,000) refuses a dearer job, as the API would
        big = scenario(tmp / "big.json", falling_then_flat(10_000), 400_000)
        cases.append(Case("simulate 400,000 steps / 10,000 evaluations to completion (create)",
                          ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "10000", "--early-stopping",
                           "--patience", "5000", "--sim-scenario", str(big), "-q"], 40))
        big_job = create(env, tmp, "--n-evals", "10000", "--early-stopping", "--patience", "5000",
                         "--sim-scenario", str(big))
        cases.append(Case("... and retrieved (ftctl retrieve ID --json)", ["retrieve", big_job, "--json"], 40))
    return cases, jobs


def start_server(env: dict[str, str], tmp: Path, archive_bytes: int) -> tuple[subprocess.Popen, str]:
    """``ftctl sim serve`` on a free loopback port, serving archives of about ``archive_bytes``."""
    proc = subprocess.Popen(FTCTL + ["sim", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**env, "FTCTL_SIM_ARCHIVE_BYTES": str(archive_bytes)})
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("ftctl sim serve did not start")
    return proc, url


def download_cases(env: dict[str, str], tmp: Path, url: str) -> list[Case]:
    """``ftctl download`` through sim serve on loopback, next to ``cp`` of the same bytes."""
    job = create(env, tmp, "--n-epochs", "5", "--n-evals", "10", "--early-stopping")
    api = {"TOGETHER_API_KEY": "bench-key"}
    first = tmp / "first.tar.zst"
    subprocess.run(FTCTL + ["download", job, "-o", str(first), "--backend", "together", "--base-url", url],
                   env={**env, **api}, check=True, capture_output=True)
    size = first.stat().st_size / 2**20
    return [
        Case(f"ftctl download ID ({size:.0f} MiB archive, sim serve on loopback)",
             ["download", job, "-o", str(tmp / "again.tar.zst"), "--force", "--backend", "together",
              "--base-url", url], None, 100, env=api),
        Case(f"... cp of the same {size:.0f} MiB (for comparison)", ["cp", str(first), str(tmp / "copy.tar.zst")],
             None, raw=True),
    ]


def upload_rows(env: dict[str, str], tmp: Path, data: Path, repeat: int, floor: float) -> list[Measured]:
    """``ftctl files upload`` of ``data`` through sim serve on loopback (``--no-check``: the transfer;
    the offline check has its own row), next to ``cp`` of the same bytes. The uploaded file is
    deleted after each run, untimed, so that every run sends the bytes (identical bytes already
    there are not sent again). The server runs at the simulator's own speed, not an infinite one:
    its processing of the file (the dataset check) then comes after the answer, as the API's does,
    instead of inside ``preprocess``."""
    with served({k: v for k, v in env.items() if k != "FTCTL_SIM_SPEED"}) as url:
        return _upload_rows(env, tmp, url, data, repeat, floor)


def _upload_rows(env: dict[str, str], tmp: Path, url: str, data: Path, repeat: int, floor: float) -> list[Measured]:
    api = {**env, "TOGETHER_API_KEY": "bench-key"}
    remote = ["--backend", "together", "--base-url", url]
    argv = FTCTL + ["files", "upload", str(data), "--no-check", "-q", *remote]
    runs, peaks, cpus = [], [], []
    for attempt in range(repeat + 1):  # the first warms the caches, not counted
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=api)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        file_id = proc.stdout.read().decode().strip()
        if os.waitstatus_to_exitcode(status) != 0 or not file_id:
            raise SystemExit(f"benchmark upload failed: {proc.stderr.read().decode()}")
        subprocess.run(FTCTL + ["files", "delete", file_id, "--yes", *remote], env=api, check=True,
                       capture_output=True)
        if attempt:
            runs.append(elapsed)
            peaks.append(usage.ru_maxrss / 1024)
            cpus.append(usage.ru_utime + usage.ru_stime)
    size = data.stat().st_size
    upload = Measured(Case(f"ftctl files upload ({size / 2**20:,.0f} MiB, --no-check, sim serve on loopback)",
                           argv, None, 100, size_bytes=size), runs, max(peaks), statistics.median(cpus) * 1000, floor)
    copy_runs, copy_peak, copy_cpu = runs_of(["cp", str(data), str(tmp / "copied.jsonl")], env, repeat)
    copy = Measured(Case(f"... cp of the same {size / 2**20:,.0f} MiB (for comparison)", [], None, raw=True,
                         size_bytes=size), copy_runs, copy_peak, copy_cpu * 1000, floor)
    return [upload, copy]


def wait_cpu_per_poll(env: dict[str, str], tmp: Path, jobs: int = 20, rounds: int = 10) -> str:
    """``ftctl wait`` on ``jobs`` running jobs for ``rounds`` polls of each: the process's CPU time
    (user + system) per round and per job poll, start-up included once."""
    slow = {**env, "FTCTL_SIM_SPEED": "0.001"}  # they stay running for the whole wait
    ids = [create(slow, tmp, "--n-evals", "10", "--early-stopping") for _ in range(jobs)]
    interval = 0.2
    argv = FTCTL + ["wait", *ids, "--interval", str(interval), "--timeout", str(interval * (rounds - 1))]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 3:
        raise SystemExit(f"benchmark wait did not time out as planned: {' '.join(argv)}")
    cpu = usage.ru_utime + usage.ru_stime
    return (f"`ftctl wait` on {jobs} running jobs, {rounds} polls of each: {cpu * 1000:.0f} ms of CPU in all, "
            f"{cpu * 1000 / rounds:.0f} ms per round, {cpu * 1000 / rounds / jobs:.1f} ms per job poll "
            "(start-up counted once).")


def fill_store(home: Path, count: int) -> None:
    """Put ``count`` jobs in the simulator's store directly (through the Simulator, in one process)."""
    code = (
        "import sys; from pathlib import Path\n"
        "from ftctl.backends.simulator.backend import Simulator\n"
        "from ftctl.create_request import CreateOptions, build_body\n"
        "sim = Simulator(Path(sys.argv[1]), speed=float('inf'))\n"
        f"body = build_body(CreateOptions(training_file='file-train', validation_file='file-val', model={MODEL!r}, n_evals=10,"
        " n_epochs=3, early_stopping=True))\n"
        "for _ in range(int(sys.argv[2])): sim.create(dict(body))\n")
    subprocess.run([sys.executable, "-c", code, str(home), str(count)], check=True)


GIB = 1024 ** 3


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the process's peak resident set so far
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_large_bodies(env: dict[str, str]) -> list[str]:
    """``ftctl sim serve``'s peak RSS while a client sends it a 1 GiB body: declared up front
    (Content-Length) and streamed chunked (no length), generated on the fly and bounded (the client
    stops at 1 GiB, at the server's answer, or after 120 s). Rows of a markdown table."""
    import selectors
    import socket
    import threading
    from urllib.parse import urlsplit

    if not Path("/proc/self/status").exists():
        return ["| (needs /proc to read a process's peak RSS) | | | | |"]
    proc = subprocess.Popen(FTCTL + ["sim", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    rows = []
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            raise RuntimeError("ftctl sim serve did not print its URL")
        url = urlsplit(proc.stdout.readline().strip())
        idle = _peak_rss_mib(proc.pid)
        for how in ("Content-Length: 1 GiB", "chunked, 1 GiB streamed"):
            sock = socket.create_connection((url.hostname, url.port), timeout=120)
            framing = f"Content-Length: {GIB}" if how.startswith("Content") else "Transfer-Encoding: chunked"
            sock.sendall(f"POST /v1/fine-tunes HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer bench\r\n"
                         f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode())
            sent = [0]

            def stream() -> None:
                chunk = b"x" * (1024 * 1024)
                frame = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if how.startswith("chunked") else chunk
                deadline = time.monotonic() + 120
                try:
                    while sent[0] < GIB and time.monotonic() < deadline:
                        sock.sendall(frame)
                        sent[0] += len(chunk)
                except OSError:
                    pass  # the server answered and closed: the point

            start = time.perf_counter()
            sender = threading.Thread(target=stream, daemon=True)
            sender.start()
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except OSError:
                pass
            seconds = time.perf_counter() - start
            sock.close()
            sender.join(130)
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "(none)"
            rows.append(f"| {how} | {status} | {sent[0] / 1024 ** 2:.0f} MiB | {seconds * 1000:.0f} ms | "
                        f"{idle:.0f} → {_peak_rss_mib(proc.pid):.0f} MiB |")
    finally:
        proc.terminate()
        proc.wait(15)
    return rows


@contextlib.contextmanager
def served(env: dict[str, str]) -> Iterator[str]:
    """``ftctl sim serve`` on a free loopback port over ``env``'s store: its URL."""
    import selectors

    proc = subprocess.Popen(FTCTL + ["sim", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=60):
            raise RuntimeError("ftctl sim serve did not print its URL")
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(15)


def side_by_side(env: dict[str, str], url: str, jobs: dict[str, str], repeat: int) -> list[list[Measured]]:
    """The same work through the vendor's ``tg`` (together 3.1.1) and through ftctl's HTTP backend,
    against one ``ftctl sim serve``: pairs (tg, ftctl), each the fastest of ``repeat`` runs."""
    tg = Path(sys.executable).with_name("tg")
    if not tg.exists():
        return []
    http_env = {**env, "TOGETHER_API_KEY": "bench-key", "TOGETHER_BASE_URL": url}
    remote = ["--backend", "together", "--base-url", url]
    pairs = []
    for size, job in jobs.items():
        if size not in ("10", "100000"):
            continue
        n = f"{int(size):,} evaluations"
        work = [(f"retrieve ({n})", ["ft", "retrieve", job], ["retrieve", job]),
                (f"list-events / events ({n})", ["ft", "list-events", job], ["events", job]),
                (f"list-metrics / metrics ({n})", ["ft", "list-metrics", job], ["metrics", job])]
        if size == "10":
            work.append(("list (the store's jobs)", ["ft", "list"], ["list"]))
        for name, theirs, ours in work:
            tries = repeat if size == "10" else max(1, repeat // 3)
            pair = []
            for who, argv in (("tg", [str(tg), *theirs]), ("ftctl", FTCTL + ours + remote)):
                runs, peak, cpu = runs_of(argv, http_env, tries)
                pair.append(Measured(Case(f"{who} {name}", argv, None), runs, peak, cpu * 1000, 1.0))
            pairs.append(pair)
    return pairs


def concurrent_polls(url: str, job: str, clients: int = 50, per_client: int = 40,
                     limit_s: float = 60.0) -> str:
    """``clients`` threads, each with its own keep-alive connection, polling
    ``GET /v1/fine-tunes/{job}`` ``per_client`` times (or until ``limit_s``): requests per second
    and latency percentiles. Loopback only, bounded in count and time."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    where = urlsplit(url)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + limit_s
    start_line = threading.Barrier(clients)

    def client() -> None:
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        mine = []
        start_line.wait()
        for _ in range(per_client):
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            try:
                conn.request("GET", f"/v1/fine-tunes/{job}", headers={"Authorization": "Bearer bench"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
            mine.append(time.perf_counter() - began)
            if not ok:
                with lock:
                    failures[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit_s + 30)
    wall = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return (f"| {clients} | {len(latencies):,} | {failures[0]} | {len(latencies) / wall:,.0f} | "
            f"{pct(0.5):.1f} ms | {pct(0.95):.1f} ms | {latencies[-1] * 1000:.1f} ms |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}")


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "load average unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and only the small cases")
    parser.add_argument("--floor-runs", type=int, default=31, help="`python -c pass` runs for the quiet floor")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--check-mib", type=int, default=None, metavar="MIB",
                        help="size of the generated file for `files check` (default 1024, --quick 64)")
    parser.add_argument("--hostile", action="store_true", help="only the hostile-server figures (printed)")
    parser.add_argument("--no-http", action="store_true", help="skip the sim serve sections")
    args = parser.parse_args()
    if args.hostile:
        print(render_hostile(hostile_figures()))
        return 0
    repeat = 3 if args.quick else args.repeat
    tmp = Path(tempfile.mkdtemp(prefix="ftctl-bench-"))
    # As a user runs it: bytecode compiled (pip compiles at install; an editable install or
    # PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every run).
    drop = ("TOGETHER_API_KEY", "FTCTL_BACKEND", "PYTHONDONTWRITEBYTECODE", "TOGETHER_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"FTCTL_HOME": str(tmp / "home"), "FTCTL_SIM_SPEED": "inf", "COLUMNS": "100"})
    import compileall
    import ftctl

    compileall.compile_dir(str(Path(ftctl.__file__).parent), quiet=1)
    load_before = load()
    server = None
    try:
        print("setting up jobs ...", file=sys.stderr)
        check_mib = args.check_mib or (64 if args.quick else 1024)
        cases, jobs = build_cases(env, tmp, args.quick, check_mib)
        upload_data = tmp / "upload.jsonl"
        conversations_file(upload_data, 64 if args.quick else 256)
        server = start_server(env, tmp, (64 if args.quick else 512) * 1024 * 1024)
        cases += download_cases(env, tmp, server[1])
        if not args.quick:
            many = tmp / "many"
            fill_store(many, 10_000)
            cases.append(Case("ftctl list --json (10,000 jobs in the store)", ["list", "--json"], 15,
                              env={"FTCTL_HOME": str(many)}))
        print("  wait on 20 jobs ...", file=sys.stderr)
        wait_polls = wait_cpu_per_poll(env, tmp)
        print("  the floors ...", file=sys.stderr)
        floor = floors(env, args.floor_runs)
        results = []
        for case in cases:
            print(f"  {case.name} ...", file=sys.stderr)
            run_env = {**env, **(case.env or {})}
            runs, peak, cpu = runs_of(case.argv if case.raw else FTCTL + case.argv, run_env,
                                      min(repeat, case.repeat or repeat))
            results.append(Measured(case, runs, peak, cpu * 1000, floor.quiet))
        print("  files upload through sim serve ...", file=sys.stderr)
        results += upload_rows(env, tmp, upload_data, min(repeat, 3), floor.quiet)
        pairs: list[list[Measured]] = []
        polls: list[str] = []
        served_rows: list[str] = []
        if not args.no_http:
            with served(env) as url:
                print("  side by side with tg ...", file=sys.stderr)
                pairs = side_by_side(env, url, jobs, repeat)
                print("  50 clients polling sim serve ...", file=sys.stderr)
                polls = [concurrent_polls(url, jobs["10"])]
            print("  sim serve under a 1 GiB body ...", file=sys.stderr)
            served_rows = serve_large_bodies(env)
        floor_after = floors(env, args.floor_runs)  # the load may have changed while we measured
    finally:
        if server is not None:
            server[0].terminate()
            server[0].wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    table = (render(results, floor, floor_after, repeat, load_before) + render_pairs(pairs)
             + render_polls(polls) + (render_served(served_rows) if served_rows else "") + "\n" + wait_polls
             + "\n" + render_hostile(hostile_figures()))
    args.out.write_text(table)
    print(table)
    over = [r.case.name for r in results if r.verdict == "OVER"]
    over += [pair[1].case.name for pair in pairs if pair[1].best > 0.5 * pair[0].best]
    if over:
        print("OVER budget: " + "; ".join(over), file=sys.stderr)
        return 1
    return 0


def render(results: list[Measured], floor: Floors, after: Floors, repeat: int, load_before: str) -> str:
    lines = [
        "# ftctl benchmarks",
        "",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; {load_before} "
        f"before, {load()} after.",
        "",
        f"Each case: {repeat} whole-process runs (`{' '.join(Path(a).name for a in FTCTL)} ...`) after one "
        "warm-up, shown as min / median / max. The floor is `python -c pass` in the same run: "
        f"{floor.spread} (min / median / max of its runs; {after.spread} when measured again at the end). "
        f"Reference CPU workload (a fixed 3,000,000-step loop): {floor.reference * 1000:.0f} ms. "
        "**× floor** is the case's fastest run over the fastest `python -c pass` (the runs the load "
        "disturbed least): budgets are checked on it; × median floor is the same on medians, for "
        "comparison. Regenerate: `python benchmarks/run.py` (exit 1 and OVER when a budget fails).",
        "",
        "| case | min / median / max | × floor | × median floor | budget | peak RSS | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        parts = []
        if r.case.budget:
            parts.append(f"≤ {r.case.budget:g}×")
        if r.case.seconds_budget:
            parts.append(f"≤ {r.case.seconds_budget:g} s")
        if r.case.memory_budget_mib:
            parts.append(f"≤ {r.case.memory_budget_mib:g} MiB")
        lines.append(f"| {r.case.name} | {r.spread}{r.throughput} | {r.ratio:.1f}× | "
                     f"{r.median_ms / 1000 / floor.median:.1f}× | {', '.join(parts) or '—'} | "
                     f"{r.peak_mib:.0f} MiB | {r.verdict} |")
    return "\n".join(lines) + "\n"


def render_pairs(pairs: list[list[Measured]]) -> str:
    if not pairs:
        return ""
    lines = ["", "## Side by side with the vendor's CLI (`tg` 3.1.1) over HTTP", "",
             "The same work against one `ftctl sim serve` on loopback: `tg ft ...` with TOGETHER_BASE_URL, "
             "and `ftctl ... --backend together --base-url URL` (human output for both, to /dev/null). "
             "Budget: ftctl ≤ 0.5× tg on each (fastest runs compared).", "",
             "| work | tg min / median / max | ftctl min / median / max | ftctl ÷ tg | peak RSS tg / ftctl | |",
             "|---|---:|---:|---:|---:|---|"]
    for theirs, ours in pairs:
        ratio = ours.best / theirs.best
        lines.append(f"| {theirs.case.name[3:]} | {theirs.spread} | {ours.spread} | {ratio:.2f}× | "
                     f"{theirs.peak_mib:.0f} / {ours.peak_mib:.0f} MiB | {'ok' if ratio <= 0.5 else 'OVER'} |")
    return "\n".join(lines) + "\n"


def render_polls(rows: list[str]) -> str:
    if not rows:
        return ""
    return "\n".join([
        "", "## `ftctl sim serve` under concurrent polling", "",
        "Clients on loopback, each a thread with its own keep-alive connection, polling "
        "`GET /v1/fine-tunes/{id}` (a finished 10-evaluation job) 40 times each; the client threads "
        "share the 2 cores with the server, so this is a floor on what the server can do.", "",
        "| clients | requests | failed | requests/s | p50 | p95 | max |", "|---:|---:|---:|---:|---:|---:|---:|",
        *rows]) + "\n"


def render_served(rows: list[str]) -> str:
    return "\n".join([
        "", "## `ftctl sim serve` under a 1 GiB request body", "",
        "One client sends a generated 1 GiB body; the server must refuse it past 16 MiB without "
        "buffering it. Sent: what the client got onto the socket before the server's answer closed it "
        "(socket buffers included). Peak RSS: the server's high-water mark before and after.", "",
        "| body | answer | sent | until closed | server peak RSS |", "|---|---:|---:|---:|---:|", *rows]) + "\n"


# -- a hostile server (issue 11): what it costs ftctl to refuse it ---------------------------------


def hostile_figures() -> list[tuple[str, dict, str]]:
    """ftctl against ``tests/hostile.py``, each as one real process: a gzip bomb (4 MiB on the wire,
    4 GiB decoded, the size that took ftctl to 12.6 GB before the cap) on a list and on one job,
    and a server dripping its answer a byte a second under a 3 s read timeout."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from hostile import JOB_ID, Hostile, measure

    env = {**os.environ, "TOGETHER_API_KEY": "k" * 64, "FTCTL_RETRY_DELAY": "0",
           "FTCTL_HOME": tempfile.mkdtemp(prefix="ftctl-bench-hostile-")}
    env.pop("FTCTL_BACKEND", None)
    cases = [("gzip bomb, 4 GiB decoded: ftctl list", "gzip-bomb", ["list"], {}, "≤ 64 MiB read"),
             ("gzip bomb, 4 GiB decoded: ftctl retrieve", "gzip-bomb", ["retrieve", JOB_ID], {}, "≤ 4 MiB read"),
             ("a byte a second: ftctl retrieve (FTCTL_READ_TIMEOUT=3)", "drip", ["retrieve", JOB_ID],
              {"FTCTL_READ_TIMEOUT": "3"}, "deadline 9 s")]
    out = []
    for name, mode, argv, extra, limit in cases:
        print(f"  {name} ...", file=sys.stderr)
        with Hostile(mode, bomb_mib=4096) as server:
            out.append((name, measure([*argv, "--backend", "together", "--base-url", server.url],
                                      {**env, **extra}), limit))
    return out


def render_hostile(figures: list[tuple[str, dict, str]]) -> str:
    lines = ["## A hostile server (issue 11)", "",
             "One real process each (`tests/hostile.py`); before the limits, the bomb took ftctl to 12.6 GB and "
             "the drip kept `retrieve` alive for 143 s.", "",
             "| case | exit | wall | peak RSS | limit |", "|---|---:|---:|---:|---|"]
    for name, run, limit in figures:
        lines.append(f"| {name} | {run['exit_code']} | {run['seconds']:.1f} s | {run['peak_rss_mib']:.0f} MiB | {limit} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
