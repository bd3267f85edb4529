"""WCAG 2.1 AA checks of a page in the browser: axe-core's rules, reflow at 320 CSS px, a visible
focus ring and the keyboard; for Playwright's sync pages, with `a` twins for its async pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

AXE_JS = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
# WCAG 2.0 and 2.1, levels A and AA (what the DOJ's ADA Title II rule asks), and axe's best
# practices on web pages (landmarks, heading order, one <h1>): a mail program supplies its own
# landmarks and headings around an e-mail, so an e-mail is held to the WCAG rules alone.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
REFLOW_WIDTH = 320  # WCAG 1.4.10: 320 CSS px wide with no scrolling in two directions

_RUN = """async (tags) => {
  const results = await axe.run(document, {
    runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
  });
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
  }));
}"""

# Where horizontal scrolling comes from, for the failure message: the widest boxes that stick out.
_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    if (r.right > width + 0.5 && getComputedStyle(e).position !== "fixed") {
      let p = e.parentElement, clipped = false;
      for (; p && p !== document.body; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== "visible") { clipped = true; break; }
      }
      if (!clipped) out.push(`${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}` +
        `${e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : ""}` +
        ` right=${Math.round(r.right)}`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 8)};
}"""

# The focused element, and whether a sighted keyboard user can see where it is: an outline or a
# box shadow, at least 2 px, at 3:1 against what is behind it (WCAG 2.4.7, 1.4.11).
_FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {ok: false, why: "nothing is focused"};
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  let bg = [255, 255, 255];
  for (let p = e.parentElement; p; p = p.parentElement) {
    const c = rgb(getComputedStyle(p).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) { bg = c.slice(0, 3); break; }
  }
  const s = getComputedStyle(e);
  const text = (e.innerText || e.value || e.getAttribute("aria-label") || "").trim().slice(0, 40);
  const name = `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} "${text}"`;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return {ok: false, why: `${name} has no size on screen`};
  if (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) {
    const c = ratio(rgb(s.outlineColor).slice(0, 3), bg);
    return {ok: c >= 3, why: `${name}: outline ${s.outlineColor} on ${bg} is ${c.toFixed(2)}:1`};
  }
  if (s.boxShadow && s.boxShadow !== "none") {
    const c = ratio(rgb(s.boxShadow).slice(0, 3), bg);
    return {ok: c >= 3, why: `${name}: box-shadow ${s.boxShadow} on ${bg} is ${c.toFixed(2)}:1`};
  }
  return {ok: false, why: `${name} shows no focus ring (outline ${s.outlineStyle} ${s.outlineWidth})`};
}"""

_INJECTED = "() => typeof window.axe !== 'undefined'"


def _report(context: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{context}: {len(violations)} accessibility violation(s) (axe-core, WCAG 2.1 AA):"]
    for v in violations:
        lines.append(f"- {v['id']} [{v['impact']}] {v['help']} ({v['helpUrl']})")
        for n in v["nodes"][:10]:
            summary = " ".join((n["summary"] or "").split())
            lines.append(f"    at {n['target']}: {summary[:300]}")
        if len(v["nodes"]) > 10:
            lines.append(f"    … and {len(v['nodes']) - 10} more")
    return "\n".join(lines)


def _tags(best_practice: bool) -> list[str]:
    return WCAG_TAGS + (["best-practice"] if best_practice else [])


def _inject(page: Any) -> None:
    # Evaluated over the DevTools protocol, so the site's Content-Security-Policy (no inline
    # script) does not refuse it, and nothing is fetched.
    if not page.evaluate(_INJECTED):
        page.evaluate(AXE_JS)


def assert_accessible(page: Any, context: str, *, best_practice: bool = True) -> None:
    """Fails with axe-core's list of what is wrong (rule, impact, where, help) on any violation."""
    _inject(page)
    violations = page.evaluate(_RUN, _tags(best_practice))
    assert not violations, _report(context, violations)


def assert_reflows(page: Any, context: str = "page") -> None:
    """At 320 CSS px wide the page scrolls only up and down; the viewport is restored after."""
    size = page.viewport_size
    page.set_viewport_size({"width": REFLOW_WIDTH, "height": size["height"] if size else 700})
    try:
        page.wait_for_function(f"window.innerWidth === {REFLOW_WIDTH}")
        seen = page.evaluate(_OVERFLOW)
    finally:
        if size:
            page.set_viewport_size(size)
    assert seen["scroll"] <= seen["width"], (
        f"{context} scrolls sideways at {REFLOW_WIDTH} px: {seen['scroll']} px wide; "
        f"sticking out: {json.dumps(seen['out'])}"
    )


def assert_focus_visible(page: Any) -> None:
    """The focused element has a ring a sighted keyboard user can see."""
    seen = page.evaluate(_FOCUS)
    assert seen["ok"], f"focus not visible: {seen['why']}"


def tab_to(page: Any, selector: str, *, backwards: bool = False, presses: int = 60) -> None:
    """Presses Tab (Shift+Tab backwards) until `selector` has the focus, at most `presses` times,
    then checks the focus ring shows."""
    key = "Shift+Tab" if backwards else "Tab"
    check = "s => document.activeElement && document.activeElement.matches(s)"
    for _ in range(presses):
        page.keyboard.press(key)
        if page.evaluate(check, selector):
            assert_focus_visible(page)
            return
    raise AssertionError(f"{selector} never got the focus in {presses} presses of {key}")


async def a_assert_accessible(page: Any, context: str, *, best_practice: bool = True) -> None:
    """assert_accessible for Playwright's async pages."""
    if not await page.evaluate(_INJECTED):
        await page.evaluate(AXE_JS)
    violations = await page.evaluate(_RUN, _tags(best_practice))
    assert not violations, _report(context, violations)


async def a_assert_reflows(page: Any, context: str = "page") -> None:
    """assert_reflows for Playwright's async pages."""
    size = page.viewport_size
    await page.set_viewport_size({"width": REFLOW_WIDTH, "height": size["height"] if size else 700})
    try:
        await page.wait_for_function(f"window.innerWidth === {REFLOW_WIDTH}")
        seen = await page.evaluate(_OVERFLOW)
    finally:
        if size:
            await page.set_viewport_size(size)
    assert seen["scroll"] <= seen["width"], (
        f"{context} scrolls sideways at {REFLOW_WIDTH} px: {seen['scroll']} px wide; "
        f"sticking out: {json.dumps(seen['out'])}"
    )


def check_page(page: Any, context: str) -> None:
    """The one call for a page a browser test visits: axe-core's WCAG 2.1 AA rules, then reflow."""
    assert_accessible(page, context)
    assert_reflows(page, context)


async def a_check_page(page: Any, context: str) -> None:
    """check_page for Playwright's async pages."""
    await a_assert_accessible(page, context)
    await a_assert_reflows(page, context)
