"""The caption page and the dashboard in a real browser: Debian's chromium, headless, with a
recorded clip played into its fake microphone, driven by playwright."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pysubs2
import pytest
import pytest_asyncio

from voicesub_stream._text import word_error_rate

from .helpers import encode
from .test_server import running_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.speech, pytest.mark.shared_data]

ARTIFACTS = Path(os.environ.get("VOICESUB_TEST_ARTIFACTS", "test-artifacts"))
"""Where screenshots go (``test-artifacts/`` in the checkout unless set)."""
CLIP = "whisper-cpp/jfk.wav"


@contextlib.contextmanager
def serving(**limits: Any) -> Iterator[str]:
    with running_server(**limits) as address:
        yield f"http://{address}"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The server, its model loaded and timed for live streams before a page speaks to it
    (a browser's fake microphone plays in real time, loading or not)."""
    import asyncio

    import websockets

    async def warm(url: str) -> None:
        async with websockets.connect(url.replace("http", "ws") + "/v1/stream") as ws:
            await ws.send(json.dumps({"sample_rate": 16000}))
            await ws.recv()  # admitted: the model is loaded and calibrated
            await ws.send(json.dumps({"type": "stop"}))
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.recv()

    with serving() as url:
        asyncio.run(warm(url))
        yield url


@pytest.fixture(scope="module")
def spoken(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """The clip as 16-bit WAV (what chromium's fake microphone plays), its reference and
    length."""
    from faster_whisper import decode_audio

    audio = decode_audio(str(speech_dir / CLIP))
    wav = encode(audio, tmp_path_factory.mktemp("browser") / "clip.wav")
    return wav, (speech_dir / CLIP).with_suffix(".txt").read_text(), len(audio) / 16_000


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(spoken: tuple[Path, str, float]) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={spoken[0]}%noloop",
        ])
        yield browser
        await browser.close()


async def new_page(browser: Browser) -> Page:
    page = await browser.new_page(accept_downloads=True,
                                  viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def wait_for_status(page: Page, text: str, seconds: float = 60.0) -> None:
    await page.wait_for_function(
        "text => document.getElementById('status').textContent.includes(text)", arg=text,
        timeout=seconds * 1000)


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


async def test_caption_page_captions_the_microphone(browser: Browser, server: str,
                                                    spoken: tuple[Path, str, float]) -> None:
    _, reference, seconds = spoken
    page = await new_page(browser)
    await page.goto(f"{server}/?autostart=1")
    await wait_for_status(page, "Listening")
    started, partials_seen = time.monotonic(), set()
    while time.monotonic() - started < seconds + 1.5:  # the whole clip, spoken in real time
        partials_seen.add(await page.locator("#captions p.partial").text_content())
        await page.wait_for_timeout(200)
    assert partials_seen - {""}, "no partial tail was shown while speech went on"
    await page.screenshot(path=screenshot_path("captions.png"))
    await page.click("#stop")
    await wait_for_status(page, "Stopped")
    finals = await page.locator("#captions p.final .text").all_text_contents()
    assert finals
    assert await page.locator("#captions p.partial").count() == 1
    heard = float((await page.locator("#heard").text_content() or "0 s").split()[0])
    assert heard >= seconds - 0.5, "the browser sent less audio than the clip holds"
    assert word_error_rate(reference, " ".join(finals)) <= 0.35
    assert (await page.locator("#detected").text_content()) == "en"
    assert (await page.locator("#latency").text_content() or "").endswith(" s")
    async with page.expect_download() as download:
        await page.click("#download-srt")
    subs = pysubs2.load(str(await (await download.value).path()), format_="srt")
    assert " ".join(e.plaintext.replace("\n", " ") for e in subs) == " ".join(finals)
    assert page.errors == []  # type: ignore[attr-defined]
    await page.close()


async def test_caption_page_shows_a_files_cues_as_they_arrive(
        browser: Browser, server: str, spoken: tuple[Path, str, float]) -> None:
    path, reference, _ = spoken
    page = await new_page(browser)
    await page.goto(server)
    await page.set_input_files("#file", str(path))
    await wait_for_status(page, "done")
    finals = await page.locator("#captions p.final .text").all_text_contents()
    assert word_error_rate(reference, " ".join(finals)) <= 0.25
    assert page.errors == []  # type: ignore[attr-defined]
    await page.close()


async def test_caption_page_asks_for_the_token_and_explains_refusals(
        browser: Browser) -> None:
    import websockets

    with serving(api_token="s3cret", max_sessions=1) as url:
        page = await new_page(browser)
        await page.goto(url)
        await page.wait_for_selector("#token-form:not([hidden])")
        assert await page.locator("#translate option").count() == 1  # not loaded yet
        await page.fill("#token", "s3cret")
        await page.click("#token-form button")
        await page.wait_for_function("document.querySelectorAll('#language option').length > 50")
        # The one session this server allows is taken: the page says so in words.
        address = url.replace("http", "ws") + "/v1/stream?token=s3cret"
        async with websockets.connect(address) as holder:
            await holder.send(json.dumps({"sample_rate": 16000}))
            assert json.loads(await holder.recv())["type"] == "admitted"
            await page.click("#start")
            await wait_for_status(page, "at capacity")
        assert page.errors == []  # type: ignore[attr-defined]
        await page.close()


async def test_dashboard_draws_the_monitor_as_streams_run(
        browser: Browser, server: str, spoken: tuple[Path, str, float]) -> None:
    import anyio
    import numpy as np
    import websockets
    from faster_whisper import decode_audio

    page = await new_page(browser)
    await page.goto(f"{server}/dashboard")
    await wait_for_status(page, "Updated")

    async def points() -> int:
        value = await page.locator("#card-cpu polyline").get_attribute("points") or ""
        return len(value.split())

    before = await points()
    pcm = (np.clip(decode_audio(str(spoken[0])), -1, 1) * 32767).astype("<i2").tobytes()
    seen_stream = seen_timings = False
    async with websockets.connect(server.replace("http", "ws") + "/v1/stream") as ws:
        await ws.send(json.dumps({"sample_rate": 16000}))
        assert json.loads(await ws.recv())["type"] == "admitted"
        for offset in range(0, len(pcm), 16_000):  # half a second, every half second
            await ws.send(pcm[offset:offset + 16_000])
            await anyio.sleep(0.5)
            rows = await page.locator("#streams tbody tr").all_text_contents()
            seen_stream = seen_stream or any("live" in row for row in rows)
        seen_timings = await page.locator("#timings tbody tr").count() > 0
        await page.screenshot(path=screenshot_path("dashboard.png"), full_page=True)
        await ws.send(json.dumps({"type": "stop"}))
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    assert seen_stream, "the live stream never showed in the streams table"
    assert seen_timings
    assert await points() > before  # the charts move with each sample
    assert (await page.locator("#card-memory .value").text_content() or "").endswith("MB")
    assert page.errors == []  # type: ignore[attr-defined]
    await page.close()  # its event stream ends with it
