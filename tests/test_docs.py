"""Every code block of README.md and klaviyo/README.md, and every docstring example, runs as written.

The blocks run against the emulator: its base URL and key reach the source through dlt's
environment configuration (SOURCES__KLAVIYO__BASE_URL, SOURCES__KLAVIYO__API_KEY), as a user's
would through `.dlt/secrets.toml`; the text of a block is never changed.
"""

import doctest
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import requests
import tomllib

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)


def code_blocks(document: Path, lang: str) -> List[str]:
    blocks = []
    for match in FENCE.finditer(document.read_text()):
        if match["lang"] == lang:
            indent = len(match["indent"])
            blocks.append("".join(line[indent:] for line in match["body"].splitlines(keepends=True)))
    return blocks


def block_params(lang: str) -> List[Any]:
    return [
        pytest.param(document, block, id=f"{document.relative_to(REPO)}:{lang}:{index}")
        for document in (REPO / "README.md", REPO / "klaviyo" / "README.md")
        for index, block in enumerate(code_blocks(document, lang))
    ]


def user_env(home: Path, emulator: Any) -> Dict[str, str]:
    return {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PYTHONPATH": str(REPO),
        "DLT_DATA_DIR": str(home / "dlt-home"),
        "SOURCES__KLAVIYO__BASE_URL": emulator.base_url,
        "SOURCES__KLAVIYO__API_KEY": emulator.api_key,
        # the several-accounts section's keys in [sources.klaviyo.accounts]
        "SOURCES__KLAVIYO__ACCOUNTS__BRAND_A": emulator.api_key,
        "SOURCES__KLAVIYO__ACCOUNTS__BRAND_B": emulator.api_key,
    }


def run(
    command: List[str], cwd: Path, env: Dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# what the text around a block tells the reader to do first
BEFORE = {
    "attach 'klaviyo_": [sys.executable, str(REPO / "klaviyo_pipeline.py"), "--accounts", "brand_a,brand_b"]
}


@pytest.mark.parametrize(("document", "block"), block_params("python"))
def test_a_python_block_of_the_readme_runs_as_written(
    emulator: Any, tmp_path: Path, document: Path, block: str
) -> None:
    env = user_env(tmp_path, emulator)
    for marker, command in BEFORE.items():
        if marker in block:
            prepared = run(command, tmp_path / "work", env)
            assert prepared.returncode == 0, prepared.stderr
    result = run([sys.executable, "-c", block], tmp_path / "work", env)
    assert result.returncode == 0, result.stderr
    if "union all by name" in block:  # the several-accounts query sees both accounts
        assert "brand_a" in result.stdout and "brand_b" in result.stdout, result.stdout


@pytest.mark.parametrize(("document", "block"), block_params("toml"))
def test_a_toml_block_of_the_readme_is_a_secrets_file_dlt_reads(document: Path, block: str) -> None:
    assert tomllib.loads(block)["sources"]["klaviyo"]["api_key"].startswith("pk_")


def test_the_docstring_example_of_the_source_runs(emulator: Any, tmp_path: Path) -> None:
    import klaviyo

    examples = doctest.DocTestParser().get_examples(klaviyo.__doc__ or "")
    assert examples
    code = "".join(example.source for example in examples)
    result = run([sys.executable, "-c", code], tmp_path / "work", user_env(tmp_path, emulator))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "work" / "klaviyo.duckdb").exists()


def script_docstring_commands() -> List[Any]:
    import klaviyo_pipeline

    lines = (klaviyo_pipeline.__doc__ or "").splitlines()
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("python klaviyo_pipeline.py")]
    return [pytest.param(command, id=command) for command in commands]


@pytest.mark.parametrize("command", script_docstring_commands())
def test_a_command_of_the_scripts_docstring_runs(emulator: Any, tmp_path: Path, command: str) -> None:
    args = shlex.split(command)[2:]
    script = [sys.executable, str(REPO / "klaviyo_pipeline.py"), *args]
    result = run(script, tmp_path / "work", user_env(tmp_path, emulator))
    assert result.returncode == 0, result.stderr
    assert "Loaded " in result.stdout


def fresh_clone(target: Path) -> Path:
    """The repository's files as a clone has them (symlinks kept)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        source, copy = REPO / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    return target


def offline_venv(clone: Path) -> None:
    """A `.venv` that sees this environment's packages, so the README's own `python3 -m venv .venv`
    and `pip install -r requirements.txt` run as written without a download (PIP_NO_INDEX)."""
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True)
    site = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages")][0]
    Path(site, "this_environment.pth").write_text(f"import sys; sys.path.insert(0, {ours!r})\n")


def readme_command(words: str) -> str:
    return next(block for block in code_blocks(REPO / "README.md", "bash") if words in block).strip()


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="copies the git checkout")
def test_the_try_it_command_runs_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    offline_venv(clone)
    python_dir = str(Path(sys.executable).parent)  # `python3` is this interpreter
    env = {
        **os.environ,
        "PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": str(tmp_path / "dlt-home"),
    }
    env.pop("PYTHONPATH", None)
    result = run(["bash", "-c", readme_command("klaviyo_pipeline.py --demo")], clone, env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert (clone / "klaviyo_demo.duckdb").exists()
    demo_output = result.stdout[result.stdout.index("Extract") :]
    assert "warning" not in (demo_output + result.stderr).lower()


def test_the_run_the_tests_command_is_what_ci_runs() -> None:
    # running the whole suite from inside it would recurse; .ci/run runs exactly this command
    assert readme_command(".venv/bin/python -m pytest") in (REPO / ".ci" / "run").read_text()


def test_every_bash_block_of_the_readme_is_run_by_a_test() -> None:
    covered = (
        "klaviyo_pipeline.py --demo",
        ".venv/bin/python -m pytest",
        "python -m klaviyo_emulator --help",
    )
    blocks = code_blocks(REPO / "README.md", "bash")
    assert len(blocks) == len(covered)
    assert all(any(words in block for block in blocks) for words in covered)


def free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def emulator_lines() -> List[Tuple[str, str]]:
    block = readme_command("python -m klaviyo_emulator --help")
    return [(line.split("#")[0].strip(), line.partition("#")[2].strip()) for line in block.splitlines()]


@pytest.mark.parametrize(("command", "comment"), emulator_lines())
def test_an_emulator_command_of_the_readme_runs(tmp_path: Path, command: str, comment: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, *shlex.split(command)[1:]]
    if "--help" in argv:
        assert run(argv, tmp_path, env).returncode == 0
        return
    url, key = comment.split(", key ")
    port = int(url.split(":")[2].split("/")[0])
    if not free(port):
        pytest.skip(f"port {port} is taken on this machine")
    server = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        answer = None
        for _ in range(100):
            try:
                answer = requests.get(
                    f"{url}/lists",
                    headers={"Authorization": f"Klaviyo-API-Key {key}", "revision": "2026-07-15"},
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
