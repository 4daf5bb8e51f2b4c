"""The browser driver writ's browser tests talk to: one headless Debian chromium, shared by
every run of a test binary, driven through Playwright for Python.

Protocol (one JSON object per line):
  stdout, once:  {"ready": true, "browser": "<version>"} or {"ready": false, "error": "..."}
  stdin:         {"id": N, "base_url": "http://localhost:P", "test": "name", "steps": [...]}
  stdout:        {"id": N, "ok": true, "results": [...], "console": [...],
                  "page_errors": [...], "screenshots": [...]}
             or  {"id": N, "ok": false, "failed_step": i | null, "error": "...", ...same}

Each request runs in its own browser context (own cookies, own storage) and page, so tests
sharing the browser do not see each other. Requests run concurrently. The driver exits when
stdin closes: the test binary that started it has ended.

Environment: WRIT_CHROMIUM (the browser executable), WRIT_AXE_JS (axe-core's axe.min.js),
WRIT_SCREENSHOTS (the directory screenshots go under, one folder per test),
WRIT_STEP_TIMEOUT_MS (how long a step waits for an element or navigation).
"""

import asyncio
import json
import os
import re
import sys
import traceback

from playwright.async_api import async_playwright

# Test and screenshot names become path components: nothing that can climb or hide.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A request line bigger than this is refused rather than parsed.
MAX_REQUEST_BYTES = 1 << 20
# The longest a wait_for_text step may wait.
MAX_WAIT_MS = 30_000


class StepError(Exception):
    """A step that cannot run as written (bad argument); the message says which."""


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def need(step, key, kind=str):
    value = step.get(key)
    if not isinstance(value, kind):
        raise StepError(f"step {step.get('do')!r} needs {key!r} as {kind.__name__}")
    return value


def safe_name(value, what):
    if not isinstance(value, str) or not SAFE_NAME.match(value):
        raise StepError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '-' or '_'"
        )
    return value


