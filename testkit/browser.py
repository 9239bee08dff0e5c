"""Waiting on a page in a browser: the tests and scripts/screenshots.py poll the page the same way."""
import time


def until(fn, seconds: float = 60, why=lambda: ""):
    """fn()'s first true value, polled every 0.1 s; TimeoutError (with why()) after `seconds`."""
    end = time.time() + seconds
    while time.time() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {seconds:g} s{': ' + why() if why() else ''}")
