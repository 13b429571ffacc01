"""Opens a refopt HTML report in headless Chromium with the network off and reports, as JSON on
stdout, what a reader's browser saw: console errors, page errors, dialogs (an injected script
would open one), every request the page made, the sections and charts present, the headline
tiles (key, raw value, displayed text) and whether any script element exists.

Usage: report_browser.py REPORT.html [--screenshot OUT.png] [--width 1200]
Chromium: $REFOPT_CHROMIUM, else /usr/bin/chromium (Debian package `chromium`).
"""
import argparse
import json
import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

# Chromium on a machine without internet: no background or component traffic, no sandbox as
# root, a fresh profile per run.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=1200)
    args = ap.parse_args()
    url = pathlib.Path(args.report).resolve().as_uri()
    chromium = os.environ.get("REFOPT_CHROMIUM", "/usr/bin/chromium")
    seen = {"console_errors": [], "page_errors": [], "dialogs": [], "requests": [], "blocked": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True, viewport={"width": args.width, "height": 900})

        def route(r):
            # Only the report file itself may load; anything else is recorded and refused.
            if r.request.url == url:
                r.continue_()
            else:
                seen["blocked"].append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and seen["console_errors"].append(m.text))
        page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
        page.on("request", lambda r: seen["requests"].append(r.url))

        def dialog(d):
            seen["dialogs"].append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(url, wait_until="load")
        page.wait_for_timeout(300)
        seen.update(
            page.evaluate(
                """() => ({
                  title: document.title,
                  sections: [...document.querySelectorAll('main > section')].map(s => s.id),
                  charts: [...document.querySelectorAll('figure[data-chart]')].map(f => ({
                    name: f.dataset.chart,
                    svg: !!f.querySelector('svg'),
                    width: f.querySelector('svg') ? f.querySelector('svg').getBoundingClientRect().width : 0,
                    marks: f.querySelectorAll('svg rect, svg circle, svg polyline, svg path').length,
                    insight: (f.querySelector('figcaption') || {}).innerText || null,
                  })),
                  tiles: [...document.querySelectorAll('.tile')].map(t => ({
                    key: t.dataset.key, value: t.dataset.value, display: t.querySelector('.value').innerText,
                  })),
                  scripts: document.scripts.length,
                  text: document.body.innerText,
                })"""
            )
        )
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
        browser.close()
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
