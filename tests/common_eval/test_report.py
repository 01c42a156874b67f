"""The HTML report of all runs: self-contained, every run and paper row in it, every picture
decodes (with PIL here and in headless Chromium), history curves read from each method's shape.

``check_in_chromium(html_path)`` is meant for reuse (tests/repo renders two real smoke runs):

    spec = importlib.util.spec_from_file_location("ce_report", "tests/common_eval/test_report.py")
"""
import base64
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common_eval import visualize_ranked_results
from common_eval.paper import paper_numbers
from common_eval.report import history_series, main
from common_eval.results import write_results

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
DATA_URI = re.compile(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"')


def check_in_chromium(html_path, screenshot=None, window_size=(1400, 2000), timeout=90):
    """Loads ``html_path`` in headless Chromium (a fresh profile, no network services) and returns
    ``(pictures decoded, pictures in the page)`` as the page's own load-time script counted them
    (``<body data-images-ok="N/M">``). With ``screenshot``, also writes a PNG of the page."""
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom"]
        if screenshot is not None:   # one start does both: the DOM on stdout, the PNG to the file
            cmd += [f"--screenshot={Path(screenshot).resolve()}",
                    f"--window-size={window_size[0]},{window_size[1]}"]
        out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
    m = re.search(r'<body[^>]*data-images-ok="(\d+)/(\d+)"', out.stdout)
    if m is None:
        raise RuntimeError("the page's load script did not run (no data-images-ok=N/M on <body>): "
                           + out.stdout[:300])
    if screenshot is not None and not Path(screenshot).is_file():
        raise RuntimeError(f"chromium wrote no screenshot {screenshot}: {out.stderr[-2000:]}")
    return int(m.group(1)), int(m.group(2))


def metrics(map_, r1=None):
    r1 = map_ + 10 if r1 is None else r1
    return {"ap": "stepwise", "mAP": map_, "rank1": r1, "rank5": r1 + 5, "rank10": r1 + 8, "mINP": map_ / 3}


def make_runs(root: Path) -> dict:
    """Two runs as CDSM and BUC write them (their history shapes), the CDSM run with ranked lists."""
    cdsm, buc = root / "cdsm" / "market-smoke", root / "buc" / "market-smoke"
    cdsm_hist = [{"epoch": e, "clusters": 40 - 5 * e, "outliers": 7 - e, "reliable": 100, "lr": 3.5e-4,
                  "loss": 4.0 - e, "extract_s": 1.0, "cluster_s": 0.5, "train_s": 3.0,
                  "mAP": 20.0 + 5 * e, "rank1": 30.0 + 5 * e, "eval_s": 1.0} for e in range(3)]
    write_results(cdsm, method="cdsm", target="market", scale="smoke", common=metrics(30.0),
                  native=metrics(30.0), initial=metrics(8.0), selection="best-on-test",
                  last=metrics(30.0), epochs=3, wall_seconds=61.0, config={"lr": 3.5e-4, "epochs": 3},
                  command='python examples/train.py --note "<b>&amp"', best_epoch=2, history=cdsm_hist)
    buc_hist = [{"step": s, "clusters": 60 - 20 * s, "common": metrics(10.0 + s), "native": metrics(11.0 + s),
                 "merge_purity": 0.9} for s in range(2)]
    write_results(buc, method="buc", target="market", scale="smoke", common=metrics(11.0),
                  native=metrics(12.0), initial=metrics(5.0), selection="best-on-test",
                  last=metrics(11.0), epochs=4, wall_seconds=40.0, config={"lr": 0.1},
                  command="python examples/train.py -d market1501 --smoke", selected_step=1,
                  history=buc_hist)
    # ranked lists written by the real drawing code
    imgs = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]):
        p = root / f"img{i}.jpg"
        Image.new("RGB", (32, 64), colour).save(p)
        imgs.append(str(p))
    visualize_ranked_results(np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]]),
                             [(imgs[0], 1, 0), (imgs[1], 2, 0)], [(imgs[1], 1, 1), (imgs[2], 2, 1),
                                                                  (imgs[3], 1, 0)],
                             cdsm / "visrank", topk=2)
    return {"cdsm": cdsm, "buc": buc}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "logs"
    runs = make_runs(root)
    assert main([str(root)]) == 0
    out = root / "report.html"
    return root, runs, out, out.read_text()


