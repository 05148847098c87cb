"""Screenshots of a study's side-by-side comparison in the MLflow UI, taken in headless Chromium.

    python tools/mlflow_screenshots.py --store sqlite:////abs/path/mlflow.db --experiment tdrl-table4 --out docs/img

What it does, the path docs/studies.md describes ("Compare the rows in the MLflow UI"):

1. starts ``mlflow ui`` on 127.0.0.1 (a free port) against ``--store`` with
   ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: MLflow 3 otherwise starts background job workers
   (huey consumers) beside the server, which keep about one core busy on an idle 2-core machine;
2. starts Debian's ``chromium`` headless (``apt-get install -y chromium``) with a throw-away profile
   and drives it over the DevTools protocol (aiohttp's websocket client; no Selenium/Playwright);
3. opens the experiment's runs view in "Model training" mode with the trial runs only
   (``#/experiments/<id>/runs?workflowType=machine_learning&searchFilter=tags.`tdrl.role` = 'trial'``),
   groups them by the tag ``tdrl.row`` ("Group by" > ``tdrl.row``), switches to the chart view
   (``&compareRunsMode=CHART``), keeps the ``val_top1`` chart ("Search metric charts") full screen,
   then opens the parent run's "Model metrics" (``top1.<row>``), and saves
   ``<out>/mlflow_<experiment>_{runs_grouped,val_top1_by_row,parent_top1}.png``;
4. stops the server and the browser it started (their own process groups) and removes the profile.

The UI is only read; point ``--store`` at a copy when the store belongs to someone else (the UI
server may migrate an older database). The clicks follow MLflow 3.17's labels ("Group by", "Tags",
"Model training"); a label it cannot find fails with the text of the page, not a blank PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Not a secret: keeps MLflow 3's job runner (huey consumers) off; see mlflow/environment_variables.py.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(1)


def start_ui(store: str, port: int, log: Path) -> subprocess.Popen:
    """``mlflow ui`` on 127.0.0.1:port in its own process group, job execution off."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = {**os.environ, **UI_ENV}
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def start_chromium(profile: Path, width: int, height: int) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
           "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.time() + 60
    while not port_file.is_file() or not port_file.read_text().strip():
        if time.time() > deadline or proc.poll() is not None:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.3)
    return proc, int(port_file.read_text().split()[0])


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a process group this script started (SIGTERM, then SIGKILL)."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        msg_id = self.next_id
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"javascript failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def wait_text(self, text: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not await self.js(f"document.body && document.body.innerText.includes({json.dumps(text)})"):
            if time.time() > deadline:
                body = await self.js("document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise TimeoutError(f"{text!r} not on the page after {timeout:.0f}s; page text:\n{body}")
            await asyncio.sleep(0.5)

    async def click_text(self, text: str, selector: str = "button, [role=button], [role=menuitem], "
                         "[role=menuitemcheckbox], [role=menuitemradio], [role=option], [role=radio], "
                         "[role=tab], label, a, span", timeout: float = 30) -> None:
        """Click the innermost visible element matching ``selector`` whose text is ``text``."""
        js = f"""(() => {{
            const want = {json.dumps(text)};
            const els = [...document.querySelectorAll({json.dumps(selector)})].filter(e => {{
                const r = e.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && e.innerText && e.innerText.trim() === want; }});
            if (!els.length) return false;
            const el = els[els.length - 1];
            el.scrollIntoView({{block: 'center'}});
            for (const type of ['pointerdown', 'mousedown', 'pointerup', 'mouseup', 'click'])
                el.dispatchEvent(new MouseEvent(type, {{bubbles: true, cancelable: true, view: window}}));
            return true; }})()"""
        deadline = time.time() + timeout
        while not await self.js(js):
            if time.time() > deadline:
                body = await self.js("document.body.innerText.slice(0, 3000)")
                raise TimeoutError(f"no clickable {text!r}; page text:\n{body}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)

    async def type_into(self, placeholder_part: str, text: str) -> None:
        """Focus the input whose placeholder contains ``placeholder_part`` and type ``text``."""
        ok = await self.js(f"""(() => {{
            const el = [...document.querySelectorAll('input')].find(
                i => (i.placeholder || '').toLowerCase().includes({json.dumps(placeholder_part.lower())}));
            if (!el) return false; el.focus(); el.select && el.select(); return true; }})()""")
        if not ok:
            raise TimeoutError(f"no input with a placeholder like {placeholder_part!r}")
        await self.call("Input.insertText", text=text)
        await asyncio.sleep(1.5)

    async def key(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                            windowsVirtualKeyCode={"Escape": 27}.get(key, 0))
        await asyncio.sleep(1)

    async def screenshot(self, path: Path) -> Path:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        print(f"wrote {path}", flush=True)
        return path


async def take(base: str, exp_id: str, parent_id: str | None, experiment: str, out: Path, devtools: int,
               group_tag: str, metric: str) -> list[Path]:
    """The three views: the runs grouped by ``group_tag``, the ``metric`` chart of the groups
    (full screen), and the parent run's per-row metrics (``top1.<row>``)."""
    import urllib.parse

    import aiohttp

    trials = urllib.parse.quote("tags.`tdrl.role` = 'trial'")  # the rows' runs, not the parent
    runs_url = f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning&searchFilter={trials}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools}/json/list") as r:
            target = next(t for t in await r.json() if t.get("type") == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            stem = experiment.replace("/", "_")
            shots = []
            await page.call("Page.navigate", url=runs_url + "&compareRunsMode=TABLE")
            await page.wait_text("Run Name", 180)
            await page.js("""(() => { const b = [...document.querySelectorAll('button')]
                .find(e => e.getAttribute('aria-label') === 'Close'); if (b) b.click(); })()""")  # the assistant panel
            # Group the runs by the row tag: one group per row, its line the mean over the seeds.
            await page.click_text("Group by")
            await page.click_text(group_tag)
            await page.key("Escape")
            await page.wait_text(f"Group by: {group_tag}")
            await asyncio.sleep(3)
            shots.append(await page.screenshot(out / f"mlflow_{stem}_runs_grouped.png"))
            # The same groups as charts, narrowed to the metric, full screen.
            await page.js(f"location.hash = {json.dumps(runs_url.split('#', 1)[1] + '&compareRunsMode=CHART')}")
            await page.wait_text("Model metrics", 120)
            await page.type_into("search metric charts", metric)
            await asyncio.sleep(5)
            await page.js("document.querySelector('[data-component-id=fullscreen_button_chartcard]').click()")
            await asyncio.sleep(5)
            shots.append(await page.screenshot(out / f"mlflow_{stem}_{metric}_by_row.png"))
            await page.key("Escape")
            if parent_id:  # the parent run's own charts: the table's measured means, one chart per row
                await page.call("Page.navigate", url=f"{base}/#/experiments/{exp_id}/runs/{parent_id}/model-metrics"
                                                         "?workflowType=machine_learning")
                await page.wait_text("Model metrics", 120)
                await page.type_into("search metric charts", "top1.")
                await asyncio.sleep(5)
                shots.append(await page.screenshot(out / f"mlflow_{stem}_parent_top1.png"))
            return shots


def experiment_and_parent(store: str, name: str) -> tuple[str, str | None]:
    """The experiment's id and its newest study parent run (None if it has none)."""
    from mlflow.tracking import MlflowClient

    from tdrl.study.tables import find_parent_run

    exp = MlflowClient(tracking_uri=store).get_experiment_by_name(name)
    if exp is None:
        raise SystemExit(f"no experiment {name!r} in {store}")
    return exp.experiment_id, find_parent_run(store, name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="MLflow backend store URI (absolute sqlite:////... path)")
    p.add_argument("--experiment", default="tdrl-table4", help="the study's experiment (tdrl-<study>)")
    p.add_argument("--out", default="docs/img", help="folder for the PNG files")
    p.add_argument("--group-tag", default="tdrl.row", help="tag to group the runs by")
    p.add_argument("--metric", default="val_top1", help="the chart to keep")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1000)
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    exp_id, parent_id = experiment_and_parent(args.store, args.experiment)
    work = Path(tempfile.mkdtemp(prefix="tdrl-shots-"))
    ui = chrome = None
    try:
        port = free_port()
        ui = start_ui(args.store, port, work / "mlflow-ui.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health", 180)
        except TimeoutError:
            print((work / "mlflow-ui.log").read_text()[-3000:], file=sys.stderr)
            raise
        chrome, devtools = start_chromium(work / "profile", args.width, args.height)
        asyncio.run(take(base, exp_id, parent_id, args.experiment, out, devtools, args.group_tag, args.metric))
    finally:
        stop(chrome)
        stop(ui)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
