"""UTM tagging: the fast path for plain links gives exactly what urlsplit/urlunsplit give."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from hearth.templates import _PLAIN_URL, _utm_query, with_utm


def reference(url: str, sequence: str, step: str) -> str:
    """with_utm as it was before the fast path: always through urlsplit and urlunsplit."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and not p.split("=", 1)[0].startswith("utm_")]
    return urlunsplit(parts._replace(query="&".join([*kept, _utm_query(sequence, step)])))


PATH_CHARS = "abcXYZ019._~!$&'()*+,;=:@%/-"
plain_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.text("abz09.-", min_size=1, max_size=12),
    st.sampled_from(["", ":8080", ":1"]),
    st.sampled_from(["", "/"]) | st.text(PATH_CHARS, max_size=20).map(lambda p: "/" + p),
)
# Anything else: query strings, fragments, odd schemes, spaces, controls, IPv6 hosts, non-ASCII …
odd_urls = st.lists(
    st.sampled_from([*"aZ09:/?#&=%@[] \t\n.-_~é\x00", "utm_source=x", "HTTPS://", "http://h"]), max_size=12
).map("".join)


@settings(max_examples=400, deadline=None)
@given(plain_urls)
def test_plain_links_take_the_fast_path_and_match_urlsplit(url: str) -> None:
    assert _PLAIN_URL.fullmatch(url)
    assert with_utm(url, "winback", "offer") == reference(url, "winback", "offer")


@settings(max_examples=400, deadline=None)
@given(st.one_of(plain_urls, odd_urls, plain_urls.map(lambda u: u + "?a=1&utm_term=z#top")))
def test_every_link_matches_urlsplit(url: str) -> None:
    assert _outcome(with_utm, url) == _outcome(reference, url)


def _outcome(tag: Callable[[str, str, str], str], url: str) -> tuple[str, str]:
    try:
        return "ok", tag(url, "abandoned_cart", "reminder")
    except ValueError as exc:  # e.g. "Invalid IPv6 URL": the same error either way
        return "error", str(exc)


def test_links_with_a_query_or_fragment_keep_them() -> None:
    assert not _PLAIN_URL.fullmatch("https://s.example/p?a=1#x")
    assert with_utm("https://s.example/p?a=1&utm_source=fb#x", "winback", "offer") == (
        "https://s.example/p?a=1&utm_source=hearth&utm_medium=email&utm_campaign=winback&utm_content=offer#x"
    )
    assert with_utm("https://s.example/p", "winback", "offer") == (
        "https://s.example/p?utm_source=hearth&utm_medium=email&utm_campaign=winback&utm_content=offer"
    )
