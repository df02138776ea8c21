"""metrics --plot: real PNG and SVG files with the chart's markers and legend; a clear message when
the optional extra is missing; a bad file name refused before anything is fetched."""

from __future__ import annotations

import struct
import sys
import xml.etree.ElementTree as ET

import pytest
from kit import BASE, WORKED



@pytest.fixture
def job_id(ftctl, scenario_file):
    result = ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                   scenario_file(WORKED, steps_per_epoch=24), "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_png_is_a_valid_image(ftctl, job_id, tmp_path):
    target = tmp_path / "chart.png"
    result = ftctl("metrics", job_id, "--plot", target, "--train")
    assert result.exit_code == 0, result.stderr
    assert f"Wrote {target}" in result.stderr
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 300
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    # the terminal output still comes with it
    assert "★ best 0.4213 @ step 48" in result.stdout


def test_svg_is_valid_xml_with_the_markers_and_the_legend_in_words(ftctl, job_id, tmp_path):
    target = tmp_path / "chart.svg"
    result = ftctl("metrics", job_id, "--plot", target, "--json")
    assert result.exit_code == 0, result.stderr
    result.json()  # stdout stays strict JSON; the note about the file is on stderr
    root = ET.parse(target).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for words in ("best 0.4213 @ step 48 · halted @ step 72 · patience 2", "best @ step 48", "halted @ step 72",
                  "non-improving streak", "warmup", "not run: 48 steps refunded", job_id):
        assert words in texts
    # the same run drawn twice is the same file (no timestamps), so a committed chart stays put
    again = tmp_path / "again.svg"
    ftctl("metrics", job_id, "--plot", again, "--json")
    assert again.read_bytes() == target.read_bytes()


def test_a_nan_history_plots(ftctl, scenario_file, tmp_path):
    job_id = ftctl(*BASE, "--n-evals", "5", "--sim-scenario", scenario_file([1.0, 0.8, "NaN", 0.5, 0.4],
                                                                             steps_per_epoch=60), "-q").stdout.strip()
    target = tmp_path / "nan.svg"
    assert ftctl("metrics", job_id, "--plot", target).exit_code == 0
    texts = " ".join(t.text or "" for t in ET.parse(target).getroot().iter("{http://www.w3.org/2000/svg}text"))
    assert "non-finite eval_loss" in texts


def test_missing_matplotlib_names_the_extra(ftctl, job_id, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = ftctl("metrics", job_id, "--plot", tmp_path / "chart.png")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: --plot needs matplotlib, which is not installed (install the extra: pip install 'ftctl[plot]')")
    assert not (tmp_path / "chart.png").exists()


@pytest.mark.parametrize("name, message", [
    ("chart.jpg", "--plot writes PNG or SVG: the file name must end in .png or .svg (got "),
    ("no/such/dir/chart.png", "does not exist"),
])
def test_bad_targets_exit_2_before_anything_is_fetched(ftctl, tmp_path, name, message):
    result = ftctl("metrics", "ft-unknown", "--plot", str(tmp_path / name))
    assert result.exit_code == 2 and message in result.stderr
