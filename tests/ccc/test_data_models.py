"""Datasets (real naming rules and layouts), 3C's identity sampler, the model and its weights,
the DataParallel emulation and race-free re-ranking."""
import copy
import json
import logging
import shutil
import urllib.error

import numpy as np
import pytest
import torch
import torchvision

import common_eval
from ccc import datasets, models
from ccc.data import RandomMultipleGallerySampler
from ccc.errors import DatasetError, PretrainedWeightsError
from ccc.models.ghost_bn import set_ghost_bn
from ccc.models.resnet import imagenet_weights
from common_eval.synthetic import generate


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    for layout in ("msmt17", "veri776"):
        generate(layout, root, seed=1, domain="a", ids=6, test_ids=4)
    return root


def test_market(tiny_root):
    d = datasets.create("market1501", tiny_root)
    manifest = json.loads((tiny_root / "Market-1501-v15.09.15.synthetic.json").read_text())["stats"]
    assert len(d.train) == manifest["train"]["images"] and len(d.query) == manifest["query"]["images"]
    assert d.train == sorted(d.train) and all(0 <= c <= 5 for _, _, c in d.train + d.query + d.gallery)
    assert all(p >= 0 for _, p, _ in d.gallery)            # junk (-1) dropped, distractors (0) kept
    assert any(p == 0 for _, p, _ in d.gallery)


def test_veri(layouts):
    d = datasets.create("veri", layouts)
    assert d.root.name == "VeRi"
    assert all("/image_train/" in p for p, _, _ in d.train) and all("/image_test/" in p for p, _,
                                                                    _ in d.gallery)
    assert max(c for _, _, c in d.train + d.query + d.gallery) <= 19
    name = d.train[0][0].rsplit("/", 1)[1]                  # VVVV_cCCC_FFFFFFFF_N.jpg
    assert int(name[:4]) == d.train[0][1] and int(name[6:9]) - 1 == d.train[0][2]


def test_msmt17_official_and_converted(layouts, tmp_path):
    d = datasets.create("msmt17", layouts)
    lists = (layouts / "MSMT17_V1" / "list_train.txt").read_text().split("\n")
    n_val = len((layouts / "MSMT17_V1" / "list_val.txt").read_text().split())
    # train = list_train + list_val
    assert len(d.train) == len([x for x in lists if x.strip()]) + n_val // 2
    # a Market-style conversion of the same images reads the same records
    conv = tmp_path / "MSMT17_V1"
    for split, items in (("bounding_box_train", d.train), ("query", d.query), ("bounding_box_test",
                                                                               d.gallery)):
        (conv / split).mkdir(parents=True)
        for i, (path, pid, cam) in enumerate(items):
            shutil.copy(path, conv / split / f"{pid:04d}_c{cam + 1}_{i:05d}.jpg")
    c = datasets.create("msmt17", tmp_path)
    for a, b in ((d.train, c.train), (d.query, c.query), (d.gallery, c.gallery)):
        assert sorted((p, cam) for _, p, cam in a) == sorted((p, cam) for _, p, cam in b)


def test_counts_and_naming_checks(tiny_root, tmp_path, caplog):
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", tmp_path / "Market-1501-v15.09.15")  # no manifest
    with caplog.at_level(logging.WARNING):
        datasets.create("market1501", tmp_path)
    assert "counts differ from the official statistics: train" in caplog.text and "12936" in caplog.text
    bad = next((tmp_path / "Market-1501-v15.09.15" / "query").glob("*.jpg"))
    bad.rename(bad.with_name("1600_c1s1_000001_00.jpg"))
    with pytest.raises(DatasetError, match="identity 1600 is outside 0..1501"):
        datasets.create("market1501", tmp_path)
    shutil.rmtree(tmp_path / "Market-1501-v15.09.15" / "query")
    with pytest.raises(DatasetError, match="missing query/"):
        datasets.create("market1501", tmp_path)


