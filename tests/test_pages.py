"""The endpoints behind the caption page and the dashboard, without a browser."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx
import pysubs2
import pytest

from .test_server import running_server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.speech

SEGMENT = {"start": 1.0, "end": 2.5, "text": "Hello there, and welcome.", "is_final": True,
           "words": [], "language": "en"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server(api_token="s3cret") as address:
        yield f"http://{address}"


AUTH = {"Authorization": "Bearer s3cret"}


def test_pages_are_served_and_hold_no_data(server: str) -> None:
    for path, marker in (("/", 'id="captions"'), ("/dashboard", 'id="cards"'),
                         ("/static/captions.js", "WebSocket"),
                         ("/static/pcm-worklet.js", "registerProcessor")):
        response = httpx.get(server + path)  # open: the data behind them is not
        assert response.status_code == 200, path
        assert marker in response.text
    assert httpx.get(server + "/v1/languages").status_code == 401


def test_languages_lists_what_the_page_offers(server: str) -> None:
    body = httpx.get(server + "/v1/languages", headers=AUTH).json()
    assert body["spoken"][:3] == ["en", "es", "fr"]
    assert len(body["spoken"]) > 90
    assert set(body["translate_to"]) <= set(body["spoken"])
    assert body["profiles"] == ["netflix", "netflix-children", "bbc"]
    assert "tiny.en" in body["models"]


def test_subtitles_are_rendered_to_the_profile(server: str) -> None:
    partial = {**SEGMENT, "start": 3.0, "end": 3.5, "text": "not yet", "is_final": False}
    response = httpx.post(server + "/v1/subtitles", headers=AUTH, json={
        "format": "vtt", "segments": [SEGMENT, partial]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/vtt")
    assert 'filename="captions.vtt"' in response.headers["content-disposition"]
    (cue,) = pysubs2.SSAFile.from_string(response.text)
    assert cue.plaintext == SEGMENT["text"]  # finals only
    assert cue.end - cue.start >= 1250  # 25 characters, read at 20 a second


@pytest.mark.parametrize(("body", "param"), [
    ({"format": "docx", "segments": []}, "format"),
    ({"format": "srt", "segments": "all of them"}, "segments"),
    ({"format": "srt", "segments": [{"text": "no times"}]}, "segments"),
    ({"format": "srt", "segments": [], "profile": "itv"}, "profile"),
])
def test_bad_subtitle_requests_name_the_field(server: str, body: dict[str, object],
                                              param: str) -> None:
    response = httpx.post(server + "/v1/subtitles", headers=AUTH, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    garbled = httpx.post(server + "/v1/subtitles", headers=AUTH, content=b"{not json")
    assert garbled.status_code == 400


def test_dashboard_events_start_with_the_recent_samples(server: str) -> None:
    assert httpx.get(server + "/v1/dashboard/events").status_code == 401
    with httpx.stream("GET", server + "/v1/dashboard/events?token=s3cret",
                      timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        events: list[tuple[str, dict[str, object]]] = []
        kind = ""
        for line in lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if kind == "sample":
                    break
    assert events[0][0] == "hello"
    assert {"samples", "alerts", "interval"} <= set(events[0][1])
    sample = events[-1][1]
    assert {"point", "scheduler", "cache", "admission", "timings", "streams"} <= set(sample)
    point = sample["point"]
    assert isinstance(point, dict)
    assert point["rss"] > 0
