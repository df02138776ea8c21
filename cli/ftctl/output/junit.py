"""``ftctl report --format junit``: one test case per job, for a CI's test-results view. A job
passes when it completed; it fails (with the reason) when it ended in error or was cancelled, and,
with ``--fail-on-early-stop``, when early stopping halted it; a job still running is skipped.
The early-stopping facts ride along as ``<properties>``. Built with xml.etree (escaping is
its job, not ours). Rendering only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftctl.output import outcome

if TYPE_CHECKING:
    from ftctl.comparison import Compared

SUITE = "ftctl fine-tuning jobs"
PROPERTIES = ("status", "fired", "reason", "halt_step", "best_step", "best_eval_loss", "steps_refunded",
              "total_steps", "patience", "min_delta", "warmup_evals", "settings_source", "replay_agrees")


def _value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def verdict(c: Compared, *, fail_on_early_stop: bool) -> tuple[str, str] | None:
    """(``failure`` | ``skipped``, message), or None for a pass."""
    if outcome.failed(c):
        return "failure", f"{c.job_id} {outcome.sentence(c)}"
    if outcome.running(c):
        return "skipped", f"{c.job_id} is {outcome.sentence(c)}"
    if fail_on_early_stop and c.analysis.fired:
        return "failure", f"{c.job_id} {outcome.sentence(c)} (--fail-on-early-stop)"
    return None


def report(items: list[Compared], *, fail_on_early_stop: bool = False) -> str:
    import xml.etree.ElementTree as ET

    verdicts = [verdict(c, fail_on_early_stop=fail_on_early_stop) for c in items]
    failures = sum(1 for v in verdicts if v and v[0] == "failure")
    skipped = sum(1 for v in verdicts if v and v[0] == "skipped")
    counts = {"tests": str(len(items)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "ftctl", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts})
    for c, v in zip(items, verdicts):
        case = ET.SubElement(suite, "testcase", {"classname": "ftctl.job", "name": c.job_id or "saved history",
                                                  "time": "0"})
        properties = ET.SubElement(case, "properties")
        facts = {"status": outcome.status(c), **c.analysis.early_stopping()}
        model = c.job.get("model_output_name") or c.job.get("model")
        if model:
            facts["model"] = model
        for name in (*PROPERTIES, "model"):
            if name in facts:
                ET.SubElement(properties, "property", {"name": name, "value": _value(facts[name])})
        if v is not None:
            kind, message = v
            element = ET.SubElement(case, kind, {"message": message, **({"type": outcome.status(c)}
                                                                       if kind == "failure" else {})})
            if kind == "failure":
                element.text = message
        out = ET.SubElement(case, "system-out")
        out.text = outcome.sentence(c)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
