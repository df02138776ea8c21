"""Issue 7: the bad-input matrix. Every case is tried through the CLI, on a home that already
holds a job, and must give: the documented exit code, exactly one problem line on stderr that
names the bad value, nothing on stdout, no traceback, no request sent, and no state changed
(every file under FTCTL_HOME byte for byte the same, so no job was created and the cache is
untouched). ``len(CASES)`` is the number of bad inputs tried (the issue asks for at least 40).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from ftctl.request_checks import WHOLE_MAX
from ftctl.backends.simulator.scenarios import MAX_FILE_BYTES
from ftctl.backends.simulator.store import SCHEMA_VERSION
from kit import MODEL

KEY = "tgk-bad-input-matrix-key"
CREATE = ("create", "-t", "file-train", "-v", "file-val", "-m", MODEL)
CREATE_ES = (*CREATE, "--n-evals", "10", "--early-stopping")
HUGE = "99999999999999999999999"  # past every integer type a server or SQLite holds


@dataclass(frozen=True)
class Bad:
    """One bad input. ``argv`` may use ``{job}`` (a job that exists), ``{tmp}`` (a scratch
    directory) and ``{trap}`` (a local HTTP server that must receive nothing)."""

    name: str
    argv: tuple[str, ...]
    names: str  # what the one error line must say: the bad value, with the rule around it
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path, Path], None] | None = None  # (home, tmp): damage or write files first


def scenario(text: str | bytes) -> Callable[[Path, Path], None]:
    def write(home: Path, tmp: Path) -> None:
        (tmp / "s.json").write_bytes(text.encode() if isinstance(text, str) else text)

    return write


def oversized_scenario(home: Path, tmp: Path) -> None:
    with open(tmp / "s.json", "wb") as f:  # sparse: costs nothing to make
        f.truncate(MAX_FILE_BYTES + 1)


def damaged_store(how: str) -> Callable[[Path, Path], None]:
    def damage(home: Path, tmp: Path) -> None:
        db = home / "simulator.db"
        if how == "garbage":
            _checkpoint(db)
            db.write_bytes(b"SQLite format 2\0" + b"\x13" * 4096)
        elif how == "truncated":
            _checkpoint(db)
            db.write_bytes(db.read_bytes()[:1500])
        elif how == "newer":
            _sql(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        elif how == "no table":
            _sql(db, "DROP TABLE jobs")
        elif how == "bad row":
            _sql(db, "UPDATE jobs SET summary = '{not json', final_job = '{not json', body = '{not json'")
        elif how == "a directory":
            for path in home.glob("simulator.db*"):
                path.unlink()
            db.mkdir()

    return damage


def _sql(db: Path, statement: str) -> None:
    con = sqlite3.connect(db)
    con.execute(statement)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _checkpoint(db: Path) -> None:
    _sql(db, "SELECT 1")
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)


def _on_the_api(**extra: str) -> dict[str, str]:
    return {"TOGETHER_API_KEY": KEY, "FTCTL_MAX_RETRIES": "0", **extra}


CASES: list[Bad] = [
    # -- create: every flag, wrong type or out of range ------------------------------------------
    Bad("n_epochs not a number", (*CREATE, "--n-epochs", "ten"), "'ten' is not a valid int"),
    Bad("n_epochs in exponent form", (*CREATE, "--n-epochs", "1e3"), "'1e3' is not a valid int"),
    Bad("n_epochs negative", (*CREATE, "--n-epochs", "-3"), "--n-epochs must be >= 1 (got -3)"),
    Bad("n_epochs huge", (*CREATE, "--n-epochs", HUGE), f"--n-epochs must be <= {WHOLE_MAX} (got {HUGE})"),
    Bad("n_evals negative", (*CREATE, "--n-evals", "-1"), "--n-evals must be >= 0 (got -1)"),
    Bad("n_evals huge", (*CREATE, "--n-evals", "10000000000"), f"--n-evals must be <= {WHOLE_MAX} (got 10000000000)"),
    Bad("n_epochs past the simulator's limit", (*CREATE, "--n-epochs", "1001"),
        "--n-epochs must be <= 1000 on the simulator (got 1001)"),
    Bad("n_evals past the simulator's limit", (*CREATE, "--n-evals", "100001"),
        "--n-evals must be <= 100000 on the simulator (got 100001)"),
    Bad("n_evals without a validation file", ("create", "-t", "f", "-m", MODEL, "--n-evals", "5"),
        "--n-evals > 0 requires a validation file (got --n-evals=5"),
    Bad("n_checkpoints zero", (*CREATE, "--n-checkpoints", "0"), "--n-checkpoints must be >= 1 (got 0)"),
    Bad("batch_size zero", (*CREATE, "--batch-size", "0"), "--batch-size must be >= 1 (got 0)"),
    Bad("batch_size fraction", (*CREATE, "--batch-size", "1.5"), "--batch-size must be a whole number >= 1 or 'max' "
                                                                 "(got '1.5')"),
    Bad("learning_rate NaN", (*CREATE, "--learning-rate", "nan"), "--learning-rate must be a finite number (got nan)"),
    Bad("learning_rate overflowing to Inf", (*CREATE, "--lr", "1e999"), "--lr must be a finite number "
                                                                        "(got inf)"),
    Bad("learning_rate zero", (*CREATE, "--learning-rate", "0"), "--learning-rate must be > 0 (got 0)"),
    Bad("lr_scheduler_type unknown", (*CREATE, "--lr-scheduler-type", "step"),
        "--lr-scheduler-type must be linear or cosine (got 'step')"),
    Bad("min_lr_ratio above 1", (*CREATE, "--min-lr-ratio", "2"), "--min-lr-ratio must be >= 0 and <= 1 (got 2)"),
    Bad("scheduler_num_cycles zero", (*CREATE, "--scheduler-num-cycles", "0"), "--scheduler-num-cycles must be > 0 (got 0)"),
    Bad("warmup_ratio negative", (*CREATE, "--warmup-ratio", "-0.1"), "--warmup-ratio must be >= 0 and <= 1 (got -0.1)"),
    Bad("max_grad_norm negative", (*CREATE, "--max-grad-norm", "-1"), "--max-grad-norm must be >= 0 (got -1)"),
    Bad("weight_decay -Inf", (*CREATE, "--weight-decay", "-inf"), "--weight-decay must be a finite number (got -inf)"),
    Bad("max_seq_length zero", (*CREATE, "--max-seq-length", "0"), "--max-seq-length must be >= 1 (got 0)"),
    Bad("gradient_accumulation_steps zero", (*CREATE, "--gradient-accumulation-steps", "0"),
        "--gradient-accumulation-steps must be >= 1 (got 0)"),
    Bad("random_seed negative", (*CREATE, "--random-seed", "-1"), "--random-seed must be >= 0 (got -1)"),
    Bad("random_seed huge", (*CREATE, "--random-seed", HUGE), f"--random-seed must be <= {WHOLE_MAX} (got {HUGE})"),
    Bad("train_on_inputs unknown", (*CREATE, "--train-on-inputs", "maybe"),
        "--train-on-inputs must be true, false or auto (got 'maybe')"),
    Bad("lora_r zero", (*CREATE, "--lora-r", "0"), "--lora-r must be >= 1 (got 0)"),
    Bad("lora_alpha negative", (*CREATE, "--lora-alpha", "-1"), "--lora-alpha must be > 0 (got -1)"),
    Bad("lora_dropout one", (*CREATE, "--lora-dropout", "1"), "--lora-dropout must be >= 0 and < 1 (got 1)"),
    Bad("lora flag with --no-lora", (*CREATE, "--no-lora", "--lora-r", "8"),
        "--lora-r applies only to LoRA training (got --no-lora)"),
    Bad("dpo_beta zero", (*CREATE, "--training-method", "dpo", "--dpo-beta", "0"), "--dpo-beta must be > 0 (got 0)"),
    Bad("simpo_gamma negative", (*CREATE, "--training-method", "dpo", "--simpo-gamma", "-2"),
        "--simpo-gamma must be >= 0 (got -2)"),
    Bad("train_on_inputs with dpo", (*CREATE, "--training-method", "dpo", "--train-on-inputs", "true"),
        "--train-on-inputs applies only to --training-method sft (got dpo)"),
    Bad("suffix with a slash", (*CREATE, "--suffix", "a/b"), "--suffix must be at most 40 letters, digits, '.', '_' "
                                                             "or '-' (got 'a/b')"),
    Bad("suffix in unicode", (*CREATE, "--suffix", "modèle"), "(got 'modèle')"),
    Bad("training file empty", ("create", "-t", "", "-m", MODEL), "--training-file is required (got none)"),
    Bad("training file with a space", ("create", "-t", "my file", "-m", MODEL), "--training-file must be a non-empty id "
                                                                              "of at most 512 characters with no "
                                                                              "spaces or control characters "
                                                                              "(got 'my file')"),
    Bad("training file very long", ("create", "-t", "f" * 5000, "-m", MODEL), "(got 'ffffffffff"),
    Bad("model and from_checkpoint both", ("create", "-t", "f", "-m", MODEL, "--from-checkpoint", "ft-1"),
        "give --model or --from-checkpoint, not both (got --model 'Qwen/Qwen3.5-9B' and --from-checkpoint 'ft-1')"),
    Bad("patience huge", (*CREATE_ES, "--patience", HUGE),
        f"--early-stopping requires --n-evals >= --patience + --warmup-evals + 1 = {int(HUGE) + 2} (got --n-evals=10)"),
    Bad("min_delta overflowing to Inf", (*CREATE_ES, "--min-delta", "1e400"),
        "--min-delta must be finite (got inf)"),
    Bad("min_delta -Inf", (*CREATE_ES, "--min-delta", "-inf"), "--min-delta must be >= 0 (got -inf)"),
    Bad("warmup_evals not a number", (*CREATE_ES, "--warmup-evals", "one"), "'one' is not a valid int"),
    Bad("early stopping with more patience than evaluations", (*CREATE, "--n-evals", "3", "--early-stopping",
                                                               "--patience", "3"),
        "--early-stopping requires --n-evals >= --patience + --warmup-evals + 1 = 5 (got --n-evals=3)"),
    Bad("patience zero", (*CREATE_ES, "--patience", "0"), "--patience must be >= 1 (got 0)"),
    Bad("patience zero by its long alias", (*CREATE_ES, "--early-stopping-patience", "0"),
        "--early-stopping-patience must be >= 1 (got 0)"),
    Bad("warmup_evals negative by its long alias", (*CREATE_ES, "--early-stopping-warmup-evals", "-1"),
        "--early-stopping-warmup-evals must be >= 0 (got -1)"),
    Bad("early stopping without a validation file", ("create", "-t", "f", "-m", MODEL, "--early-stopping"),
        "--early-stopping requires a validation file (--validation-file)"),
    Bad("early stopping by its long alias without a validation file",
        ("create", "-t", "f", "-m", MODEL, "--early-stopping-enabled"),
        "--early-stopping-enabled requires a validation file (--validation-file)"),
    Bad("no model", ("create", "-t", "f"), "give the base model: --model (-m) NAME, or --from-checkpoint ft-ID "
                                           "to continue a job (got neither)"),
    Bad("patience given twice, differently", (*CREATE_ES, "--patience", "2", "--early-stopping-patience", "3"),
        "--patience and --early-stopping-patience are one setting; give it once (got 2 and 3)"),
    Bad("duration on create without --wait", (*CREATE, "--interval", "1"),
        "--timeout and --interval apply to waiting: add --wait"),
    Bad("bad duration on create --wait", (*CREATE, "--wait", "--timeout", "soon"), "(got 'soon')"),

    # -- job ids ---------------------------------------------------------------------------------
    Bad("empty id", ("retrieve", ""), "job id '' is not a job id"),
    Bad("unicode id", ("events", "ft-日本語"), "job id 'ft-日本語' is not a job id"),
    Bad("very long id", ("checkpoints", "a" * 100_000), "job id 'aaaaaaaaaa"),
    Bad("id with a path", ("metrics", "ft-1/../../etc/passwd"), "job id 'ft-1/../../etc/passwd' is not a job id"),
    Bad("id with a control character", ("cancel", "ft-1\x00", "--yes"), "job id 'ft-1\\x00' is not a job id"),
    Bad("id with a newline, on wait", ("wait", "ft-1\nrm -rf"), "job id 'ft-1\\nrm -rf' is not a job id"),
    Bad("id on explain", ("explain", "ft 1"), "job id 'ft 1' is not a job id"),

    # -- scenario files --------------------------------------------------------------------------
    Bad("scenario truncated", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "is not valid JSON",
        prepare=scenario('{"eval_loss": [2.0, 1.5, 1.2')),
    Bad("scenario empty", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "is not valid JSON",
        prepare=scenario("")),
    Bad("scenario binary", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "is not valid JSON",
        prepare=scenario(b"\xff\xfe\x00garbage")),
    Bad("scenario a list", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "must be a JSON object with an "
                                                                          "eval_loss list",
        prepare=scenario("[2.0, 1.5]")),
    Bad("scenario value a word", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"),
        'eval_loss[3] must be a number or "NaN", "Infinity", "-Infinity" (got "lots")',
        prepare=scenario('{"eval_loss": [2, 1, "lots", 1, 1, 1, 1, 1, 1, 1]}')),
    Bad("scenario steps_per_epoch zero", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"),
        f"steps_per_epoch must be a whole number >= 1 and <= {WHOLE_MAX} (got 0)",
        prepare=scenario('{"eval_loss": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "steps_per_epoch": 0}')),
    Bad("scenario steps_per_epoch huge", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"),
        f"steps_per_epoch must be a whole number >= 1 and <= {WHOLE_MAX} (got {HUGE})",
        prepare=scenario('{"eval_loss": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "steps_per_epoch": ' + HUGE + "}")),
    Bad("scenario unknown key", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "has unknown key 'eval_losses'",
        prepare=scenario('{"eval_losses": [1, 1]}')),
    Bad("scenario nested too deeply", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"), "nested too deeply",
        prepare=scenario("[" * 200_000)),
    Bad("scenario too large", (*CREATE_ES, "--sim-scenario", "{tmp}/s.json"),
        f"is {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES}", prepare=oversized_scenario),
    Bad("scenario a directory", (*CREATE_ES, "--sim-scenario", "{tmp}"), "unknown --sim-scenario '{tmp}'"),
    Bad("scenario too large for the header to a served simulator",
        (*CREATE_ES, "--sim-scenario", "{tmp}/s.json", "--base-url", "{trap}"),
        "too large to send in the X-Ftctl-Sim-Scenario header (at most 8000)", env=_on_the_api(),
        prepare=scenario('{"eval_loss": [' + ", ".join(["1.2345678"] * 2000) + "]}")),

    # -- --fields --------------------------------------------------------------------------------
    Bad("unknown field on list", ("list", "--fields", "id,stauts"), "unknown field 'stauts' for --fields"),
    Bad("unknown field on create", (*CREATE, "--fields", "idd"), "unknown field 'idd' for --fields"),
    Bad("unknown field on wait", ("wait", "{job}", "--fields", "best"), "unknown field 'best' for --fields"),
    Bad("no field at all", ("events", "{job}", "--fields", ","), "--fields needs at least one field name"),

    # -- the real backend: key, URL ----------------------------------------------------------------
    Bad("no API key on the real backend", (*CREATE, "--backend", "together", "--base-url", "{trap}"),
        "TOGETHER_API_KEY is not set", code=4),
    Bad("API key with a space", ("list", "--base-url", "{trap}"),
        "TOGETHER_API_KEY contains spaces, control or non-ASCII characters", code=4,
        env={"TOGETHER_API_KEY": "tgk one two"}),
    Bad("plain http to another host", ("list", "--base-url", "http://api.together.example"),
        "refusing to send TOGETHER_API_KEY over plain http to api.together.example", env=_on_the_api()),
    Bad("plain http to a look-alike of localhost", ("list",),
        "refusing to send TOGETHER_API_KEY over plain http to localhost.example.com",
        env=_on_the_api(TOGETHER_BASE_URL="http://localhost.example.com:8765")),
    Bad("base URL without a scheme", ("list", "--base-url", "api.together.ai"),
        "--base-url / TOGETHER_BASE_URL must be an http(s) URL with a host, like https://api.together.ai "
        "(got 'api.together.ai')", env=_on_the_api()),

    # -- FTCTL_HOME and the simulator's store ----------------------------------------------------------
    Bad("home on a read-only file system", ("list",), "/sys/ftctl-home (FTCTL_HOME)",
        env={"FTCTL_HOME": "/sys/ftctl-home"}),
    Bad("home under a file", (*CREATE,), "/etc/hostname/ftctl (FTCTL_HOME)", env={"FTCTL_HOME": "/etc/hostname/ftctl"}),
    Bad("store is a directory", ("list",), "simulator.db is not a file; nothing was changed", code=1,
        prepare=damaged_store("a directory")),
    Bad("store is garbage", ("list",), "is damaged", code=1, prepare=damaged_store("garbage")),
    Bad("store is truncated", ("retrieve", "{job}"), "is damaged", code=1, prepare=damaged_store("truncated")),
    Bad("store lost its table", ("list",), "is damaged (no such table: jobs)", code=1,
        prepare=damaged_store("no table")),
    Bad("store has a damaged row", ("list",), "has a damaged row for job", code=1, prepare=damaged_store("bad row")),
    Bad("store from a newer ftctl", (*CREATE,),
        f"was written by a newer ftctl (schema {SCHEMA_VERSION + 1}, this ftctl reads {SCHEMA_VERSION})", code=1,
        prepare=damaged_store("newer")),

    # -- durations -------------------------------------------------------------------------------------
    Bad("timeout with an unknown unit", ("wait", "{job}", "--timeout", "5d"), "--timeout must be a duration: seconds "
                                                                              "(90, 0.5) or a number with a unit s, "
                                                                              "m or h (30s, 5m, 2h) (got '5d')"),
    Bad("timeout empty", ("wait", "{job}", "--timeout", ""), "--timeout must be a duration"),
    Bad("timeout overflowing", ("wait", "{job}", "--timeout", "1e308h"), "(got '1e308h')"),
    Bad("interval NaN", ("retrieve", "{job}", "--wait", "--interval", "nan"), "--interval must be a duration"),
    Bad("interval negative", ("wait", "{job}", "--interval", "-1s"), "(got '-1s')"),

    # -- environment -------------------------------------------------------------------------------------
    Bad("FTCTL_SIM_SPEED a word", ("list",), "FTCTL_SIM_SPEED must be a positive number of steps per second, or "
                                             "inf (got 'fast')", env={"FTCTL_SIM_SPEED": "fast"}),
    Bad("FTCTL_SIM_SPEED zero", (*CREATE,), "(got '0')", env={"FTCTL_SIM_SPEED": "0"}),
    Bad("FTCTL_SIM_SPEED NaN", ("list",), "(got 'nan')", env={"FTCTL_SIM_SPEED": "nan"}),
    Bad("FTCTL_BACKEND unknown", (*CREATE,), "backend must be sim or together (got 'aws' from FTCTL_BACKEND)",
        env={"FTCTL_BACKEND": "aws"}),
    Bad("--backend unknown", ("list", "--backend", "local"), "backend must be sim or together (got 'local' from "
                                                             "--backend)"),
    Bad("FTCTL_MAX_RETRIES negative", ("list", "--base-url", "{trap}"),
        "FTCTL_MAX_RETRIES must be a whole number >= 0 (got '-1')", env=_on_the_api(FTCTL_MAX_RETRIES="-1")),
    Bad("FTCTL_CONNECT_TIMEOUT zero", ("list", "--base-url", "{trap}"),
        "FTCTL_CONNECT_TIMEOUT must be a number of seconds > 0 (got '0')", env=_on_the_api(FTCTL_CONNECT_TIMEOUT="0")),
    Bad("FTCTL_READ_TIMEOUT Inf", ("list", "--base-url", "{trap}"), "(got 'inf')",
        env=_on_the_api(FTCTL_READ_TIMEOUT="inf")),
    Bad("FTCTL_RETRY_DELAY a word", ("list", "--base-url", "{trap}"),
        "FTCTL_RETRY_DELAY must be a number of seconds >= 0 (got 'short')", env=_on_the_api(FTCTL_RETRY_DELAY="short")),

    # -- other commands' options ---------------------------------------------------------------------------
    Bad("list limit zero", ("list", "--limit", "0"), "0 is not in the range x>=1"),
    Bad("metrics step filter negative", ("metrics", "{job}", "--global-step-from", "-5"),
        "-5 is not in the range x>=0"),
    Bad("metrics time filter not ISO-8601", ("metrics", "{job}", "--logged-at-from", "yesterday"),
        "logged_at filters must be ISO-8601 times (got 'yesterday')"),
    Bad("metrics image of an unknown kind", ("metrics", "{job}", "--plot", "{tmp}/chart.jpg"),
        "the file name must end in .png or .svg"),
    Bad("explain patience not a number", ("explain", "{job}", "--patience", "2,x"),
        "--patience takes integers separated by commas (got '2,x')"),
    Bad("explain sweep too large", ("explain", "{job}", "--patience", ",".join(map(str, range(1, 30))),
                                    "--warmup-evals", ",".join(map(str, range(10)))),
        "a sweep is limited to 200 combinations of settings (got 290)"),
    Bad("color unknown", ("list", "--color", "purple"), "--color must be auto, always or never (got 'purple')"),
    Bad("completion for an unknown shell", ("completion", "tcsh"), "no completion script for shell 'tcsh'"),
    Bad("sim serve on an impossible port", ("sim", "serve", "--port", "70000"), "70000 is not in the range "
                                                                                 "0<=x<=65535"),
    Bad("sim serve with an unknown scenario", ("sim", "serve", "--port", "0", "--sim-scenario", "flat"),
        "unknown --sim-scenario 'flat'"),
    Bad("sim serve with an unknown scenario, by its old name", ("sim", "serve", "--port", "0", "--scenario", "flat"),
        "unknown --scenario 'flat'"),
    Bad("sim serve given a backend", ("sim", "serve", "--port", "0", "--backend", "sim"), "No such option: --backend"),
    Bad("completion given a base URL before the command", ("--base-url", "http://127.0.0.1:9", "completion", "bash"),
        "--base-url does not apply to 'ftctl completion'"),
]


def _create_usage_errors() -> list[Bad]:
    # (--fields names the JSON's fields, which are the API's: not a case for this rule)
    return [c for c in CASES if c.argv[0] == "create" and c.code == 2 and not c.prepare and not c.env
            and "--fields" not in c.argv]


@pytest.mark.parametrize("case", _create_usage_errors(), ids=[c.name for c in _create_usage_errors()])
def test_every_usage_error_of_create_names_the_flag_typed(ftctl, case: Bad):
    """In the user's words, not the API's: the message names a flag on the command line (its long
    form for -t, -v, -m) and no field of the request body (early_stopping_patience, n_evals, ...)."""
    from ftctl.create_request import FIELD_FLAGS

    short = {"-t": "--training-file", "-v": "--validation-file", "-m": "--model"}
    result = ftctl(*case.argv)
    (line,) = result.problems
    typed = {short.get(a, a) for a in case.argv if a.startswith("-")} | {"--model"}  # a missing model is named
    named = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", line))
    assert named & typed, line
    fields = [f for f in FIELD_FLAGS if "_" in f and re.search(rf"(?<![\w.-]){f}(?![\w-])", line)]
    assert fields == [], f"the API's field names in a CLI error: {line}"


def test_the_matrix_has_at_least_40_cases_all_different():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({(c.argv, tuple(sorted(c.env.items())), c.prepare) for c in CASES}) == len(CASES)


class Trap:
    """A loopback HTTP server that records every request; a bad input must send it nothing."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append(f"{self.command} {self.path}")
                self.send_response(500)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def trap():
    t = Trap()
    yield t
    t.server.shutdown()
    t.server.server_close()


