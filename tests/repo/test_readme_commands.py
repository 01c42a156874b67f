"""Every command shown in a README parses: the training commands resolve their configuration
(``--print-config``), the other entry points answer ``--help``, and no README points outside
the repository.

A command is a line (with its ``\\`` continuations) of a ```bash block that starts with
``./reproduce.sh``, ``python examples/...``, ``python -m ...`` or ``torchrun``; README lines with
placeholders (``...``, ``[optional]`` parts) are not commands and are left out. Documented data
and log folders need not exist: ``--print-config`` touches neither.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PY = ROOT / ".venv" / "bin" / "python"
READMES = ["README.md", "pul/README.md", "buc/README.md", "cdsm/README.md", "ccc/README.md",
           "auxusl/README.md", "common_eval/README.md"]
# the wrapper's own commands (tests/repo/test_reproduce.py)
NOT_RUN = {"", "test", "setup", "demo", "table", "report", "gpu-check"}


START = re.compile(r"(\./reproduce\.sh|python3? (examples/|-m )|torchrun )")
PLACEHOLDERS = {"DATA": "/nonexistent/data", "DIR": "/nonexistent/dir", "LOGS": "/nonexistent/logs"}


def commands(readme: str) -> list[str]:
    """The commands of a README: lines of its code blocks and inline code spans."""
    text = (ROOT / readme).read_text()
    candidates = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S):
        candidates += re.sub(r"\\\n\s*", " ", block).splitlines()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    candidates += re.findall(r"`([^`\n]+)`", prose)
    out = []
    for line in candidates:
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not START.match(line):
            continue
        words = line.split()
        if readme == "README.md" and "examples/" in line:
            continue  # the root README names the scripts; each method's README shows them
        if ("..." in line or re.search(r"\s\[", line) or "|" in line or "<" in line
                or any(re.fullmatch(r"[A-Z]|[A-Z][A-Z_]{2,}", w) and w not in PLACEHOLDERS
                       and not re.fullmatch(r"[A-Z_]+\.[A-Z_.]+", w) for w in words)):
            continue  # a pattern with placeholders, not a command
        if line not in out:
            out.append(line)
    return out


CASES = [(readme, cmd) for readme in READMES for cmd in commands(readme)]
FAST_PER_README = 3   # ./reproduce.sh test --fast runs the first commands of each README; the rest
# are marked slow (each starts Python with torch or TensorFlow: all ~120 take 4 minutes)


def with_speed_marks(cases):
    seen: dict[str, int] = {}
    out = []
    for readme, cmd in cases:
        seen[readme] = seen.get(readme, 0) + 1
        marks = () if seen[readme] <= FAST_PER_README else pytest.mark.slow
        out.append(pytest.param(readme, cmd, id=f"{readme}: {cmd[:70]}", marks=marks))
    return out


def test_the_readmes_show_commands():
    per = {r: len(commands(r)) for r in READMES}
    assert per["README.md"] >= 8 and all(per[f"{m}/README.md"] >= 1 for m in ("pul", "buc", "ccc")), per


def resolve(readme: str, cmd: str) -> tuple[list[str], Path]:
    """The command as run here: the venv's Python, --print-config for training, --help otherwise."""
    words = [PLACEHOLDERS.get(w, w) for w in shlex.split(os.path.expandvars(os.path.expanduser(cmd)))]
    if words[0] == "./reproduce.sh" and words[1] in ("extract", "export"):  # METHOD's script, --help
        return ["bash", str(ROOT / "reproduce.sh"), *words[1:3], "--help"], ROOT
    if words[0] == "./reproduce.sh":
        cut = words.index("--") if "--" in words else len(words)
        return ["bash", str(ROOT / "reproduce.sh"), *words[1:cut], "--print-config", *words[cut:]], ROOT
    cwd = (ROOT / readme).parent
    if words[0] == "torchrun":  # one process resolves the same configuration
        words = ["python", *[w for w in words[1:] if not w.startswith("--nproc")]]
    words[0] = str(PY)
    if words[1] == "-m":
        return [*words[:3], "--help"], cwd
    script = words[1]
    if "--help" in words or "-h" in words:
        return words, cwd
    if script.endswith("train.py"):
        return [words[0], script, "--print-config", *words[2:]], cwd
    return [words[0], script, "--help"], cwd


@pytest.mark.parametrize("readme, cmd", with_speed_marks(CASES))
def test_every_readme_command_parses(readme, cmd, tmp_path):
    words = cmd.split()
    if words[0] == "./reproduce.sh" and (len(words) == 1 or words[1] in NOT_RUN):
        pytest.skip("the wrapper's own command, tested in test_reproduce.py")
    if "--eval" in words:
        pytest.skip("needs a trained checkpoint: test_reproduce.py runs --eval on one")
    argv, cwd = resolve(readme, cmd)
    env = {**os.environ, "REID_DATA": str(tmp_path / "data"), "REID_LOGS": str(tmp_path / "logs"),
           "HOME": os.environ.get("HOME", str(tmp_path))}
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"{cmd}\n-> {' '.join(argv)}\n{out.stderr[-3000:]}"
    if "--print-config" in argv:
        docs = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
        assert docs and all(isinstance(d, dict) and len(d) > 5 for d in docs), out.stdout[:2000]
        assert not (tmp_path / "logs").exists()  # nothing written


def test_readmes_refer_only_to_files_in_the_repository():
    for readme in READMES:
        text = (ROOT / readme).read_text()
        assert "shared/" not in text, f"{readme} points to shared/, which is not in the repository"
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            assert ((ROOT / readme).parent / target).exists(), f"{readme} links to missing {target}"
