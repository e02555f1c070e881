"""The one place that talks HTTP to Klaviyo: auth, revision, rate limits, retries, pagination, errors."""

import random
import re
import socket
import ssl
import threading
import time
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
)
from urllib.parse import parse_qs, urlsplit

import requests
from dlt.common import logger
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
from pyrate_limiter import InMemoryBucket, Limiter, MonotonicClock, Rate, SingleBucketFactory
from requests.adapters import HTTPAdapter

from .pages import decode_document
from .settings import DEFAULT_MAX_RETRY_AFTER, ENDPOINTS, Endpoint


class KlaviyoError(Exception):
    """Base of every error this source raises about Klaviyo's answers."""


class KlaviyoAuthError(KlaviyoError):
    """401/403: the API key is wrong, revoked or lacks a scope. Never retried."""


class KlaviyoBadRequest(KlaviyoError):
    """400: Klaviyo rejected the request's parameters. Never retried."""


class KlaviyoNotFound(KlaviyoError):
    """404: the object is gone (e.g. a list deleted mid-run)."""


class KlaviyoRevisionError(KlaviyoError):
    """410 or 'no valid revisions': the pinned API revision is retired."""


class KlaviyoQuotaExhausted(KlaviyoError):
    """429 whose Retry-After is longer than we are willing to sleep."""


class KlaviyoUnavailable(KlaviyoError):
    """5xx, timeouts, dropped connections or malformed bodies that outlasted every retry."""


class KlaviyoConnectionError(KlaviyoError):
    """The API cannot be reached in a way retrying cannot fix: TLS/certificate or name resolution."""


def checked_api_key(api_key: Any) -> str:
    """The key without surrounding whitespace, or a ValueError saying what is wrong with it.

    Checked before any request: requests would put a key with a line break or a non-Latin-1
    character into its exception text. The error describes the key and never contains it.
    """
    where = "`api_key` in .dlt/secrets.toml [sources.klaviyo] or SOURCES__KLAVIYO__API_KEY"
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError(f"api_key is empty: set a Klaviyo private API key as {where}.")
    key = api_key.strip()
    if key.startswith("<") and key.endswith(">"):
        raise ValueError(
            f"api_key is still a placeholder (as `dlt init` writes it): replace it with a Klaviyo"
            f" private API key (pk_...) as {where}."
        )
    for position, char in enumerate(key, start=1):
        if char.isspace() or not (char.isascii() and char.isprintable()):
            kind = (
                "whitespace or a line break" if char.isspace() else "a character that is not printable ASCII"
            )
            raise ValueError(
                f"api_key has {kind} at character {position} of {len(key)}: Klaviyo keys are"
                f" printable ASCII. Copy the key again into {where} (the key is not shown here)."
            )
    return key


class RetryPolicy(NamedTuple):
    max_attempts: int = 5  # attempts per request for 429, 5xx, network errors and malformed bodies
    backoff_factor: float = 1.0  # first backoff in seconds, doubled each attempt
    max_backoff: float = 60.0  # also caps the wait for one Retry-After
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER  # a 429 asking for a longer wait fails at once
    timeout: float = 60.0

    @classmethod
    def from_dlt_config(cls, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER) -> "RetryPolicy":
        """Reads dlt's `[runtime] request_*` settings, so users tune retries the dlt way."""
        runtime = resolve_configuration(RuntimeConfiguration())
        return cls(
            max_attempts=max(1, int(runtime.request_max_attempts)),
            backoff_factor=float(runtime.request_backoff_factor),
            max_backoff=float(runtime.request_max_retry_delay),
            max_retry_after=max_retry_after,
            timeout=float(runtime.request_timeout),
        )