def snapshot(home: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(home)): (p.read_bytes() if p.is_file() else "dir")
            for p in sorted(home.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(ftctl, ftctl_home, tmp_path, trap, case: Bad):
    made = ftctl(*CREATE_ES, "-q")
    assert made.exit_code == 0, made.stderr
    job_id = made.stdout.strip()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.prepare:
        case.prepare(ftctl_home, scratch)
    fill = {"{job}": job_id, "{tmp}": str(scratch), "{trap}": trap.url}

    def filled(text: str) -> str:
        for mark, value in fill.items():
            text = text.replace(mark, value)
        return text

    before, requests = snapshot(ftctl_home), len(trap.seen)
    result = ftctl(*map(filled, case.argv), env=case.env)

    assert result.exit_code == case.code, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and KEY not in result.stderr
    (line,) = result.problems  # one line, beside at most the simulator's informational note
    message = json.loads(line)["error"]["message"] if line.startswith("{") else line
    assert line.startswith("{") or line.startswith("Error: ")
    assert filled(case.names) in message
    assert snapshot(ftctl_home) == before, "a bad input changed ftctl's state"
    assert trap.seen[requests:] == [], "a bad input reached the network"


@pytest.mark.parametrize("damage", [b"\x00\xffnot json", b'{"version": 1, "jobs": [{"id": "ft-1", "sent": {"early_st',
                                    b'{"jobs": 5}'], ids=["garbage", "truncated", "wrong shape"])
def test_a_damaged_cache_is_set_aside_not_written_over(ftctl, ftctl_home, damage):
    """The cache is not worth failing a command for, but it may hold the only record of the
    early-stopping settings sent at create: a damaged one is kept as jobs.json.damaged."""
    ftctl_home.mkdir(parents=True, exist_ok=True)
    (ftctl_home / "jobs.json").write_bytes(damage)
    made = ftctl(*CREATE_ES, "-q")
    assert made.exit_code == 0 and made.problems == []
    assert (ftctl_home / "jobs.json.damaged").read_bytes() == damage
    cache = json.loads((ftctl_home / "jobs.json").read_text())
    assert [j["id"] for j in cache["jobs"]] == [made.stdout.strip()]
