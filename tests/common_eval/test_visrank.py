"""Ranked-list pictures: frame colours, order, junk handling, grid and video, read from the pixels."""
import numpy as np
import pytest
from PIL import Image

from common_eval import evaluate, visualize_ranked_results
from common_eval import visrank as vr

COLOURS = [(255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 140, 0), (120, 0, 200), (0, 0, 0),
           (255, 255, 255), (0, 120, 120), (150, 90, 40)]


def jpeg(path, colour, size=(32, 64)):
    Image.new("RGB", size, colour).save(path, quality=95, subsampling=0)
    return str(path)


def close(pixel, colour, tol=40):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, colour))


def frame_pixel(img, position, row=0):
    return img.getpixel((vr.tile_x(position) + vr.BORDER // 2, row * vr.ROW_H + vr.GAP + vr.TILE_H // 2))


def inner_pixel(img, position, row=0):
    return img.getpixel((vr.tile_x(position) + vr.BORDER + vr.CELL[0] // 2,
                         row * vr.ROW_H + vr.GAP + vr.BORDER + vr.CELL[1] // 2))


@pytest.fixture
def case(tmp_path):
    """Query pid 1 cam 0; gallery: true, false, same-camera junk, pid -1 junk, true, false."""
    g = [(jpeg(tmp_path / f"g{i}.jpg", COLOURS[i]), pid, cam)
         for i, (pid, cam) in enumerate([(1, 1), (2, 1), (1, 0), (-1, 2), (1, 2), (3, 1)])]
    q = [(jpeg(tmp_path / "q0.jpg", COLOURS[6]), 1, 0), (jpeg(tmp_path / "q1.jpg", COLOURS[7]), 2, 0)]
    dist = np.array([[0.3, 0.2, 0.1, 0.4, 0.6, 0.5],     # order g2 g1 g0 g3 g5 g4
                     [0.5, 0.1, 0.2, 0.3, 0.4, 0.6]])    # order g1 g2 g3 g0 g4 g5
    return dist, q, g


def test_rows_frames_order_and_junk_from_pixels(case, tmp_path):
    dist, q, g = case
    paths = visualize_ranked_results(dist, q, g, tmp_path / "vis", topk=3)
    assert [p.name for p in paths] == ["0000_q0.jpg", "0001_q1.jpg"]
    img = Image.open(paths[0]).convert("RGB")
    # 3 ranked items + 2 junk shown in place: junk does not use up the top-3
    assert img.size == (vr.row_width(5), vr.ROW_H)
    assert close(frame_pixel(img, 0), vr.BLUE) and close(inner_pixel(img, 0), COLOURS[6])
    expected = [(2, vr.GRAY), (1, vr.RED), (0, vr.GREEN), (3, vr.GRAY), (5, vr.RED)]
    for pos, (gi, frame) in enumerate(expected, start=1):
        assert close(frame_pixel(img, pos), frame), (pos, frame_pixel(img, pos), frame)
        assert close(inner_pixel(img, pos), COLOURS[gi]), (pos, inner_pixel(img, pos), COLOURS[gi])
    # the rank numbers skip junk
    tiles, hidden = vr.ranked_row(dist[0], 1, 0, [r[1] for r in g], [r[2] for r in g], 3)
    assert tiles == [(2, "junk", None), (1, "false", 1), (0, "true", 2), (3, "junk", None), (5, "false", 3)]
    assert hidden == 0
    # second query (pid 2): g1 is its true match at rank 1; g3 (pid -1) is junk for every query
    img1 = Image.open(paths[1]).convert("RGB")
    assert [vr.ranked_row(dist[1], 2, 0, [r[1] for r in g], [r[2] for r in g], 3)[0][k][1]
            for k in range(4)] == ["true", "false", "junk", "false"]
    assert close(frame_pixel(img1, 1), vr.GREEN) and close(inner_pixel(img1, 1), COLOURS[1])
    assert close(frame_pixel(img1, 3), vr.GRAY) and close(inner_pixel(img1, 3), COLOURS[3])
    # the grid stacks both rows (fewer than 8 queries), as wide as the widest
    grid = Image.open(tmp_path / "vis" / "grid.jpg").convert("RGB")
    assert grid.size == (max(img.width, img1.width), 2 * vr.ROW_H)
    assert close(frame_pixel(grid, 1, row=1), vr.GREEN) and close(frame_pixel(grid, 2, row=0), vr.RED)


def test_grid_of_first_eight_and_max_queries(tmp_path):
    rng = np.random.default_rng(0)
    g = [(jpeg(tmp_path / f"g{i}.jpg", COLOURS[i % 6]), i % 4, i % 3) for i in range(12)]
    q = [(jpeg(tmp_path / f"q{i}.jpg", COLOURS[i % 6]), i % 4, 5) for i in range(11)]
    dist = rng.random((11, 12))
    paths = visualize_ranked_results(dist, q, g, tmp_path / "all", topk=4, max_queries=0)
    assert len(paths) == 11 and all(p.exists() for p in paths)
    grid = Image.open(tmp_path / "all" / "grid.jpg")
    assert grid.size == (vr.row_width(4), 8 * vr.ROW_H)   # no junk (camera 5 is the queries' own)
    assert len(visualize_ranked_results(dist, q, g, tmp_path / "two", topk=4, max_queries=2)) == 2
    assert len(visualize_ranked_results(dist, q, g, tmp_path / "none", topk=4, max_queries=None)) == 11
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["0000_q0.jpg", "0001_q1.jpg", "grid.jpg"]


def test_ties_by_gallery_index_and_hidden_junk():
    tiles, hidden = vr.ranked_row([0.5, 0.5, 0.5], 7, 0, [8, 9, 7], [1, 1, 1], 2)
    assert tiles == [(0, "false", 1), (1, "false", 2)] and hidden == 0
    # five same-camera junk items before the first valid one: topk of them drawn, the rest counted
    tiles, hidden = vr.ranked_row(np.arange(7.0), 1, 0, [1, 1, 1, 1, 1, 2, 1], [0] * 5 + [1, 1], 2)
    assert [t[1] for t in tiles] == ["junk", "junk", "false", "true"] and hidden == 3


def test_first_ranked_item_agrees_with_evaluate_rank1():
    rng = np.random.default_rng(3)
    q_pids, g_pids = rng.integers(0, 6, 30), rng.integers(-1, 6, 80)
    q_cams, g_cams = rng.integers(0, 3, 30), rng.integers(0, 3, 80)
    dist = rng.random((30, 80))
    r = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=1)
    hits = []
    for i in range(30):
        valid = (g_pids == q_pids[i]) & (g_cams != q_cams[i])
        if not valid.any():
            continue  # skipped by the protocol
        tiles, _ = vr.ranked_row(dist[i], q_pids[i], q_cams[i], g_pids, g_cams, 1)
        hits.append(tiles[-1][1] == "true")
    assert np.mean(hits) == pytest.approx(r.cmc[0])


def test_video_draws_the_middle_frame(tmp_path):
    frames = [jpeg(tmp_path / f"f{i}.jpg", COLOURS[i]) for i in range(4)]
    q = [([frames[0], frames[3], frames[0]], 0, 0)]               # middle of 3: frames[3]
    g = [(frames[:3], 1, 1), (frames, 0, 1)]                        # middle: frames[1], frames[2]
    (path,) = visualize_ranked_results([[0.2, 0.1]], q, g, tmp_path / "v", topk=2)
    img = Image.open(path).convert("RGB")
    assert close(inner_pixel(img, 0), COLOURS[3])
    assert close(inner_pixel(img, 1), COLOURS[2]) and close(frame_pixel(img, 1), vr.GREEN)
    assert close(inner_pixel(img, 2), COLOURS[1]) and close(frame_pixel(img, 2), vr.RED)


def test_bad_input_names_the_problem(tmp_path):
    good = jpeg(tmp_path / "a.jpg", COLOURS[0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    q = [(good, 0, 0)]
    with pytest.raises(ValueError, match="missing.jpg"):
        visualize_ranked_results([[0.1]], q, [(str(tmp_path / "missing.jpg"), 1, 1)], tmp_path / "o")
    with pytest.raises(ValueError, match="broken.jpg"):
        visualize_ranked_results([[0.1]], q, [(str(broken), 1, 1)], tmp_path / "o")
    with pytest.raises(ValueError, match="shape"):
        visualize_ranked_results([[0.1, 0.2]], q, [(good, 1, 1)], tmp_path / "o")
    with pytest.raises(ValueError, match="NaN"):
        visualize_ranked_results([[np.nan]], q, [(good, 1, 1)], tmp_path / "o")
    with pytest.raises(ValueError, match="topk"):
        visualize_ranked_results([[0.1]], q, [(good, 1, 1)], tmp_path / "o", topk=0)
    with pytest.raises(ValueError, match="empty frame list"):
        visualize_ranked_results([[0.1]], q, [([], 1, 1)], tmp_path / "o")
    assert not (tmp_path / "o" / "grid.jpg").exists()
