"""results.json records, the paper table, the Markdown renderer, video helpers, the bench."""
import errno
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from common_eval import evaluate, mars_split, pool_tracklets
from common_eval.paper import PAPER, paper_numbers
from common_eval.results import atomic_write_text, load_results, write_results
from common_eval.table import main as table_main
from common_eval.table import render


def metrics(map_=50.0):
    return {"ap": "stepwise", "mAP": map_, "rank1": 60.0, "rank5": 70.0, "rank10": 80.0, "mINP": 20.0}


def record(tmp_path, **over):
    fields = dict(method="cdsm", target="market", scale="smoke", common=metrics(40.0),
                  native=dict(metrics(40.0)), initial=metrics(10.0), epochs=3, wall_seconds=12.34,
                  command="./reproduce.sh cdsm market --smoke", config={"lr": 3.5e-4})
    fields.update(over)
    return write_results(tmp_path, **fields)


def test_write_and_load_round_trip(tmp_path):
    path = record(tmp_path / "logs" / "cdsm" / "market-smoke")
    rec = json.loads(path.read_text())
    assert rec["common"]["mAP"] == 40.0 and rec["initial"]["mAP"] == 10.0
    assert rec["source"] is None and rec["variant"] is None and rec["last"] == rec["common"]
    assert rec["wall_seconds"] == 12.3
    assert rec["git_commit"] is None or len(rec["git_commit"]) == 40
    (loaded,) = load_results(tmp_path / "logs")
    assert loaded["method"] == "cdsm" and loaded["_path"].endswith("results.json")


def test_metrics_from_rank_result_fit_the_contract(tmp_path):
    r = evaluate(np.array([[0.1, 0.2]]), [1], [2, 1], [0], [1, 1], max_rank=2)
    path = record(tmp_path, common=r.metrics(), native=r.metrics("sklearn018"), initial=r.metrics())
    assert json.loads(path.read_text())["native"]["ap"] == "sklearn018"


@pytest.mark.parametrize("over, message", [
    (dict(scale="full"), "scale"),
    (dict(common={"mAP": 1.0}), "common"),
    (dict(initial=None), "initial"),
])
def test_bad_records_rejected(tmp_path, over, message):
    with pytest.raises(ValueError, match=message):
        record(tmp_path, **over)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "a.json", "{}")
    atomic_write_text(tmp_path / "a.json", '{"x": 1}')
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_atomic_write_keeps_the_umask_mode(tmp_path):
    """mkstemp makes 0600 files; a shared results.json must be readable by colleagues."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640


def test_results_json_is_strict_json(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        record(tmp_path, config={"lr": float("inf")})
    assert not (tmp_path / "results.json").exists()
    with pytest.raises(ValueError, match="not JSON compliant"):
        record(tmp_path, common=metrics(float("nan")))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a real full disk); needs the right to mount (root, as in CI)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_atomic_write_on_a_full_disk_keeps_the_previous_file(small_tmpfs):
    path = small_tmpfs / "results.json"
    atomic_write_text(path, '{"first": 1}')
    big = "x" * (200 * 1024)  # more than the whole tmpfs
    with pytest.raises(OSError) as info:
        atomic_write_text(path, big)
    assert info.value.errno == errno.ENOSPC
    assert info.value.strerror == f"no space left on device while writing {path} (0.2 MB)"
    assert info.value.filename == str(path)
    assert path.read_text() == '{"first": 1}'
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["results.json"]  # no temporary left


def test_load_rejects_incomplete_results(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text('{"method": "buc"}')
    with pytest.raises(ValueError, match="lacks"):
        load_results(tmp_path)


def test_render_puts_paper_row_beside_ours(tmp_path):
    record(tmp_path / "a", method="cdsm", target="market", selection="best-on-test")
    record(tmp_path / "b", method="ccc", variant="dbscan", target="msmt17", common=metrics(33.3))
    text = render(load_results(tmp_path))
    lines = text.splitlines()
    assert lines[0].startswith("| method | variant | task | scale | selected |")
    assert any("| cdsm |  | market | smoke | best-on-test | 40.0 | 60.0" in line for line in lines)
    assert any("| ccc | dbscan | msmt17 | smoke | last | 33.3 |" in line for line in lines)
    assert any("| cdsm |  | market | paper | published | 85.6 | 93.9 | 97.8 | 98.5 | –" in line
               for line in lines)
    assert any("| ccc | dbscan | msmt17 | paper | published | 47.4 | 73.7" in line for line in lines)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    full = render(load_results(tmp_path), with_unrun_paper_rows=True)
    assert "| pul |  | duke → market | paper | published | 20.5 | 45.5 | 60.7 | 66.7 | –" in full


def test_table_cli(tmp_path, capsys):
    assert table_main([str(tmp_path / "missing")]) == 2
    record(tmp_path / "run")
    assert table_main([str(tmp_path)]) == 0
    assert "| cdsm |" in capsys.readouterr().out


def test_paper_numbers_cover_every_method_table():
    assert paper_numbers("buc", None, None, "dukevideo")["mAP"] == 66.7
    assert paper_numbers("auxusl", "ours", None, "dukevideo") == {"rank1": 91.9, "mAP": 89.9}
    assert {k[0] for k in PAPER} == {"pul", "buc", "cdsm", "ccc", "auxusl"}
    assert paper_numbers("cdsm", None, None, "veri") is None


def test_pool_tracklets_mean_and_max():
    f = np.array([[1, 0], [3, 2], [5, 5], [0, 1]], np.float32)
    np.testing.assert_allclose(pool_tracklets(f, [0, 0, 1, 1]), [[2, 1], [2.5, 3]])
    np.testing.assert_allclose(pool_tracklets(f, [0, 0, 1, 1], "max"), [[3, 2], [5, 5]])
    with pytest.raises(ValueError, match="at least one frame"):
        pool_tracklets(f, [0, 0, 2, 2])


def test_mars_split_gallery_choices():
    q, g = mars_split(6, [[2], [5]])
    np.testing.assert_array_equal(q, [1, 4])
    np.testing.assert_array_equal(g, [0, 2, 3, 5])
    q, g = mars_split(6, [2, 5], gallery="official")
    np.testing.assert_array_equal(g, np.arange(6))
    with pytest.raises(ValueError, match="1-based"):
        mars_split(6, [0])
    with pytest.raises(ValueError, match="unknown MARS gallery"):
        mars_split(6, [1], gallery="ap3d")


def test_official_mars_gallery_removes_the_query_itself():
    # tracklets: 0 = query (pid 1, cam 0), 1 = pid 1 cam 1, 2 = pid 2 cam 0
    pids, cams = np.array([1, 1, 2]), np.array([0, 1, 0])
    feats = np.array([[0.0], [0.1], [0.05]], np.float32)
    q, g = mars_split(3, [1], gallery="official")
    r = evaluate(query_features=feats[q], gallery_features=feats[g], q_pids=pids[q],
                 g_pids=pids[g], q_camids=cams[q], g_camids=cams[g], max_rank=2)
    np.testing.assert_allclose(r.cmc, [0, 1])  # pid 2 first, the query itself is junk


def test_bench_quick_runs_and_agrees():
    out = subprocess.run([sys.executable, "-m", "common_eval.bench", "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "agree: True" in out.stdout and "max |ours - dense|" in out.stdout
