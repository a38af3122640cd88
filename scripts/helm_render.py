#!/usr/bin/env python3
"""Renders and lints a Helm chart with Helm's own engine, without a helm binary.

Uses helm-python-sdk (Helm's Go SDK built as a shared library, called through ctypes), which
scripts/validate-deploy.sh installs into its venv. Writes one file per rendered template into
--out (NOTES.txt and empty templates are left out), like `helm template --output-dir`.

  helm_render.py lint   CHART [--values-json JSON]
  helm_render.py render CHART --out DIR [--name heal] [--namespace heal] [--values-json JSON]
  helm_render.py expect-failure CHART --values-json JSON --message TEXT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import helm_python as helm

# Helm's lint severities.
WARNING = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["lint", "render", "expect-failure"])
    parser.add_argument("chart", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--name", default="heal")
    parser.add_argument("--namespace", default="heal")
    parser.add_argument("--values-json", default="{}", help="values overriding values.yaml, as JSON")
    parser.add_argument("--message", help="expect-failure: text the render error must contain")
    parser.add_argument("--kube-version", default=None)
    args = parser.parse_args()
    values = json.loads(args.values_json)

    if args.action == "lint":
        result = helm.lint(str(args.chart), values, strict=True, namespace=args.namespace,
                           kube_version=args.kube_version)
        bad = [m for m in result.get("messages") or [] if m.get("severity", 0) >= WARNING]
        for m in result.get("messages") or []:
            print(f"  lint [{m.get('severity')}] {m.get('path')}: {m.get('error')}")
        for e in result.get("errors") or []:
            print(f"  lint error: {e}", file=sys.stderr)
        if bad or result.get("errors"):
            print(f"helm lint {args.chart}: failed", file=sys.stderr)
            return 1
        print(f"helm lint {args.chart}: OK (Helm {helm.helm_sdk_version()})")
        return 0

    with helm.Chart.load(str(args.chart)) as chart:
        if args.action == "expect-failure":
            try:
                chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
            except helm.HelmError as e:
                if args.message and args.message not in str(e):
                    print(f"render failed, but not with {args.message!r}: {e}", file=sys.stderr)
                    return 1
                print(f"render refused as expected: {str(e).splitlines()[0]}")
                return 0
            print(f"render with {args.values_json} should have failed", file=sys.stderr)
            return 1
        rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)

    if args.out is None:
        parser.error("render needs --out")
    if args.out.exists():
        shutil.rmtree(args.out)
    count = 0
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt") or not text.strip().strip("-").strip():
            continue
        target = args.out / template
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# Source: {template}\n{text}")
        count += 1
    print(f"rendered {args.chart} as {args.name!r} ({len(args.values_json)} bytes of values) into {count} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