class Run:
    """One request: a context and a page, the console they produced, the screenshots taken."""

    def __init__(self, driver, context, page, test):
        self.driver = driver
        self.context = context
        self.page = page
        self.test = test
        self.console = []
        self.page_errors = []
        self.screenshots = []
        self.cdp = None
        self.authenticator = None
        self.dialogs = []
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def on_console(self, message):
        location = message.location or {}
        self.console.append(
            {
                "type": message.type,
                "text": message.text,
                "url": location.get("url", ""),
                "line": location.get("lineNumber", 0),
            }
        )

    async def screenshot(self, name):
        folder = os.path.join(self.driver.screenshots, self.test)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name + ".png")
        await self.page.screenshot(path=path, full_page=True)
        self.screenshots.append(path)
        return path

    async def session(self):
        if self.cdp is None:
            self.cdp = await self.context.new_cdp_session(self.page)
        return self.cdp

    # Steps: each takes the step's JSON object and returns its JSON result.

    async def step_goto(self, step):
        response = await self.page.goto(need(step, "path"))
        if response is None:
            return {"status": None, "url": self.page.url, "headers": {}}
        return {
            "status": response.status,
            "url": self.page.url,
            "headers": await response.all_headers(),
        }

    async def step_viewport(self, step):
        width, height = need(step, "width", int), need(step, "height", int)
        if not (100 <= width <= 4000 and 100 <= height <= 4000):
            raise StepError("viewport width and height must be 100-4000 pixels")
        await self.page.set_viewport_size({"width": width, "height": height})
        return {}

    async def step_color_scheme(self, step):
        scheme = need(step, "scheme")
        if scheme not in ("light", "dark"):
            raise StepError(f"color scheme {scheme!r} is not light or dark")
        await self.page.emulate_media(color_scheme=scheme)
        return {}

    async def step_fill(self, step):
        await self.page.locator(need(step, "selector")).fill(need(step, "value"))
        return {}

    async def step_check(self, step):
        await self.page.locator(need(step, "selector")).check()
        return {}

    async def step_select(self, step):
        selected = await self.page.locator(need(step, "selector")).select_option(
            need(step, "value")
        )
        return {"selected": selected}

    async def step_press(self, step):
        await self.page.locator(need(step, "selector")).press(need(step, "key"))
        return {}

    async def step_click(self, step):
        locator = self.page.locator(need(step, "selector"))
        if step.get("navigates", False):
            async with self.page.expect_navigation():
                await locator.click()
            return {"url": self.page.url}
        await locator.click()
        return {}

    async def step_wait_for(self, step):
        state = step.get("state", "visible")
        if state not in ("attached", "detached", "visible", "hidden"):
            raise StepError(f"wait_for state {state!r} is not attached/detached/visible/hidden")
        await self.page.locator(need(step, "selector")).first.wait_for(state=state)
        return {}

    async def step_wait_for_text(self, step):
        # Polled here, not in the page: the console's CSP forbids the string evaluation
        # Playwright's own text waits may need, and a poll reads the text as `text` does.
        selector, want = need(step, "selector"), need(step, "text")
        timeout_ms = step.get("timeout_ms", self.driver.timeout_ms)
        if not isinstance(timeout_ms, int) or not 0 < timeout_ms <= MAX_WAIT_MS:
            raise StepError(f"wait_for_text timeout_ms must be 1-{MAX_WAIT_MS}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        last = None
        while True:
            locator = self.page.locator(selector)
            if await locator.count() == 1:
                last = (await locator.inner_text()).strip()
                if last == want:
                    return {"text": last}
            if loop.time() >= deadline:
                raise StepError(
                    f"{selector!r} did not read {want!r} within {timeout_ms} ms (last: {last!r})"
                )
            await asyncio.sleep(0.1)

    async def step_text(self, step):
        locator = self.page.locator(need(step, "selector"))
        return {"text": await locator.inner_text()}

    async def step_count(self, step):
        return {"count": await self.page.locator(need(step, "selector")).count()}

    async def step_attribute(self, step):
        locator = self.page.locator(need(step, "selector"))
        return {"value": await locator.get_attribute(need(step, "name"))}

    async def step_evaluate(self, step):
        value = await self.page.evaluate(need(step, "expression"), step.get("arg"))
        return {"value": value}

    async def step_screenshot(self, step):
        return {"path": await self.screenshot(safe_name(step.get("name"), "screenshot name"))}

    async def step_axe(self, step):
        # Injected through the DevTools protocol, not a <script> tag: a page whose CSP forbids
        # inline script (the console's) is checked as served.
        cdp = await self.session()
        loaded = await cdp.send(
            "Runtime.evaluate", {"expression": self.driver.axe_source + "\n;typeof axe"}
        )
        if loaded.get("result", {}).get("value") != "object":
            raise StepError(f"axe-core did not load: {loaded}")
        context = step.get("selector") or "document"
        report = await self.page.evaluate(
            """async (selector) => {
                const context = selector === "document" ? document : selector;
                const result = await axe.run(context, {resultTypes: ["violations"]});
                return result.violations.map(v => ({
                    id: v.id,
                    impact: v.impact,
                    help: v.help,
                    targets: v.nodes.map(n => n.target.join(" ")),
                }));
            }""",
            context,
        )
        return {"violations": report}

    async def step_cookies(self, step):
        cookies = await self.context.cookies()
        return {
            "cookies": [
                {
                    "name": c["name"],
                    "value": c["value"],
                    "domain": c["domain"],
                    "path": c["path"],
                    "http_only": c["httpOnly"],
                    "secure": c["secure"],
                    "same_site": c["sameSite"],
                    "expires": c["expires"],
                }
                for c in cookies
            ]
        }

    async def step_accept_dialogs(self, step):
        # Without a handler Playwright dismisses every dialog: a confirm() answers false.
        async def accept(dialog):
            self.dialogs.append({"type": dialog.type, "message": dialog.message})
            await dialog.accept()

        self.page.on("dialog", accept)
        return {}

    async def step_dialogs(self, step):
        return {"dialogs": list(self.dialogs)}

    async def step_virtual_authenticator(self, step):
        if self.authenticator is not None:
            raise StepError("this run already has a virtual authenticator")
        cdp = await self.session()
        await cdp.send("WebAuthn.enable", {"enableUI": False})
        added = await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": bool(step.get("user_verified", True)),
                    "automaticPresenceSimulation": True,
                }
            },
        )
        self.authenticator = added["authenticatorId"]
        return {"authenticator_id": self.authenticator}

    async def step_passkeys(self, step):
        if self.authenticator is None:
            raise StepError("passkeys needs a virtual_authenticator step first")
        cdp = await self.session()
        listed = await cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )
        # The private key stays in the authenticator: a test needs to know a passkey exists.
        return {
            "credentials": [
                {
                    "credential_id": c["credentialId"],
                    "rp_id": c.get("rpId"),
                    "resident": c.get("isResidentCredential"),
                    "user_handle": c.get("userHandle"),
                    "sign_count": c.get("signCount"),
                }
                for c in listed["credentials"]
            ]
        }


