"""Static checks of the per-method images: hadolint, and their structure (dockerfile-parse)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("pul", "buc", "cdsm", "ccc", "auxusl")
TORCH = {"torch", "torchvision"}
TF = {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"}


def dockerfile(method) -> Path:
    return ROOT / "docker" / f"{method}.Dockerfile"


def parsed(method):
    parser = DockerfileParser(path=str(dockerfile(method)))
    return parser, parser.structure


def instructions(structure, name):
    return [i for i in structure if i["instruction"] == name]


def requirement_names(path: Path) -> set:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("method", METHODS)
def test_hadolint_clean(method):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(dockerfile(method))], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("method", METHODS)
def test_structure(method):
    parser, structure = parsed(method)
    # GPU base by default through ARG BASE; CPU variant by build argument
    args = {i["value"].split("=")[0]: i["value"] for i in instructions(structure, "ARG")}
    assert "BASE" in args and args["BASE"].startswith("BASE=nvidia/cuda:")
    assert "VARIANT" in args and args["VARIANT"] == "VARIANT=gpu"
    assert instructions(structure, "FROM")[0]["value"] == "${BASE}"
    # every COPY source exists; only common_eval and the method's own subproject are copied
    copied = []
    for ins in instructions(structure, "COPY"):
        parts = [p for p in ins["value"].split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
            copied.append(src.rstrip("/"))
    assert "common_eval" in copied and method in copied
    assert not set(copied) & (set(METHODS) - {method}), f"{method} image copies another method"
    # non-root user, volumes, entry point
    user = instructions(structure, "USER")
    assert user and user[-1]["value"] not in ("root", "0")
    volume = " ".join(i["value"] for i in instructions(structure, "VOLUME"))
    assert "/data" in volume and "/logs" in volume
    entry = json.loads(instructions(structure, "ENTRYPOINT")[-1]["value"])
    assert entry == ["/opt/reid/reproduce.sh", method]
    # the Cython extensions are built (and imported) at build time; set-up is not redone at run time
    run = " ".join(i["value"] for i in instructions(structure, "RUN"))
    assert "import common_eval._rank" in run and ".reproduce-image" in run
    assert f"{method}/requirements.txt" in run  # its own pinned stack only


@pytest.mark.parametrize("method", METHODS)
def test_requirements_hold_only_the_methods_stack(method):
    names = requirement_names(ROOT / method / "requirements.txt")
    if method == "pul":
        assert not names & TORCH, f"pul's image must not install {names & TORCH}"
        assert names & {"tensorflow", "tensorflow-cpu"} and "keras" in names
    else:
        assert not names & TF, f"{method}'s image must not install {names & TF}"
        assert TORCH <= names
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    for line in (ROOT / method / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if m and m.group(1).lower() in pins:
            assert pins[m.group(1).lower()] == m.group(2), f"{line} disagrees with constraints.txt"


def test_build_context_excludes_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "data", "logs", ".git"):
        assert entry in ignored


def test_the_readme_shows_docker_run_for_every_image():
    readme = (ROOT / "README.md").read_text()
    for m in METHODS:
        line = next((ln for ln in readme.splitlines()
                     if ln.startswith("docker run") and f" reid-{m} " in ln), None)
        assert line, f"README.md has no `docker run ... reid-{m} ...` line"
        assert "--gpus all" in line and "--shm-size=" in line and ":/data" in line and ":/logs" in line, line