def test_sampler_follows_3c():
    # id 0: cameras 0 0 1 2; id 1: one camera, 3 images; id 2: a single image (skipped)
    items = [("a", 0, 0), ("b", 0, 0), ("c", 0, 1), ("d", 0, 2), ("e", 1, 3), ("f", 1, 3), ("g", 1, 3),
             ("h", 2, 1)]
    s = RandomMultipleGallerySampler(items, num_instances=4, seed=0)
    assert len(s) == 8
    for _ in range(20):
        out = list(s)
        assert len(out) == 8 and 7 not in out
        for group in (out[:4], out[4:]):
            anchor, rest = group[0], group[1:]
            pid, cam = items[anchor][1], items[anchor][2]
            assert all(items[i][1] == pid for i in rest)
            same_id = [i for i, it in enumerate(items) if it[1] == pid and i != anchor]
            other_cams = [i for i in same_id if items[i][2] != cam]
            # all the images of other cameras (fewer than 3: all, then one again), else the id's other images
            assert set(rest) == set(other_cams or same_id)
    nocam = list(RandomMultipleGallerySampler(items, num_instances=4, seed=0, use_cameras=False))
    assert len(nocam) == 8
    assert list(RandomMultipleGallerySampler(items, 4,
                                             seed=3)) == list(RandomMultipleGallerySampler(items, 4, seed=3))


def test_model_shapes_and_last_stride():
    m = models.create("resnet18", pretrained="none", pooling_type="gem").eval()
    with torch.no_grad():
        assert m.base(torch.zeros(1, 3, 64, 32)).shape[-2:] == (4, 2)   # last stride 1
        f = m(torch.randn(3, 3, 64, 32))
    assert f.shape == (3, 512) and torch.allclose(f.norm(dim=1), torch.ones(3))
    assert not m.feat_bn.bias.requires_grad and float(m.gap.p.detach()) == 3.0
    big = models.create("resnet50", pretrained="none")
    assert big.base[7][0].conv2.stride == (1, 1) and big.base[7][0].downsample[0].stride == (1, 1)


def test_imagenet_weights_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = torchvision.models.resnet18()
    with torch.no_grad():
        net.conv1.weight.fill_(0.125)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    m = models.create("resnet18", pretrained="imagenet", version="V1")
    assert float(m.base[0].weight[0, 0, 0, 0]) == 0.125
    assert "11ad3fa6" in imagenet_weights("resnet50",
                                          "V2").url and "0676ba61" in imagenet_weights("resnet50").url
    with pytest.raises(PretrainedWeightsError, match="no IMAGENET1K_V2 weights for resnet18"):
        models.create("resnet18", pretrained="imagenet", version="V2")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(PretrainedWeightsError, match="do not fit this backbone"):
        models.create("resnet18", pretrained=str(tmp_path / "bad.pth"))


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(PretrainedWeightsError) as e:
        models.create("resnet50", pretrained="imagenet", version="V2")
    assert "Put resnet50-11ad3fa6.pth (from https://" in str(e.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in str(e.value)
    with pytest.raises(PretrainedWeightsError, match="put resnet50_ibn_a-d9d0bb7b.pth .*IBN-Net/releases"):
        models.create("resnet_ibn50a", pretrained="imagenet")


def test_data_parallel_emulation():
    """--bn-slices 2 (ghost BN) = the model run on each half batch, as DataParallel's replicas."""
    torch.manual_seed(0)
    m = set_ghost_bn(models.create("resnet18", pretrained="none"), 2).train()
    state = copy.deepcopy(m.state_dict())
    x = torch.randn(8, 3, 32, 16)
    out = m(x)

    def fresh():
        net = models.create("resnet18", pretrained="none").train()
        net.load_state_dict(state)
        return net

    halves = fresh()
    with torch.no_grad():
        expected = torch.cat([halves(x[:4]), halves(x[4:])])     # BatchNorm statistics per half batch
        first = fresh()
        first(x[:4])
    torch.testing.assert_close(out.detach(), expected)
    # running statistics: those of the first half only (the replica on the first device)
    ours, theirs = m.state_dict(), first.state_dict()
    buffers = [k for k in ours if "running" in k or "num_batches" in k]
    assert buffers and all(torch.equal(ours[k], theirs[k]) for k in buffers)


def test_rerank_is_race_free():
    rng = np.random.default_rng(0)
    qf = rng.standard_normal((40, 16)).astype(np.float32)
    gf = rng.standard_normal((200, 16)).astype(np.float32)
    a = common_eval.k_reciprocal_rerank(query_features=qf, gallery_features=gf, num_threads=1)
    b = common_eval.k_reciprocal_rerank(query_features=qf, gallery_features=gf, num_threads=2)
    assert np.array_equal(a, b)
