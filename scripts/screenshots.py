#!/usr/bin/env python3
"""Screenshots of each panel of the page, taken from the real page in Debian's headless Chromium.

  python scripts/screenshots.py --out docs/page                 # SmolLM2, 1400 px wide
  python scripts/screenshots.py --model gemma3 --width 500 --out /tmp/narrow

Starts scripts/serve.py on a free port, analyses README's prompt, opens a layer's heatmaps, scores
an evaluation item and writes one PNG per panel (panel-1-model.png, ...) into --out. Needs the
`serve` extra, selenium and Debian's chromium with chromium-driver (never a downloaded browser).
"""
import argparse
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bpe.cli import Parser  # noqa: E402

PANELS = [("panel-model", "1-model"), ("panel-tokens", "2-tokens"), ("panel-merges", "3-merges"),
          ("panel-timeline", "4-generation"), ("panel-attention", "5-attention"), ("panel-lens", "6-lens"),
          ("panel-eval", "7-evaluation")]


def png_height(path: Path) -> int:
    """The height in pixels of a PNG file (from its header)."""
    return int.from_bytes(path.read_bytes()[20:24], "big")


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="any generate.py --model spec (default smollm2)")
    p.add_argument("--out", required=True, help="folder for the PNGs (made if missing)")
    p.add_argument("--width", type=int, default=1400, help="window width in pixels (default 1400)")
    p.add_argument("--prompt", default="The capital of France is")
    args = p.parse_args(argv)
    if not 320 <= args.width <= 4000:
        p.error(f"--width must be in 320..4000, got {args.width}")
    p.require("screenshots.py", ["selenium"], "test")
    p.require("screenshots.py", ["starlette", "uvicorn"], "serve")
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        print("error: needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a folder", file=sys.stderr)
        return 2
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from testkit.browser import until
    from testkit.servers import running_server
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        o.add_argument(a)
    out.mkdir(parents=True, exist_ok=True)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    written = []
    try:
        d.set_window_size(args.width, 1200)
        with running_server("--model", args.model) as (url, _):
            d.get(f"{url}?prompt={quote(args.prompt)}&max=8")
            until(lambda: "new tokens" in d.find_element("id", "status").text, 120)
            until(lambda: d.find_elements("css selector", "#att-layer canvas.heat"), 120)
            d.find_element("id", "eval-score-one").click()
            until(lambda: d.find_elements("css selector", "#choice-result .ending"), 120)
            for panel, name in PANELS:
                path = out / f"panel-{name}.png"
                element = d.find_element("id", panel)
                for _ in range(3):            # a capture taken mid-layout can come out short: take it again
                    d.execute_script("arguments[0].scrollIntoView()", element)
                    time.sleep(0.3)
                    element.screenshot(str(path))
                    if abs(png_height(path) - element.rect["height"]) <= 2:
                        break
                written.append(path)
                print(path)
    except (TimeoutError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        d.quit()
    return 0 if written else 2


if __name__ == "__main__":
    sys.exit(main())