class RateLimiter:
    """At most `burst` requests in any second and `steady` in any minute, shared by all threads.

    Klaviyo counts fixed windows on its side; pyrate-limiter's sliding window log never exceeds any
    of them. The small margins absorb the spread of network latency between our clock and Klaviyo's.
    """

    BURST_WINDOW = 1.05
    STEADY_WINDOW = 60.5

    def __init__(
        self,
        burst: int,
        steady: int,
        burst_window: float = BURST_WINDOW,
        steady_window: float = STEADY_WINDOW,
    ) -> None:
        self.burst = burst
        self.steady = steady
        rates = [Rate(steady, round(steady_window * 1000))]
        if burst < steady:  # pyrate-limiter refuses a burst rate that is no looser than the steady one
            rates.insert(0, Rate(burst, round(burst_window * 1000)))
        self._bucket = InMemoryBucket(rates)
        # pruned on each acquire: pyrate-limiter's own leaking runs a thread per bucket, i.e. per
        # endpoint and source
        self._limiter = Limiter(SingleBucketFactory(self._bucket, schedule_leak=False))
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Blocks until a request may be sent; returns the seconds waited."""
        started = time.monotonic()
        with self._lock:
            pause = self._paused_until - started
        if pause > 0:
            time.sleep(pause)
        self._limiter.try_acquire("request")
        self._bucket.leak(MonotonicClock().now())  # the bucket's clock
        return time.monotonic() - started

    def pause(self, seconds: float) -> None:
        """After a 429 every thread using this endpoint waits, not only the one that got it."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class RequestStats:
    """Counters for the end-of-run summary and for tests; each also counts into `parent`."""

    def __init__(self, parent: Optional["RequestStats"] = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self.requests = 0
        self.throttled = 0  # 429 answers
        self.retried = 0  # 5xx, network errors, malformed bodies
        self.throttle_wait = 0.0  # seconds slept on Retry-After
        self.limiter_wait = 0.0  # seconds our own limiter held requests back

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
        if self._parent is not None:
            self._parent.add(**deltas)

    def snapshot(self) -> Dict[str, float]:
        with self._lock:
            return {name: getattr(self, name) for name in STAT_NAMES}


STAT_NAMES = ("requests", "throttled", "retried", "throttle_wait", "limiter_wait")

# Every client's requests in this process: the pipeline script prints them after a run.
PROCESS_STATS = RequestStats()


def _compile_template(path: str) -> "re.Pattern[str]":
    return re.compile("^" + re.escape(path).replace(re.escape("{id}"), "[^/]+") + "/?$")


class _TryAgain(requests.HTTPError):
    """A 429, 5xx, malformed body or dropped connection: dlt's retrying session sends it again.

    It carries the response, so dlt waits as long as a 429's Retry-After asks; its text names the
    request and the problem, never the URL's query or the key.
    """


class KlaviyoAdapter(HTTPAdapter):
    """The transport below dlt's retrying session (`dlt.sources.helpers.requests.Client`).

    Each attempt, retries included, passes here: it waits for its endpoint's rate limiter, gets the
    key only if it goes to `base_url`, and Klaviyo's answer is parsed once and classified: a success,
    `_TryAgain` for dlt's retries, or a Klaviyo error that says what to fix (never retried).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        revision: str,
        max_retry_after: float,
        stats: RequestStats,
        limiters: Mapping[str, RateLimiter],
    ) -> None:
        super().__init__(pool_connections=4, pool_maxsize=64)
        self.base_url = base_url.rstrip("/")
        self.revision = revision
        self.max_retry_after = max_retry_after
        self.stats = stats
        self._authorization = f"Klaviyo-API-Key {api_key}"
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc)
        self._base_path = base.path.rstrip("/")
        # a lower tier's row first: it matches only requests that ask for its `additional-fields`
        self._routes = sorted(
            ((_compile_template(e.path), name, e) for name, e in ENDPOINTS.items()),
            key=lambda r: not r[2].tier,
        )
        self._limiters = limiters

    def __repr__(self) -> str:  # keeps the key out of any repr that dlt or a traceback prints
        return f"KlaviyoAdapter(base_url={self.base_url!r})"

    def endpoint_for(self, url: str, request_method: str = "GET") -> Tuple[str, str, Endpoint]:
        """The request described for messages, and the row of ENDPOINTS whose limits it counts on."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin or not parts.path.startswith(self._base_path):
            # never send the key anywhere but the configured API
            raise KlaviyoError(
                f"Refusing to send the API key to {parts.scheme}://{parts.netloc}{parts.path}:"
                f" it is not under base_url {self.base_url}"
            )
        relative = parts.path[len(self._base_path) :].strip("/")
        query = parse_qs(parts.query)
        for pattern, name, endpoint in self._routes:
            if pattern.match(relative) and _asks_for(query, endpoint.tier):
                return f"{request_method} /{relative}", name, endpoint
        raise KlaviyoError(f"No rate limit is known for {parts.path}; add it to settings.ENDPOINTS")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        described, name, endpoint = self.endpoint_for(request.url or "", request.method or "GET")
        request.headers["Authorization"] = self._authorization
        limiter = self._limiters[name]
        self.stats.add(requests=1, limiter_wait=limiter.acquire())
        try:
            response = super().send(request, *args, **kwargs)
            _ = response.content  # read here, so a body cut short is a connection problem of this attempt
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            reason, permanent = _connection_problem(exc)
            problem = f"cannot reach {urlsplit(request.url or '').netloc}: {reason}"
            if permanent:
                raise KlaviyoConnectionError(
                    f"{described}: {problem}. Retrying cannot fix this: check `base_url`"
                    f" ({self.base_url}), the network's DNS and proxy, and its TLS certificates."
                ) from None
            raise self._try_again(described, problem, None) from None
        status = response.status_code
        if status == 429:
            retry_after = _retry_after_seconds(response)
            if retry_after > self.max_retry_after:
                raise KlaviyoQuotaExhausted(
                    f"{described}: Klaviyo's rate limit for this endpoint is exhausted and asks"
                    f" to wait {retry_after:.0f} s (over the {self.max_retry_after:.0f} s cap)."
                    " Run again later, or raise `max_retry_after`."
                )
            # every thread of this endpoint waits (with jitter, so they do not return at once)
            pause = retry_after + random.uniform(0, 0.25 + 0.1 * retry_after)
            limiter.pause(pause)
            self.stats.add(throttled=1, throttle_wait=pause)
            logger.info(f"{described}: throttled by Klaviyo, waiting {pause:.1f} s")
            raise _TryAgain(f"{described}: HTTP 429, throttled by Klaviyo", response=response)
        if status < 400:
            try:
                _cache_json(response)
            except ValueError as exc:
                raise self._try_again(
                    described, f"HTTP {status} with a malformed body ({exc})", response
                ) from None
            return response
        if status >= 500:
            raise self._try_again(described, f"HTTP {status}", response)
        raise _client_error(described, response, self.revision, endpoint.scopes)

    def _try_again(self, described: str, problem: str, response: Optional[requests.Response]) -> _TryAgain:
        self.stats.add(retried=1)
        logger.warning(f"{described}: {problem}; dlt's retrying session tries again (runtime.request_*)")
        return _TryAgain(f"{described}: {problem}", response=response)


def _asks_for(query: Mapping[str, List[str]], tier: Optional[Tuple[str, str]]) -> bool:
    """Whether a request's query asks for what puts it on this tier (no tier: every request)."""
    if tier is None:
        return True
    parameter, value = tier
    return any(value in given.split(",") for given in query.get(parameter, ()))


def _connection_problem(exc: BaseException) -> Tuple[str, bool]:
    """The innermost reason of a failed connection, and whether it is one retrying cannot fix.

    requests wraps urllib3's error, which wraps the socket's or TLS's; their texts carry object
    reprs and the whole URL, so the reason is taken from the innermost error instead.
    """
    seen: List[BaseException] = []
    pending: List[Any] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or any(error is e for e in seen):
            continue
        seen.append(error)
        pending.extend([error.__cause__, error.__context__, getattr(error, "reason", None), *error.args])
    for error in seen:
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({error.verify_message or error.reason})", True
    for error in seen:
        if isinstance(error, socket.gaierror):
            return f"name resolution failed ({error.strerror or error})", True
    for error in seen:
        if isinstance(error, ssl.SSLError):
            return f"TLS handshake failed ({error.reason or type(error).__name__})", True
    if any(isinstance(e, requests.exceptions.SSLError) for e in seen):
        return "TLS handshake failed", True
    for error in reversed(seen):
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower(), False
    if isinstance(exc, requests.Timeout):
        return "timed out", False
    return f"connection failed ({type(exc).__name__})", False


def _retry_after_seconds(response: requests.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _cache_json(response: requests.Response) -> None:
    """Parses the body once and keeps the document instead of the body: dlt's client and
    paginator both call `response.json()` again.

    A success carries a JSON:API document with `data`. Without it dlt's paginator finds no
    `links.next` and ends the stream as if it were complete, so such a body is malformed and retried.
    """
    try:
        document = decode_document(response.content)  # speed hook: event pages decode typed (pages.py)
    except ValueError:
        raise ValueError("not JSON" if response.content else "empty") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("errors"):
        raise ValueError(f"a JSON:API errors document: {_first_error_detail(document)}")
    if "data" not in document:
        raise ValueError("no `data` member")
    response.json = lambda **_: document  # type: ignore[method-assign]
    # memory: the body is parsed, and dlt's paginator keeps the response alive while its page waits
    # to be handed on; 32 read threads each held a 1 MB body so (extraction peak at 300k events,
    # 32 workers: 293 MiB with the bodies, 257 MiB without)
    response._content = b""


def _first_error_detail(document: Mapping[str, Any]) -> str:
    errors = document.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return str(first.get("detail") or first.get("title") or "no detail")[:200]


def _error_details(response: requests.Response) -> Tuple[str, Optional[str]]:
    try:
        errors = response.json().get("errors") or [{}]
        first = errors[0]
        source = first.get("source") or {}
        return str(first.get("detail") or first.get("title") or response.reason), source.get("parameter")
    except (ValueError, AttributeError, IndexError):
        return str(response.reason or "no detail"), None


def _client_error(
    described: str, response: requests.Response, revision: str, scopes: Tuple[str, ...]
) -> KlaviyoError:
    status = response.status_code
    detail, parameter = _error_details(response)
    if status == 401:
        return KlaviyoAuthError(
            f"{described}: Klaviyo rejected the API key (HTTP 401: {detail}). Check `api_key` in"
            " .dlt/secrets.toml [sources.klaviyo] or SOURCES__KLAVIYO__API_KEY: it must be a private"
            " key (pk_...) that has not been revoked."
        )
    if status == 403:
        needed = " and ".join(scopes) or "the read scope of this stream"
        return KlaviyoAuthError(
            f"{described}: the API key is not allowed to read this (HTTP 403: {detail}). This endpoint"
            f" needs the scope {needed}: add it to the private key in Klaviyo's API key settings, or"
            " deselect the stream."
        )
    if status == 410 or (status == 404 and "revision" in detail.lower()):
        return KlaviyoRevisionError(
            f"{described}: Klaviyo no longer serves API revision {revision} (HTTP {status}: {detail})."
            " Set a current `revision` for the source (SOURCES__KLAVIYO__REVISION)."
        )
    if status == 404:
        return KlaviyoNotFound(f"{described}: not found (HTTP 404: {detail})")
    where = f" (parameter `{parameter}`)" if parameter else ""
    return KlaviyoBadRequest(f"{described}: Klaviyo rejected the request{where}: HTTP {status}: {detail}")


class Page(NamedTuple):
    data: List[Dict[str, Any]]
    included: List[Dict[str, Any]]


# Tests multiply Klaviyo's limits by this, and the emulator's by the same factor, so that no test
# waits a minute on an endpoint of 2 requests a minute; the source itself never changes it.
RATE_LIMIT_SCALE = 1.0


def _scaled(limit: int) -> int:
    return max(1, int(limit * RATE_LIMIT_SCALE))  # as the emulator scales its limits


class KlaviyoClient:
    """Pages through Klaviyo endpoints; safe to share between threads."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        revision: str,
        retry: Optional[RetryPolicy] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.revision = revision
        self._retry = retry or RetryPolicy.from_dlt_config()
        self.stats = RequestStats(parent=PROCESS_STATS)
        # one limiter per row of ENDPOINTS (an endpoint, or a lower tier of it), shared by every thread
        self.limiters = {
            name: RateLimiter(_scaled(e.burst_per_second), _scaled(e.steady_per_minute))
            for name, e in ENDPOINTS.items()
        }
        self._adapter = KlaviyoAdapter(
            api_key, self.base_url, revision, self._retry.max_retry_after, self.stats, self.limiters
        )
        # dlt's retrying session: the adapter decides what is retried by raising _TryAgain
        self._http = Client(
            request_timeout=self._retry.timeout,
            raise_for_status=False,
            status_codes=(),
            exceptions=(_TryAgain,),
            request_max_attempts=self._retry.max_attempts,
            request_backoff_factor=self._retry.backoff_factor,
            request_max_retry_delay=self._retry.max_backoff,
        )
        self._local = threading.local()

    def __repr__(self) -> str:  # keeps the key out of any repr that dlt or a traceback prints
        return f"KlaviyoClient(base_url={self.base_url!r}, revision={self.revision!r})"

    def _rest_client(self) -> RESTClient:
        rest: Optional[RESTClient] = getattr(self._local, "rest", None)
        if rest is None:
            session = self._http.session  # one per thread
            session.mount("https://", self._adapter)
            session.mount("http://", self._adapter)
            session.headers.update(
                {
                    "revision": self.revision,
                    "Accept": "application/vnd.api+json",
                    "User-Agent": "dlt-klaviyo-source",
                }
            )
            rest = RESTClient(
                base_url=self.base_url,
                paginator=JSONLinkPaginator(next_url_path="links.next"),
                data_selector="data",
                session=session,
            )
            self._local.rest = rest
        return rest

    def paginate(
        self,
        endpoint: str,
        params: Optional[Mapping[str, str]] = None,
        path_id: Optional[str] = None,
        page_size: Optional[int] = None,
        body: Optional[Dict[str, Any]] = None,
    ) -> Iterator[Page]:
        """Yields every page of `endpoint` (a key of ENDPOINTS), by default at its largest page size.

        With a `body` the request is a POST (the reporting API), paged the same way.
        """
        spec = ENDPOINTS[endpoint]
        path = spec.path.replace("{id}", path_id) if path_id is not None else spec.path
        query: Dict[str, str] = dict(params or {})
        if spec.page_size:
            query["page[size]"] = str(page_size or spec.page_size)
        # errors are raised by KlaviyoAdapter; an empty hook list turns off dlt's own handler
        method: Literal["GET", "POST"] = "POST" if body is not None else "GET"
        pages = self._rest_client().paginate(path, method, params=query, json=body, hooks={"response": []})
        try:
            for page in pages:
                document = page.response.json()
                yield Page(list(page), document.get("included") or [])
        except _TryAgain as exc:  # the last attempt failed too
            raise KlaviyoUnavailable(
                f"{exc}; gave up after {self._retry.max_attempts} attempts. Klaviyo may be degraded; run"
                " again later, or raise runtime.request_max_attempts. Tables keep what earlier runs loaded; this"
                " run's unloaded chunk is read again by the next run (see the source's chunk_rows)."
            ) from None