def test_report_is_self_contained_and_complete(report, capsys):
    root, runs, out, text = report
    # nothing points outside the file: no URL at all, links are in-page anchors
    assert not re.search(r"https?://", text)
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text):
        assert ref.startswith(("data:", "#")), ref
    # both runs, each with its section, command (escaped), commit and selection
    assert 'id="run-1"' in text and 'id="run-2"' in text
    assert "buc market (smoke)" in text and "cdsm market (smoke)" in text
    assert "&lt;b&gt;&amp;amp" in text and "<b>&amp\"" not in text
    assert "best-on-test best_epoch 2" in text and "best-on-test selected_step 1" in text
    # the table: each run's row then the paper's row with the published numbers
    rows = re.findall(r'<tr class="(run|paper)">(.*?)</tr>', text, flags=re.S)
    assert [kind for kind, _ in rows] == ["run", "paper", "run", "paper"]
    for (_, run_row), (_, paper_row), method in zip(rows[0::2], rows[1::2], ("buc", "cdsm")):
        assert f"<td class=\"t\">{method}</td>" in run_row and "best-on-test" in run_row
        paper = paper_numbers(method, None, None, "market")
        assert "published" in paper_row and f"<td>{paper['mAP']:.1f}</td>" in paper_row
    # every embedded picture decodes: two curve plots and the ranked-list grid
    pictures = DATA_URI.findall(text)
    assert [m for m, _ in pictures] == ["image/png", "image/png", "image/jpeg"]
    for _, data in pictures:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            assert im.width > 100 and im.height > 100
    assert base64.b64decode(pictures[2][1]) == (runs["cdsm"] / "visrank" / "grid.jpg").read_bytes()
    assert text.count("no ranked lists") == 1   # the BUC run has none


def test_history_shapes_of_the_five_methods():
    cdsm = {"history": [{"epoch": 0, "clusters": 9, "loss": 2.0}, {"epoch": 1, "clusters": 8, "loss": 1.5,
                                                                    "mAP": 40.0, "rank1": 50.0}]}
    assert history_series(cdsm) == ("epoch", {"mAP": ([1.0], [40.0]), "rank1": ([1.0], [50.0]),
                                              "clusters": ([0.0, 1.0], [9.0, 8.0]),
                                              "loss": ([0.0, 1.0], [2.0, 1.5])})
    buc = {"history": [{"step": 0, "clusters": 100, "common": metrics(10.0), "native": metrics(12.0)},
                       {"step": 1, "clusters": 50}]}
    assert history_series(buc) == ("step", {"mAP": ([0.0], [10.0]), "rank1": ([0.0], [20.0]),
                                            "clusters": ([0.0, 1.0], [100.0, 50.0])})
    pul = {"history": [{"iteration": 1, "selected": 80, "clusters_used": 12, "ari": 0.2},
                       {"iteration": 2, "selected": 90, "clusters_used": 14, "ari": 0.3,
                        "eval": {"common": metrics(7.0), "native": metrics(8.0)}}]}
    assert history_series(pul) == ("iteration", {"mAP": ([2.0], [7.0]), "rank1": ([2.0], [17.0]),
                                                 "clusters": ([1.0, 2.0], [12.0, 14.0])})
    assert history_series({"history": []}) == ("entry", {})
    assert history_series({}) == ("entry", {})
    # NaN or non-numbers are left out, not plotted
    odd = {"history": [{"epoch": 1, "loss": float("nan"), "mAP": "n/a", "clusters": True}]}
    assert history_series(odd) == ("epoch", {})


def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "common_eval.report"]
    out = subprocess.run([*cmd, str(tmp_path / "empty")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    assert "no results.json" in out.stderr and not (tmp_path / "empty" / "report.html").exists()
    assert main([str(tmp_path / "missing")]) == 2
    broken = tmp_path / "broken" / "run"
    broken.mkdir(parents=True)
    (broken / "results.json").write_text("{not json")
    (tmp_path / "broken" / "report.html").write_text("previous")
    assert main([str(tmp_path / "broken")]) == 2
    assert (tmp_path / "broken" / "report.html").read_text() == "previous"


def test_out_option_and_printed_path(report, tmp_path, capsys):
    root = report[0]
    target = tmp_path / "sub" / "r.html"
    assert main([str(root), "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target) and target.read_text().startswith("<!DOCTYPE html>")
    assert main([str(root), "--out", str(tmp_path)]) == 2   # a folder


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="headless check needs Debian's chromium at /usr/bin/chromium "
                           "(apt-get install chromium; .ci/run installs it)")
def test_report_loads_in_headless_chromium(report, tmp_path):
    _, _, out, text = report
    shot = tmp_path / "report.png"
    ok, total = check_in_chromium(out, screenshot=shot)
    assert (ok, total) == (3, 3)
    with Image.open(shot) as im:
        assert im.size == (1400, 2000)
        rgb = np.asarray(im.convert("RGB"))
    # a rendered page: text, table and plots, not a blank or error page
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    assert len(np.unique(packed)) > 200
    assert (rgb < 100).all(axis=2).mean() > 0.002        # dark pixels (text, lines)
    # a broken picture is counted as such by the same check
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace("data:image/jpeg;base64,", "data:image/jpeg;base64,AAAA", 1))
    assert check_in_chromium(broken) == (2, 3)


if __name__ == "__main__" and len(sys.argv) == 3:   # screenshot of a report: test_report.py HTML PNG
    print(check_in_chromium(sys.argv[1], screenshot=sys.argv[2]))
elif __name__ == "__main__":
    sys.exit("usage: python tests/common_eval/test_report.py REPORT.html SHOT.png")
