"""The key is checked before any request and never echoed; connection errors name the host and the reason."""

import http.server
import os
import pickle
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo import klaviyo_source
from klaviyo.client import PROCESS_STATS

REPO = Path(__file__).resolve().parent.parent
# the part of each bad key a leak would show; every test looks for it everywhere
SECRET = "pk_LEAKCHECK_9e8d7c6b5a4f3e2d1c0b"
BAD_KEYS = {
    "line break (a key file with a comment line)": f"{SECRET}\n# klaviyo key",
    "non-Latin-1 character (a pasted ellipsis)": f"{SECRET}…",
    "space inside": f"{SECRET[:10]} {SECRET[10:]}",
    "tab inside": f"{SECRET}\tx",
}


def exception_texts(error: BaseException) -> str:
    """repr, str, args and pickle of the exception and of every exception it chains to."""
    texts = []
    while error is not None:
        texts += [repr(error), str(error), repr(error.args), repr(pickle.dumps(error))]
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return "\n".join(texts)


@pytest.mark.parametrize("problem", BAD_KEYS)
def test_a_malformed_key_is_refused_before_any_request_without_being_echoed(
    emulator: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match="api_key has") as failure:
        klaviyo_source(api_key=BAD_KEYS[problem], base_url=emulator.base_url)
    assert "not shown" in str(failure.value)
    assert SECRET[10:] not in exception_texts(failure.value)
    assert emulator.request_log == []


@pytest.mark.parametrize("placeholder", ["<configure me>", " <configure me> "])
def test_dlt_inits_placeholder_key_is_refused_locally(emulator: Any, placeholder: str) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        klaviyo_source(api_key=placeholder, base_url=emulator.base_url)
    assert emulator.request_log == []


def test_a_key_with_surrounding_whitespace_is_used_without_it(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(
        klaviyo_source(api_key=f"  {emulator.api_key}\n", base_url=emulator.base_url).with_resources(
            "metrics"
        )
    )
    assert {e.status for e in emulator.request_log} == {200}


@pytest.mark.parametrize(
    "problem", ["line break (a key file with a comment line)", "non-Latin-1 character (a pasted ellipsis)"]
)
def test_a_malformed_key_appears_in_no_output_trace_or_file(
    emulator: Any, tmp_path: Path, problem: str
) -> None:
    command = [
        sys.executable,
        str(REPO / "tests" / "pipeline_runner.py"),
        emulator.base_url,
        str(tmp_path),
        "metrics",
    ]
    env = {**os.environ, "DLT_DATA_DIR": str(tmp_path / "data")}
    # a good run first, so the pipeline has a trace that the failed run could have written to
    good = subprocess.run(
        command,
        env={**env, "SOURCES__KLAVIYO__API_KEY": emulator.api_key},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr[-2000:]
    emulator.clear_log()
    bad = subprocess.run(
        command,
        env={**env, "SOURCES__KLAVIYO__API_KEY": BAD_KEYS[problem]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "api_key has" in bad.stderr, bad.stderr[-2000:]
    trace = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlt",
            "pipeline",
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
            "klaviyo_runner",
            "trace",
        ],
        env={**env, "SOURCES__KLAVIYO__API_KEY": BAD_KEYS[problem]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert trace.returncode == 0 and "metrics" in trace.stdout, trace.stdout[-2000:] + trace.stderr[-2000:]
    outputs = bad.stdout + bad.stderr + trace.stdout + trace.stderr
    assert SECRET[10:] not in outputs
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "trace.pickle" for p in written)
    assert [str(p) for p in written if SECRET[10:].encode() in p.read_bytes()] == []
    assert emulator.request_log == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requests_sent() -> float:
    return PROCESS_STATS.snapshot()["requests"]


def test_a_refused_connection_is_retried_and_the_error_names_host_and_reason(pipeline: dlt.Pipeline) -> None:
    port = free_port()  # nothing listens there
    before = requests_sent()
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(
            klaviyo_source(api_key="pk_test", base_url=f"http://127.0.0.1:{port}/api").with_resources(
                "metrics"
            )
        )
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message and "connection refused" in message
    assert requests_sent() - before == 8  # RUNTIME__REQUEST_MAX_ATTEMPTS in conftest


def test_tls_to_a_plain_http_server_fails_at_once_naming_host_and_reason(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    https_url = emulator.base_url.replace("http://", "https://")
    host = https_url.split("/")[2]
    before = requests_sent()
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(klaviyo_source(api_key=emulator.api_key, base_url=https_url).with_resources("metrics"))
    message = str(failure.value)
    assert host in message and "TLS handshake failed" in message and "Retrying cannot fix" in message
    assert requests_sent() - before == 1


@pytest.fixture
def self_signed_https_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback whose certificate no trust store has."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()


def test_an_untrusted_certificate_fails_at_once_naming_host_and_reason(
    self_signed_https_server: str, pipeline: dlt.Pipeline
) -> None:
    before = requests_sent()
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(
            klaviyo_source(api_key="pk_test", base_url=self_signed_https_server).with_resources("metrics")
        )
    message = str(failure.value)
    assert self_signed_https_server.split("/")[2] in message
    assert "certificate verification failed" in message and "self-signed" in message
    assert requests_sent() - before == 1


def test_a_host_that_does_not_resolve_fails_at_once_naming_it(
    pipeline: dlt.Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve = socket.getaddrinfo

    def no_such_host(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "a.klaviyo.example":  # answered here: the test sends no DNS query
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    before, started = requests_sent(), time.monotonic()
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(
            klaviyo_source(api_key="pk_test", base_url="https://a.klaviyo.example/api").with_resources(
                "metrics"
            )
        )
    message = str(failure.value)
    assert "a.klaviyo.example" in message and "name resolution failed" in message
    assert requests_sent() - before == 1
    assert time.monotonic() - started < 10
