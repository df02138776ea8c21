"""`ftctl compare`: three runs of the worked example with patience 1, 2 and 4, through the CLI:
the settings that differ, each outcome, one chart with every run's markers, JSON and images."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ftctl.output import chart

from kit import BASE, WORKED
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def three(ftctl, scenario_file) -> list[str]:
    ids = []
    for patience in ("1", "2", "4"):
        result = ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--patience", patience,
                       "--random-seed", "7", "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24), "-q")
        assert result.exit_code == 0, result.stderr
        ids.append(result.stdout.strip())
    return ids


def test_json_names_the_differing_settings_and_each_outcome(ftctl, three):
    result = ftctl("compare", *three, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["differing_settings"] == ["patience"]
    assert [j["job_id"] for j in data["jobs"]] == three
    assert [j["settings"]["patience"] for j in data["jobs"]] == [1, 2, 4]
    outcomes = [j["outcome"] for j in data["jobs"]]
    assert [o["halt_step"] for o in outcomes] == [60, 72, None]
    assert [o["best_step"] for o in outcomes] == [48, 48, 120]
    assert [o["best_eval_loss"] for o in outcomes] == [0.4213, 0.4213, 0.37]
    assert [o["steps_refunded"] for o in outcomes] == [60, 48, 0]
    assert all(o["cost_usd"] > 0 for o in outcomes)
    assert data["jobs"][0]["settings"]["learning_rate"] == 1e-05


def test_piped_it_prints_the_tables_and_one_chart_with_a_legend_line_per_run(ftctl, three):
    out = ftctl("compare", *three).stdout
    lines = out.splitlines()
    assert lines[0].split("\t") == ["SETTING", *three]
    assert lines[1].split("\t") == ["patience", "1", "2", "4"]
    outcome = {line.split("\t")[0]: line.split("\t") for line in lines if line.startswith("ft-")}
    assert outcome[three[0]][2:5] == ["60", "48", "0.4213"] and outcome[three[2]][2] == "—"
    legend = [line.strip() for line in lines if any(line.strip()[2:].startswith(i + ":") for i in three)]
    assert legend == [f"● {three[0]}: ★ best 0.4213 @ step 48 · ✖ halted @ step 60 · patience 1",
                      f"▲ {three[1]}: ★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2",
                      f"■ {three[2]}: ★ best 0.37 @ step 120 · not stopped early · patience 4"]


def test_on_a_terminal_each_run_has_its_own_marker_row_under_the_axis(ftctl, three):
    out = ANSI.sub("", ftctl("compare", *three, "--color", "always", env={"FTCTL_FORCE_TTY": "100"}).stdout)
    lines = out.splitlines()
    axis = next(n for n, line in enumerate(lines) if line.lstrip().startswith("└"))
    rows = lines[axis + 1:axis + 4]
    ticks = lines[axis + 4]
    origin = ticks.index("0")

    def column(step: int) -> int:  # the x scale: 0 at the "0" label, 120 at the axis' end
        return origin + round(step * (len(lines[axis].rstrip()) - 1 - lines[axis].index("└") - 1) / 120)

    for row, (best, halt) in zip(rows, [(48, 60), (48, 72), (120, None)]):
        assert abs(row.index("★") - column(best)) <= 1
        if halt is not None:
            assert abs(row.index("✖") - column(halt)) <= 1 and "╌" in row[row.index("✖"):]
        else:
            assert "✖" not in row
    assert [row.strip()[0] for row in rows] == ["●", "▲", "■"]


def test_distinct_glyphs_for_distinct_histories():
    a = chart.Series("a", [10, 20, 30], [1.0, 0.5, 0.7], best_step=20, best_value=0.5, halt_step=30, total_steps=40)
    b = chart.Series("b", [10, 20, 30, 40], [2.0, 1.8, 1.6, 1.4], best_step=40, best_value=1.4, total_steps=40)
    text = "\n".join(chart.render_many([a, b], width=60).lines())
    plot = text.split("└")[0]
    assert "●" in plot and "▲" in plot and plot.count("★") == 2 and plot.count("✖") == 1
    ascii_text = "\n".join(chart.render_many([a, b], width=60, unicode=False).lines())
    assert not any(ord(ch) > 127 for ch in ascii_text)


def test_png_and_svg_are_real_images_with_every_run_in_the_legend(ftctl, three, tmp_path):
    png, svg = tmp_path / "c.png", tmp_path / "c.svg"
    for target in (png, svg):
        result = ftctl("compare", *three, "--plot", str(target))
        assert result.exit_code == 0 and f"Wrote {target}" in result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    for job_id in three:
        assert job_id in texts
    assert "halted @ step 60" in texts and "halted @ step 72" in texts and "best @ step 120" in texts


def test_works_offline_on_saved_histories(ftctl, three, tmp_path):
    files = []
    for n, job_id in enumerate(three[:2]):
        path = tmp_path / f"{n}.json"
        path.write_text(ftctl("metrics", job_id, "--json").stdout)
        files += ["--from-file", str(path)]
    result = ftctl("compare", *files, "--json", env={"FTCTL_BACKEND": "together",
                                                     "TOGETHER_BASE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 0, result.stderr
    assert [j["outcome"]["halt_step"] for j in result.json()["jobs"]] == [60, 72]


def test_one_run_is_not_a_comparison(ftctl, three, tmp_path):
    result = ftctl("compare", three[0])
    assert result.exit_code == 2 and "compare needs two runs or more" in result.stderr
    result = ftctl("compare", *three, "--plot", str(tmp_path / "c.gif"))
    assert result.exit_code == 2 and "--plot writes PNG or SVG" in result.stderr
