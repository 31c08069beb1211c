"""Audit the locked dependencies against PyPI's vulnerability data, where pip-audit cannot run.

pip-audit asks PyPI for `/pypi/<name>/<version>/json`; some mirrors and closed networks serve only
`/pypi/<name>/json`, whose `vulnerabilities` describe the latest release. This script asks for the
version first and falls back to the project document when the locked version is the latest one.
Exit status 1 when a known, unwithdrawn vulnerability affects a locked version; versions that could
not be checked are listed (exit status 2 only with --strict).

Usage: python scripts/audit_locked.py requirements.txt [--strict]
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def fetch(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - fixed https URL
            document: dict[str, Any] = json.load(response)
            return document
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def vulnerabilities(name: str, version: str) -> list[dict[str, Any]] | None:
    """Known vulnerabilities of `name==version`, or None when PyPI cannot tell."""
    document = fetch(f"https://pypi.org/pypi/{name}/{version}/json")
    if document is None:
        document = fetch(f"https://pypi.org/pypi/{name}/json")
        if document is None or document["info"]["version"] != version:
            return None
    return [v for v in document.get("vulnerabilities", []) if not v.get("withdrawn")]


def main(arguments: list[str]) -> int:
    strict = "--strict" in arguments
    paths = [a for a in arguments if not a.startswith("--")]
    pins: list[tuple[str, ...]] = []
    for path in paths:
        with open(path, encoding="utf-8") as requirements:
            pins.extend(m.groups() for line in requirements if (m := PIN.match(line.strip())))
    found, unknown = 0, []
    for name, version in pins:
        known = vulnerabilities(name, version)
        if known is None:
            unknown.append(f"{name}=={version}")
            continue
        for vulnerability in known:
            found += 1
            fixed = ", ".join(vulnerability.get("fixed_in") or []) or "no fix"
            print(f"VULNERABLE {name}=={version}: {vulnerability.get('id')} (fixed in {fixed})")
    audited = len(pins) - len(unknown)
    print(f"audited {audited} of {len(pins)} locked packages: {found} known issues")
    if unknown:
        print("not checked (not the latest release, no per-version data): " + ", ".join(unknown))
    if found:
        return 1
    return 2 if strict and unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
