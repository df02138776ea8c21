"""Start-up and scale of ftctl, measured as a user meets it: whole processes, medians of repeated
runs, each printed as a ratio to ``python -c pass`` measured in the same run (so a busy or slow
machine moves both sides). Peak memory is the child's max RSS.

    python benchmarks/run.py            # the full table (a few minutes: it builds large jobs first)
    python benchmarks/run.py --quick    # fewer repeats, the small cases only
    python benchmarks/run.py --check-mib 256   # `files check` on a 256 MiB file (default 1024; quick 64)
    python benchmarks/run.py --hostile  # only the hostile-server figures (issue 11)

It writes the table to ``benchmarks/RESULTS.md`` (with the machine it ran on) and prints it. It is
not a test: timings on a shared machine are for reading, not for asserting.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
# The console script users run, from this interpreter's environment (else `python -m ftctl`).
_SCRIPT = Path(sys.executable).parent / "ftctl"
FTCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ftctl"]


@dataclass
class Case:
    name: str
    argv: list[str]
    budget: float | None  # ratio to `python -c pass`
    memory_budget_mib: float | None = None
    env: dict[str, str] | None = None
    size_bytes: int | None = None  # the input it reads, for a throughput figure
    repeat: int | None = None  # fewer runs for the long cases
    raw: bool = False  # argv is a whole command (e.g. cp, for comparison), not ftctl's arguments


@dataclass
class Measured:
    case: Case
    median_ms: float
    ratio: float
    peak_mib: float
    cpu_ms: float = 0.0  # user + system time of the child (what a loaded machine does not inflate much)

    @property
    def throughput(self) -> str:
        if not self.case.size_bytes:
            return ""
        mb = self.case.size_bytes / 1e6
        return f" ({mb / (self.median_ms / 1000):.0f} MB/s; {mb / (self.cpu_ms / 1000):.0f} MB per CPU-second)"

    @property
    def verdict(self) -> str:
        ok = (self.case.budget is None or self.ratio <= self.case.budget) and (
            self.case.memory_budget_mib is None or self.peak_mib <= self.case.memory_budget_mib)
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


def median_of(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, float]:
    timed(argv, env)  # warm the file cache; not counted
    runs = [timed(argv, env) for _ in range(repeat)]
    return (statistics.median(t for t, _, _ in runs), max(m for _, m, _ in runs),
            statistics.median(c for _, _, c in runs))


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
    return ftctl(env, "create", "-t", "file-train", "-v", "file-val", "-m", "bench/model", "-q", *args)


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


def build_cases(env: dict[str, str], tmp: Path, quick: bool, check_mib: int) -> list[Case]:
    small = create(env, tmp, "--n-epochs", "5", "--n-evals", "10", "--early-stopping")
    cases = [
        Case("ftctl --version", ["--version"], 8),
        Case("ftctl --help", ["--help"], None),
        Case("TAB completion round-trip (ftctl retrieve ft-<TAB>)", [], 8,
             env={"_FTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "ftctl retrieve ft-", "COMP_CWORD": "2"}),
        Case("ftctl retrieve ID --json (simulator)", ["retrieve", small, "--json"], 18),
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
        budget = 60 if n == 100_000 else None
        cases.append(Case(f"ftctl metrics ID ({n:,} evaluations, chart + explanation)", ["metrics", job],
                          budget, 150 if n == 100_000 else None))
        if n == sizes[-1]:
            large = [job, create(env, tmp, "--n-evals", str(n), "--early-stopping", "--patience", "3",
                                 "--sim-scenario", str(tmp / f"curve-{n}.json"))]
    cases.append(Case(f"ftctl report ID --format markdown ({sizes[-1]:,} evaluations and events)",
                      ["report", large[0], "--format", "markdown"], 60 if not quick else None, 150))
    cases.append(Case(f"ftctl compare ID ID ({sizes[-1]:,} evaluations each)", ["compare", *large],
                      60 if not quick else None, 200))
    if not quick:
        many_events = create(env, tmp, "--n-evals", "100000", "--early-stopping", "--sim-scenario", "improving")
        cases.append(Case("ftctl events ID --json (100,000 events)", ["events", many_events, "--json"], 60, 150))
        big = scenario(tmp / "big.json", falling_then_flat(10_000), 1_000_000)
        cases.append(Case("simulate 1,000,000 steps / 10,000 evaluations to completion (create)",
                          ["create", "-t", "f", "-v", "v", "-m", "m", "--n-evals", "10000", "--early-stopping",
                           "--patience", "5000", "--sim-scenario", str(big), "-q"], 40))
        big_job = create(env, tmp, "--n-evals", "10000", "--early-stopping", "--patience", "5000",
                         "--sim-scenario", str(big))
        cases.append(Case("... and retrieved (ftctl retrieve ID --json)", ["retrieve", big_job, "--json"], 40))
    return cases


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
        "body = build_body(CreateOptions(training_file='f', validation_file='v', model='m', n_evals=10,"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per case (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and only the small cases")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--check-mib", type=int, default=None, metavar="MIB",
                        help="size of the generated file for `files check` (default 1024, --quick 64)")
    parser.add_argument("--hostile", action="store_true", help="only the hostile-server figures (printed)")
    args = parser.parse_args()
    if args.hostile:
        print(render_hostile(hostile_figures()))
        return 0
    repeat = 3 if args.quick else args.repeat
    tmp = Path(tempfile.mkdtemp(prefix="ftctl-bench-"))
    # As a user runs it: bytecode compiled (pip compiles at install; an editable install or
    # PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every run).
    drop = ("TOGETHER_API_KEY", "FTCTL_BACKEND", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"FTCTL_HOME": str(tmp / "home"), "FTCTL_SIM_SPEED": "inf", "COLUMNS": "100"})
    import compileall
    import ftctl

    compileall.compile_dir(str(Path(ftctl.__file__).parent), quiet=1)
    server = None
    try:
        print("setting up jobs ...", file=sys.stderr)
        check_mib = args.check_mib or (64 if args.quick else 1024)
        cases = build_cases(env, tmp, args.quick, check_mib)
        server = start_server(env, tmp, (64 if args.quick else 512) * 1024 * 1024)
        cases += download_cases(env, tmp, server[1])
        if not args.quick:
            many = tmp / "many"
            fill_store(many, 10_000)
            cases.append(Case("ftctl list --json (10,000 jobs in the store)", ["list", "--json"], 40,
                              env={"FTCTL_HOME": str(many)}))
        print("  wait on 20 jobs ...", file=sys.stderr)
        polls = wait_cpu_per_poll(env, tmp)
        base, _, _ = median_of([sys.executable, "-c", "pass"], env, max(repeat, 11))
        results = []
        for case in cases:
            print(f"  {case.name} ...", file=sys.stderr)
            run_env = {**env, **(case.env or {})}
            seconds, peak, cpu = median_of(case.argv if case.raw else FTCTL + case.argv, run_env,
                                           min(repeat, case.repeat or repeat))
            results.append(Measured(case, seconds * 1000, seconds / base, peak, cpu * 1000))
        print("  sim serve under a 1 GiB body ...", file=sys.stderr)
        served = serve_large_bodies(env)
    finally:
        if server is not None:
            server[0].terminate()
            server[0].wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    table = (render(results, base * 1000, repeat) + render_served(served) + "\n" + polls + "\n"
             + render_hostile(hostile_figures()))
    args.out.write_text(table)
    print(table)
    return 0


def render(results: list[Measured], base_ms: float, repeat: int) -> str:
    lines = [
        "# ftctl benchmarks",
        "",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}.",
        f"Medians of {repeat} whole-process runs (`{' '.join(Path(a).name for a in FTCTL)} ...`); `python -c pass` = {base_ms:.1f} ms "
        "in the same run. Budgets from issue 6 are ratios to it. Regenerate: `python benchmarks/run.py`.",
        "",
        "| case | median | × python -c pass | budget | peak RSS | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        budget = f"≤ {r.case.budget:g}×" if r.case.budget else "—"
        if r.case.memory_budget_mib:
            budget += f", ≤ {r.case.memory_budget_mib:g} MiB"
        lines.append(f"| {r.case.name} | {r.median_ms:.0f} ms{r.throughput} | {r.ratio:.1f}× | {budget} | "
                     f"{r.peak_mib:.0f} MiB | {r.verdict} |")
    return "\n".join(lines) + "\n"


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
