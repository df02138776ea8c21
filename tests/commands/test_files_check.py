"""`ftctl files check` and ftctl.datasets: every rule fires on the line that breaks it, valid files
of each format pass, the report's JSON shape, exit codes, and streaming in flat memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from ftctl.datasets import check, check_path, plan
from kit import ROOT

EXAMPLES = ROOT / "examples" / "data"
PNG = "data:image/png;base64,iVBORw0KGgo="


def user(text="Hi there"):
    return {"role": "user", "content": text}


def bot(text="Hello! How can I help?", **extra):
    return {"role": "assistant", "content": text, **extra}


def chat(*messages, **extra):
    return {"messages": list(messages), **extra}


def image(url=PNG):
    return {"type": "image_url", "image_url": {"url": url}}


CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
GOOD_CHAT = chat(user(), bot())
GOOD_DPO = {"input": {"messages": [user("Pick a colour")]}, "preferred_output": [bot("Blue.")],
            "non_preferred_output": [bot("I can't.")]}


def write(tmp_path: Path, lines, name="data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# -- valid files of each format ------------------------------------------------------------------

VALID = {
    "conversational": [
        chat({"role": "system", "content": "Be brief."}, user("2+2?"), bot("4")),
        chat(user("Hi"), bot("Hi!", weight=0), user("Bye"), bot("Bye!", weight=1), weight=0.5),
        chat(user("Weather in Paris?"), {"role": "assistant", "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
             {"role": "tool", "tool_call_id": "call_1", "content": "22C"}, bot("Sunny, 22C."), tools=[TOOL]),
        chat(user("Think first."), bot("Done.", reasoning="Some thoughts."), ),
        chat(user("x"), bot("y", reasoning_content="z")),
        chat({"role": "user", "content": [{"type": "text", "text": "What is this?"}, image()]},
             {"role": "assistant", "content": [{"type": "text", "text": "A pixel."}]}),
    ],
    "instruction": [{"prompt": "Translate: chat", "completion": "cat"}, {"prompt": "a", "completion": "b", "weight": 2}],
    "general": [{"text": "Once upon a time."}, {"text": "The end.", "weight": 0}],
    "preference": [
        GOOD_DPO,
        {"input": {"messages": [{"role": "system", "content": "s"}, user("q")], "tools": [TOOL]},
         "preferred_output": [{"role": "assistant", "tool_calls": [CALL]}],
         "non_preferred_output": [bot("no", reasoning="r")], "weight": 1.0},
    ],
}


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_a_valid_file_of_each_format_passes(tmp_path, ftctl, fmt):
    path = write(tmp_path, VALID[fmt])
    report = check_path(path)
    assert (report.ok, report.format, report.num_samples, report.errors) == (True, fmt, len(VALID[fmt]), [])
    assert report.approx_tokens > 0
    result = ftctl("files", "check", path)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: ok, {fmt}, {len(VALID[fmt])} examples, ~")
    assert "all valid" in result.stderr


def test_the_committed_examples_are_valid_conversations(ftctl):
    result = ftctl("files", "check", EXAMPLES / "train.jsonl", EXAMPLES / "val.jsonl", "--json")
    assert result.exit_code == 0
    train, val = result.json()
    assert (train["ok"], train["format"], val["ok"], val["format"]) == (True, "conversational", True, "conversational")
    assert train["num_samples"] >= 45 and val["num_samples"] >= 10


# -- every rule, on the line that breaks it ------------------------------------------------------

BAD = [  # (rule, line 2 of a file whose line 1 is valid, words the message must contain)
    ("json", '{"messages": [', "Error parsing json payload. Unexpected format on line 2."),
    ("json", "", "Error parsing json payload. Unexpected format on line 2."),
    ("not-an-object", "[1, 2]", "Invalid format on line 2 of the input file. Datasets must follow text"),
    ("format", {"question": "q"}, "Could not detect a format for the line 2 with the columns: dict_keys(['question'])"),
    ("extra-column", chat(user(), bot(), id=7), 'Found extra column "id" in the line 2.'),
    ("extra-column", {"text": "t", "messages": []}, 'Found extra column "messages" in the line 2.'),
    ("mixed-formats", {"text": "plain"}, "Got DatasetFormat.CONVERSATION for the first line and "
                                         "DatasetFormat.GENERAL for the line 2."),
    ("sample-weight", chat(user(), bot(), weight=-1), "sample `weight` must be a non-negative number on line 2"),
    ("sample-weight", chat(user(), bot(), weight="1"), "sample `weight`"),
    ("messages", {"messages": "hi"}, "The `messages` column must be a list. Found <class 'str'>"),
    ("messages", {"messages": []}, "The `messages` column must not be empty."),
    ("messages", {"messages": ["hi"]}, "The `messages` column must be a list of dicts. Found <class 'str'>"),
    ("missing-field", chat({"content": "x"}, bot()), "Missing required column `role` in message on line 2."),
    ("missing-field", chat({"role": "user"}, bot()), "Missing required column `content` in message on line 2."),
    ("missing-field", chat(user(), {"role": "assistant"}),
     "Missing required column `content` or `tool_calls` in message on line 2."),
    ("weight", chat(user(), bot(weight=0.5)), "Weight must be an integer on line 2."),
    ("weight", chat(user(), bot(weight=True)), "Weight must be an integer on line 2."),
    ("weight", chat(user(), bot(weight=2)), "Weight must be either 0 or 1 on line 2."),
    ("role", chat({"role": 1, "content": "x"}, bot()), "Invalid role `1` in conversation on line 2. Role must be "
                                                       "a string."),
    ("role", chat({"role": "human", "content": "x"}, bot()),
     "Invalid role `human` in conversation on line 2. Possible roles: system, user, assistant, tool"),
    ("role-turns", chat(user(), user(), bot()), "Invalid role turns on line 2 of the input file."),
    ("role-turns", chat(user(), bot(), bot()), "roles must alternate between user/assistant"),
    ("no-assistant", chat(user()), "At least one message with the assistant role must be present in the example."),
    ("content", chat({"role": "user", "content": 5}, bot()), "Invalid content type on line 2 of the input file. "
                                                             "Expected string or multimodal list of dicts"),
    ("content", chat({"role": "user", "content": ["x"]}, bot()), "the `content` field must be a list of dicts."),
    ("content", chat({"role": "user", "content": [{"text": "x"}]}, bot()), "with a `type` field"),
    ("content", chat({"role": "user", "content": [{"type": "text", "text": 3}]}, bot()), "the `text` field must"),
    ("content", chat({"role": "user", "content": [{"type": "audio"}]}, bot()),
     "the `type` field must be either 'text' or 'image_url'. Got 'audio'."),
    ("image", chat(user(), {"role": "assistant", "content": [image()]}), "only user messages can contain images."),
    ("image", chat({"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}, bot()),
     "the `image_url` field must be present in the `content` field and be a dictionary"),
    ("image", chat({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, bot()),
     "the `url` field must be present in the `image_url` field and be a string"),
    ("image", chat({"role": "user", "content": [image("http://x/cat.png")]}, bot()),
     "must be either a JPEG, PNG or WEBP base64-encoded image"),
    ("image-size", chat({"role": "user", "content": [image(PNG + "A" * (14 * 2**20))]}, bot()),
     "base64-encoded image that is less than 10MB"),
    ("images", chat({"role": "user", "content": [image()] * 11}, bot()), "must contain at most 10 images, found 11"),
    ("images", chat({"role": "user", "content": [image()] * 6}, {"role": "assistant", "content": [{"type": "text",
                                                                                                "text": "ok"}]},
                    {"role": "user", "content": [image()] * 6},
                    {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}),
     "the `messages` must contain at most 10 images. Found 12 images."),
    ("image-weight", chat({"role": "user", "content": [image()], "weight": 1},
                          {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}),
     "Messages with images cannot have non-zero weights."),
    ("mixed-content", chat({"role": "user", "content": [image()]}, bot()),
     "Messages in the conversation must be either all in multimodal or all in text-only format."),
    ("tool-calls", chat({"role": "user", "content": "x", "tool_calls": [CALL]}, bot()),
     "Only assistant messages can have `tool_calls` on line 2."),
    ("tool-calls", chat(user(), {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}),
     "Each tool call must be"),
    ("tool-calls", chat(user(), {"role": "assistant", "tool_calls": []}), "must be a non-empty list on line 2"),
    ("tool-message", chat(user(), {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "r"},
                          bot()), "must have a string `tool_call_id` on line 2."),
    ("reasoning", chat({"role": "user", "content": "x", "reasoning": "r"}, bot()),
     "Only assistant messages can have `reasoning` on line 2."),
    ("reasoning", chat(user(), bot(reasoning_content=["r"])), "The `reasoning_content` field must be a string"),
    ("tools", chat(user(), bot(), tools={"name": "f"}), "The `tools` field must be a list of function definitions"),
    ("tools", chat(user(), bot(), tools=[{"type": "function"}]), "Each tool must be"),
]
BAD_DPO = [
    ("preference", {**GOOD_DPO, "input": [user()]}, "the `input` field must be a dictionary."),
    ("preference", {**GOOD_DPO, "input": {"msgs": []}}, "the `input` dictionary must contain a `messages` field."),
    ("preference", {**GOOD_DPO, "input": {"messages": [user(), bot()]}},
     "The last message in the input conversation must not be from the assistant on line 2."),
    ("preference", {**GOOD_DPO, "preferred_output": bot()}, "the `preferred_output` field must be a list on line 2."),
    ("preference", {**GOOD_DPO, "non_preferred_output": [bot(), bot()]},
     "the `non_preferred_output` list must contain exactly one message on line 2."),
    ("preference", {**GOOD_DPO, "preferred_output": ["Blue"]},
     "the first element of `preferred_output` must be a dictionary on line 2."),
    ("preference", {**GOOD_DPO, "preferred_output": [{"content": "x"}]},
     "the first element of `preferred_output` must have a 'role' field on line 2."),
    ("preference", {**GOOD_DPO, "preferred_output": [user()]},
     "the first element of `preferred_output` must have the 'assistant' role on line 2."),
    ("preference", {**GOOD_DPO, "preferred_output": [{"role": "assistant"}]},
     "must have a 'content' or 'tool_calls' field on line 2."),
    ("messages", {**GOOD_DPO, "input": {"messages": []}}, "The `messages` column must not be empty."),
    ("extra-column", {**GOOD_DPO, "tools": []}, 'Found extra column "tools" in the line 2.'),
]
BAD_INSTRUCTION = [
    ("content", {"prompt": 1, "completion": "x"}, "Invalid content type on line 2 of the input file."),
    ("image", {"prompt": "p", "completion": [image()]}, "only user messages can contain images."),
]


def _cases():
    for rule, line, words in BAD:
        yield pytest.param(GOOD_CHAT, line, rule, words, id=f"chat-{rule}")
    for rule, line, words in BAD_DPO:
        yield pytest.param(GOOD_DPO, line, rule, words, id=f"dpo-{rule}")
    for rule, line, words in BAD_INSTRUCTION:
        yield pytest.param({"prompt": "p", "completion": "c"}, line, rule, words, id=f"instruction-{rule}")


@pytest.mark.parametrize("first,bad,rule,words", list(_cases()))
def test_each_rule_names_its_line_and_rule(tmp_path, ftctl, first, bad, rule, words):
    path = write(tmp_path, [first, bad, first])
    report = check_path(path)
    assert not report.ok
    assert [(e.line, e.rule) for e in report.errors] == [(2, rule)]
    assert words in report.errors[0].message
    result = ftctl("files", "check", path)
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}: invalid, ")
    assert lines[1].startswith(f"{path}:2: ") and lines[1].endswith(f" ({rule})") and words in lines[1]
    assert "1 invalid" in result.stderr


def test_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD_CHAT).encode() + b"\n" + '{"text": "caf\xe9"}\n'.encode("latin-1"))
    report = check_path(path)
    assert [(e.line, e.rule) for e in report.errors] == [(2, "utf8")]
    assert report.errors[0].message.startswith("File is not UTF-8 encoded. Error raised: 'utf-8' codec")


def test_a_line_longer_than_any_valid_example_is_skipped_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "MAX_LINE_BYTES", 150)
    path = write(tmp_path, [GOOD_CHAT, {"text": "x" * 500}, {"text": "short"}])
    report = check_path(path)
    assert [(e.line, e.rule) for e in report.errors] == [(2, "line-too-long"), (3, "mixed-formats")]


@pytest.mark.parametrize("name,content,rule,message", [
    ("empty.jsonl", b"", "empty", "File is empty"),
    ("data.txt", b"{}\n", "extension", "Unknown extension of file {path}. Only files with extensions .jsonl, "
                                       ".parquet, and .csv are supported."),
    ("data.csv", b"a,b\n1,2\n", "extension", "CSV files are not supported for fine-tune. Only JSONL and Parquet "
                                             "files are supported."),
])
def test_file_level_rules(tmp_path, ftctl, name, content, rule, message):
    path = tmp_path / name
    path.write_bytes(content)
    report = check_path(path)
    assert [(e.line, e.rule, e.message) for e in report.errors] == [(None, rule, message.format(path=path))]
    result = ftctl("files", "check", path)
    assert result.exit_code == 2
    assert f"{path}: {message.format(path=path)} ({rule})" in result.stdout.splitlines()


def test_a_file_over_the_size_limit_is_reported_and_still_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "MAX_FILE_SIZE_GB", 1e-7)  # ~107 bytes
    path = write(tmp_path, [GOOD_CHAT, GOOD_CHAT, {"text": "t"}])
    report = check_path(path)
    assert [(e.line, e.rule) for e in report.errors] == [(None, "size"), (3, "mixed-formats")]
    assert report.errors[0].message.startswith("Maximum supported file size is 1e-07 GB. Found file with size of")


def test_a_missing_file_is_one_error_line_and_exit_2(tmp_path, ftctl):
    good = write(tmp_path, VALID["general"])
    missing = tmp_path / "nope.jsonl"
    for args in ([good, missing], [good, missing, "--json"]):
        result = ftctl("files", "check", *args)
        assert (result.exit_code, result.stdout) == (2, "")
        assert f"File not found or path is not a regular file: {missing}" in result.stderr.splitlines()[-1]
    report = check_path(missing)  # the function reports it like any problem
    assert (report.ok, [(e.line, e.rule) for e in report.errors]) == (False, [(None, "not-found")])
    assert check_path(tmp_path).errors[0].rule == "not-found"  # a directory is not a regular file


def test_parquet_without_pyarrow_says_so_in_one_line(tmp_path, monkeypatch, ftctl):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    path = tmp_path / "tokens.parquet"
    path.write_bytes(b"PAR1 not really")
    report = check_path(path)
    assert report.format == "parquet"
    assert [(e.line, e.rule) for e in report.errors] == [(None, "parquet")]
    assert "pyarrow is not installed and is required to use parquet files" in report.errors[0].message
    assert ftctl("files", "check", path).exit_code == 2


def test_eval_purpose_only_needs_json_objects(tmp_path, ftctl):
    path = write(tmp_path, [{"question": "q", "answer": "a"}, {"anything": 1}])
    assert check_path(path).ok is False
    assert check_path(path, purpose="eval").ok is True
    assert ftctl("files", "check", path, "--purpose", "eval").exit_code == 0
    csv_path = tmp_path / "eval.csv"
    csv_path.write_text("q,a\n1,2\n3\n")
    assert [(e.line, e.rule) for e in check_path(csv_path, purpose="eval").errors] == [(2, "csv")]
    header_only = tmp_path / "header.csv"
    header_only.write_text("q,a\n")
    assert [e.rule for e in check_path(header_only, purpose="eval").errors] == ["min-samples"]
    bad = ftctl("files", "check", path, "--purpose", "train")
    assert bad.exit_code == 2 and "--purpose must be fine-tune or eval" in bad.stderr


# -- output contract ---------------------------------------------------------------------------


def test_json_is_one_report_per_file_with_the_documented_keys(tmp_path, ftctl):
    good = write(tmp_path, VALID["general"], "good.jsonl")
    bad = write(tmp_path, [GOOD_CHAT, "nope"], "bad.jsonl")
    result = ftctl("files", "check", good, bad, "--json")
    assert result.exit_code == 2
    reports = result.json()
    assert [list(r) for r in reports] == [["path", "ok", "format", "num_samples", "errors", "size_bytes",
                                           "approx_tokens"]] * 2
    assert reports[0] == {"path": str(good), "ok": True, "format": "general", "num_samples": 2, "errors": [],
                          "size_bytes": good.stat().st_size, "approx_tokens": check_path(good).approx_tokens}
    assert reports[1]["errors"] == [{"line": 2, "message": "Error parsing json payload. Unexpected format on line 2.",
                                     "rule": "json"}]
    assert result.stderr == ""  # --json: nothing else


def test_max_errors_caps_the_report_and_says_more_were_found(tmp_path, ftctl):
    path = write(tmp_path, [GOOD_CHAT] + ["{"] * 5)
    report = check_path(path, max_errors=2)
    assert [e.line for e in report.errors] == [2, 3] and report.truncated_errors and report.num_samples == 6
    result = ftctl("files", "check", path, "--max-errors", "2")
    assert result.exit_code == 2
    assert result.stdout.splitlines()[0] == f"{path}: invalid, conversational, 6 examples, ~8 tokens, 2+ problems"
    assert result.stdout.splitlines()[-1].startswith(f"{path}: more problems not shown (the first 2;")


def test_the_verdict_rounds_token_counts(tmp_path, ftctl):
    path = write(tmp_path, [{"text": "x" * 4000}] * 3)
    assert ftctl("files", "check", path).stdout == f"{path}: ok, general, 3 examples, ~3.0k tokens\n"


def test_a_million_lines_stream_in_flat_memory(tmp_path):
    """Peak RSS of a whole process checking a 94 MB file: far below the file's size (tracemalloc
    would make this test take a minute; the process's high-water mark costs nothing)."""
    path = tmp_path / "big.jsonl"
    line = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    with open(path, "wb") as f:
        for _ in range(1000):
            f.write(line * 1000)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (large) pytest process
    code = ("import json, re, sys; from ftctl.datasets import check_path; r = check_path(sys.argv[1]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1); "
            "print(json.dumps([r.ok, r.num_samples, r.approx_tokens, int(hwm) * 1024]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    ok, samples, tokens, peak_rss = json.loads(out.stdout)
    assert (ok, samples, tokens) == (True, 1_000_000, -(-7_000_000 // 4))
    assert peak_rss < 32 * 2**20 < path.stat().st_size / 2, f"peak RSS {peak_rss} bytes"


def test_memory_does_not_grow_with_the_number_of_lines(tmp_path):
    line = json.dumps(GOOD_CHAT) + "\n"
    peaks = []
    for count in (1_000, 20_000):
        path = tmp_path / f"{count}.jsonl"
        path.write_text(line * count)
        tracemalloc.start()
        try:
            assert check_path(path).num_samples == count
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] + 64 * 1024, peaks  # 20x the lines, not 20x the memory


# -- the plan -------------------------------------------------------------------------------------


def test_steps_per_epoch_follow_packing():
    # 1,000 examples, 2,000,000 tokens: packed into 4,096-token rows → 489 rows → 62 steps of 8
    assert plan.steps_per_epoch(1000, 2_000_000, batch_size=8, max_seq_length=4096, packing=True) == 62
    assert plan.steps_per_epoch(1000, 2_000_000, batch_size=8, max_seq_length=4096, packing=False) == 125
    # packing never makes more rows than examples (each is truncated to one row at most)
    assert plan.steps_per_epoch(10, 10**9, batch_size=4, max_seq_length=512, packing=True) == 3
    assert plan.steps_per_epoch(1, 3, batch_size=16, max_seq_length=512, packing=True) == 1
    assert plan.approx_tokens(9) == 3


def test_plan_with_early_stopping():
    p = plan.plan(960, 4_000_000, batch_size=8, max_seq_length=4096, n_epochs=5, n_evals=10, n_checkpoints=3,
                  early_stopping=True, patience=2, warmup_evals=1)
    assert (p.steps_per_epoch, p.total_steps, p.eval_every) == (120, 600, 60.0)
    assert p.eval_steps == tuple(range(60, 601, 60)) and p.checkpoint_steps == (200, 400, 600)
    assert (p.earliest_halt_eval, p.earliest_halt_step, p.max_steps_refunded) == (3, 180, 420)
    no_warmup = plan.plan(960, 4_000_000, batch_size=8, max_seq_length=4096, n_evals=3, early_stopping=True,
                          patience=2, warmup_evals=0)
    assert (no_warmup.earliest_halt_eval, no_warmup.max_steps_refunded) == (3, 0)  # the final evaluation
    assert plan.plan(10, 10, batch_size=1, max_seq_length=8, n_evals=4).earliest_halt_eval is None


def test_evaluation_steps_match_the_early_stopping_rule():
    from ftctl.early_stopping import evaluation_step

    for total in (1, 7, 10, 99, 120):
        for n in (1, 3, 4, 7, 10):
            assert [plan.evenly_spaced(i, total, n) for i in range(1, n + 1)] == \
                [evaluation_step(i, total, n) for i in range(1, n + 1)]


def test_fields_selects_from_the_report(tmp_path, ftctl):
    from ftctl.output.fields import KINDS

    path = write(tmp_path, VALID["general"])
    assert list(check_path(path).to_json()) == list(KINDS["file_report"])
    result = ftctl("files", "check", path, "--fields", "path,ok")
    assert (result.exit_code, result.json()) == (0, [{"path": str(path), "ok": True}])
    assert ftctl("files", "check", path, "--fields", "bogus").exit_code == 2
