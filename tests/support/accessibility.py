"""axe-core, from npm, run in the page under test: the WCAG 2.1 A and AA rules, read as text.

The script is read from node_modules (installed by `npm ci` with the design system) and run in
the page by Playwright, so it is never served by the portal itself.
"""

from functools import cache
from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SERIOUS = {"serious", "critical"}

_RUN = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    helpUrl: violation.helpUrl,
    nodes: violation.nodes.map((node) => ({
      target: node.target.map(String),
      html: node.html,
      summary: node.failureSummary,
    })),
  }));
}"""


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict]:
    """Every WCAG 2.0/2.1 A and AA violation axe finds in the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Run as a function through the DevTools protocol, not as an inline <script> tag, which
        # the portal's Content-Security-Policy refuses (as it should).
        page.evaluate("() => {\n" + _axe_source() + "\n}")
    return page.evaluate(_RUN, WCAG_TAGS)


def serious(violations: list[dict], allowed: dict[str, str] | None = None) -> list[dict]:
    """The serious and critical violations, less the rule ids in `allowed` (id → reason)."""
    allowed = allowed or {}
    return [v for v in violations if v["impact"] in SERIOUS and v["id"] not in allowed]


def format_violations(violations: list[dict], limit: int = 5) -> str:
    """One block per rule: its id, impact and help, then the elements at fault."""
    if not violations:
        return "no violations"
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} "
            f"<{violation['helpUrl']}>"
        )
        for node in violation["nodes"][:limit]:
            lines.append(f"  at {' '.join(node['target'])}")
            lines.append(f"     {node['html'][:200]}")
            for summary in (node["summary"] or "").splitlines():
                lines.append(f"     | {summary}")
        if len(violation["nodes"]) > limit:
            lines.append(f"  … and {len(violation['nodes']) - limit} more")
    return "\n".join(lines)
