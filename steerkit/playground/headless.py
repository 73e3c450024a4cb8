"""A headless Chromium from the system's packages (Debian: ``apt-get install chromium chromium-driver``),
driven by Selenium, for the playground's browser test and its screenshot. Nothing downloads a browser or a
driver: both are looked up on PATH (or STEERKIT_CHROMIUM / STEERKIT_CHROMEDRIVER) and refused in one line
where missing."""
from __future__ import annotations

import os
import shutil


def find_chromium() -> tuple[str, str]:
    """(browser, driver) executables; ValueError naming what is missing."""
    browser = os.environ.get("STEERKIT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("STEERKIT_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        raise ValueError(f"headless browser: no {missing} on PATH (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


def chromium(width: int = 1400, height: int = 900):
    """A headless Chromium WebDriver; close it with ``.quit()``."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise ValueError("headless browser: needs selenium (pip install selenium)") from None
    browser, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