STEPS = {
    name[len("step_"):]: getattr(Run, name) for name in dir(Run) if name.startswith("step_")
}


class Driver:
    def __init__(self, browser, axe_source, screenshots, timeout_ms):
        self.browser = browser
        self.axe_source = axe_source
        self.screenshots = screenshots
        self.timeout_ms = timeout_ms

    async def handle(self, line):
        try:
            request = json.loads(line)
        except ValueError as error:
            emit({"id": None, "ok": False, "failed_step": None, "error": f"bad request: {error}"})
            return
        rid = request.get("id") if isinstance(request, dict) else None
        try:
            reply = await self.run(request)
        except Exception as error:  # the driver must outlive any one request
            reply = {"ok": False, "failed_step": None, "error": f"{type(error).__name__}: {error}"}
        reply["id"] = rid
        emit(reply)

    async def run(self, request):
        if not isinstance(request, dict):
            raise StepError("a request is a JSON object")
        test = safe_name(request.get("test"), "test name")
        base_url = request.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise StepError("base_url must be an http:// or https:// URL")
        steps = request.get("steps")
        if not isinstance(steps, list):
            raise StepError("steps must be a JSON list")
        context = await self.browser.new_context(base_url=base_url)
        context.set_default_timeout(self.timeout_ms)
        try:
            page = await context.new_page()
            run = Run(self, context, page, test)
            results = []
            failed, error = None, None
            for index, step in enumerate(steps):
                try:
                    if not isinstance(step, dict) or step.get("do") not in STEPS:
                        known = ", ".join(sorted(STEPS))
                        raise StepError(f"unknown step {step!r}; steps are: {known}")
                    results.append(await STEPS[step["do"]](run, step))
                except Exception as problem:
                    failed, error = index, f"{type(problem).__name__}: {problem}"
                    break
            if failed is not None:
                try:
                    await run.screenshot(f"failed-step-{failed}")
                except Exception:
                    pass  # a page that cannot be drawn still reports the step that failed
            reply = {
                "ok": failed is None,
                "results": results,
                "console": run.console,
                "page_errors": run.page_errors,
                "screenshots": run.screenshots,
            }
            if failed is not None:
                reply["failed_step"] = failed
                reply["error"] = error
            return reply
        finally:
            await context.close()


async def main():
    chromium = os.environ["WRIT_CHROMIUM"]
    with open(os.environ["WRIT_AXE_JS"], encoding="utf-8") as f:
        axe_source = f.read()
    screenshots = os.environ["WRIT_SCREENSHOTS"]
    timeout_ms = int(os.environ.get("WRIT_STEP_TIMEOUT_MS", "5000"))
    # Chromium refuses to start as root with its sandbox on (CI runs as root): only then is
    # it off (Playwright then passes --no-sandbox).
    sandbox = not (hasattr(os, "geteuid") and os.geteuid() == 0)
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=chromium, headless=True, chromium_sandbox=sandbox
            )
        except Exception as error:
            emit({"ready": False, "error": f"launching {chromium}: {error}"})
            return
        emit({"ready": True, "browser": browser.version})
        driver = Driver(browser, axe_source, screenshots, timeout_ms)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_REQUEST_BYTES)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        tasks = set()
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                emit({"id": None, "ok": False, "failed_step": None,
                      "error": f"request line over {MAX_REQUEST_BYTES} bytes"})
                break
            if not line:
                break
            task = asyncio.create_task(driver.handle(line))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        await browser.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
