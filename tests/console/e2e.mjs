// End-to-end test of the heal console in headless Chromium (Debian's, driven by
// playwright-core), with an axe-core accessibility check on every page.
//
//   node e2e.mjs --base http://127.0.0.1:8080 --out DIR [--chromium /usr/bin/chromium]
//
// Expects a server with the demo's data (`heal demo --approve backfill`): at least one open
// incident with an action waiting for approval. Saves a screenshot of every page in DIR and
// prints a JSON report; exits 1 when a step or the accessibility check fails.

import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const base = (args.base || "http://127.0.0.1:8080").replace(/\/$/, "");
const out = args.out || "console-e2e";
const executablePath = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
fs.mkdirSync(out, { recursive: true });
const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const report = { base, steps: [], accessibility: {}, failures: [] };
const fail = (step, why) => report.failures.push(`${step}: ${why}`);

async function check(step, fn) {
  const started = Date.now();
  try {
    await fn();
    report.steps.push({ step, ok: true, ms: Date.now() - started });
  } catch (e) {
    report.steps.push({ step, ok: false, ms: Date.now() - started });
    fail(step, e && e.message ? e.message.split("\n")[0] : String(e));
  }
}

function expect(cond, why) {
  if (!cond) throw new Error(why);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
}

async function axe(page, name) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  report.accessibility[name] = result;
  const serious = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (serious.length) {
    fail(`accessibility of ${name}`, serious.map((v) => `${v.id} (${v.impact}, ${v.nodes} node(s)): ${v.help}`).join("; "));
  }
}

async function noSideScroll(page, name) {
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(over <= 1, `${name} scrolls sideways by ${over}px`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 500) errors.push(`${r.status()} ${r.url()}`);
  });

  let incidentUrl = null;
  await check("overview", async () => {
    await page.goto(`${base}/`);
    expect((await page.locator("h1").textContent()).includes("Overview"), "no Overview heading");
    expect(await page.locator("#h-kpis").count() === 1, "no KPI section");
    expect(await page.locator("svg.spark").count() >= 1, "no sparkline");
    expect(await page.locator("#h-jobs ~ .scroll table, #h-jobs + .scroll table").count() >= 1, "no job grid");
    await shot(page, "overview");
    // Keyboard: the first Tab reaches the skip link.
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    expect(focused === "Skip to content", `first Tab focuses ${JSON.stringify(focused)}`);
    await axe(page, "overview");
  });

  await check("click from the overview into an incident with a pending action", async () => {
    await page.goto(`${base}/`);
    const links = await page.locator('section[aria-labelledby="h-incidents"] table a').evaluateAll(
      (as) => as.map((a) => a.getAttribute("href")),
    );
    expect(links.length > 0, "the overview lists no open incident");
    // Look for the one that waits for an approval, then reach it by clicking.
    for (const href of links) {
      const r = await page.request.get(`${base}${href}`);
      if ((await r.text()).includes('value="approve"')) {
        incidentUrl = href;
        break;
      }
    }
    expect(incidentUrl, `none of ${links.length} open incidents has an action waiting for approval`);
    await page.goto(`${base}/`);
    await page.locator(`a[href="${incidentUrl}"]`).first().click();
    await page.waitForURL(`**${incidentUrl}`);
    expect(await page.locator("svg.graph .node").count() >= 2, "no lineage subgraph on the incident page");
    expect(await page.locator("svg.graph .node.root").count() >= 1, "the root cause is not marked");
    expect(await page.locator("#h-evidence").count() === 1, "no evidence");
    expect(await page.locator("ol.timeline li").count() >= 1, "empty timeline");
    await shot(page, "incident");
    await axe(page, "incident");
  });

  await check("approve a pending action", async () => {
    expect(incidentUrl, "no incident to act on");
    await page.goto(`${base}${incidentUrl}`);
    const row = page.locator("tr", { has: page.locator('button[value="approve"]') }).first();
    const action = await row.getAttribute("data-action");
    await row.locator('input[name="note"]').fill("approved by the e2e test");
    await row.locator('button[value="approve"]').click();
    await page.waitForLoadState("load");
    const state = await page.locator(`tr[data-action="${action}"] .badge`).first().textContent();
    expect(state !== "pending_approval", `${action} is still ${state}`);
    const timeline = await page.locator("ol.timeline").textContent();
    expect(timeline.includes("approved"), "the approval is not in the timeline");
  });

  await check("give feedback", async () => {
    await page.goto(`${base}${incidentUrl}`);
    await page.selectOption("#fb-class", "DUPLICATE_EVENTS");
    await page.selectOption("#fb-worked", "true");
    await page.fill("#fb-note", "feedback from the e2e test");
    await page.click('#h-feedback ~ form button[type="submit"], section[aria-labelledby="h-feedback"] button[type="submit"]');
    await page.waitForLoadState("load");
    const text = await page.locator('section[aria-labelledby="h-feedback"]').textContent();
    expect(text.includes("class DUPLICATE_EVENTS"), "the feedback is not shown");
    expect(text.includes("feedback from the e2e test"), "the note is not shown");
  });

  await check("incident list filters", async () => {
    await page.goto(`${base}/incidents`);
    await page.selectOption("#f-state", "resolved");
    await page.click('form[aria-label="Filter incidents"] button');
    await page.waitForLoadState("load");
    expect(page.url().includes("state=resolved"), "the filter was not applied");
    const states = await page.locator("tbody td:nth-child(3)").allTextContents();
    expect(states.every((s) => s.trim() === "resolved"), `other states listed: ${states}`);
    await shot(page, "incidents");
    await axe(page, "incidents");
  });

  await check("search the lineage graph", async () => {
    await page.goto(`${base}/lineage`);
    expect(await page.locator("svg.graph .node").count() >= 5, "the whole (small) graph is not drawn");
    await shot(page, "lineage");
    await page.fill("#lq", "daily_revenue");
    await page.click('form[role="search"] button');
    await page.waitForLoadState("load");
    const match = page.locator("ul.matches a").first();
    if (await match.count()) await match.click();
    await page.waitForLoadState("load");
    expect(await page.locator("svg.graph .node.focus").count() === 1, "no focused node");
    const heading = await page.locator("#h-node").textContent();
    expect(heading.includes("daily_revenue"), `details of ${heading}`);
    expect(await page.locator('section[aria-labelledby="h-node"] table').count() >= 1, "no node details");
    // Upstream only, then follow a node by keyboard-reachable link.
    await page.selectOption("#ldir", "up");
    await page.click('form[role="search"] button');
    await page.waitForLoadState("load");
    expect(page.url().includes("dir=up"), "direction not applied");
    await shot(page, "lineage-focus");
    await axe(page, "lineage");
  });

  await check("check history", async () => {
    await page.goto(`${base}/checks`);
    // A volume check has a band to draw; any check will do when there is none.
    const volume = page.locator("tbody tr", { has: page.locator("td:nth-child(2)", { hasText: /^volume$/ }) }).locator("a");
    const first = (await volume.count()) ? volume.first() : page.locator("tbody a").first();
    expect(await first.count() === 1, "no check listed");
    await first.click();
    await page.waitForLoadState("load");
    expect(await page.locator("svg.chart").count() === 1, "no history chart");
    await shot(page, "check");
    await axe(page, "check");
  });

  await check("jobs", async () => {
    await page.goto(`${base}/jobs`);
    expect(await page.locator(".cell").count() >= 1, "no run cells");
    expect(await page.locator('button:has-text("Backfill")').count() >= 1, "no backfill button for an operator");
    await shot(page, "jobs");
    await axe(page, "jobs");
  });

  await check("quarantine", async () => {
    await page.goto(`${base}/quarantine`);
    expect((await page.locator("h1").textContent()).includes("Quarantine"), "no heading");
    await shot(page, "quarantine");
    await axe(page, "quarantine");
  });

  await check("phone width", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const p = await phone.newPage();
    await p.goto(`${base}/`);
    await noSideScroll(p, "overview on a phone");
    await shot(p, "overview-phone");
    if (incidentUrl) {
      await p.goto(`${base}${incidentUrl}`);
      await noSideScroll(p, "incident on a phone");
      await shot(p, "incident-phone");
    }
    await phone.close();
  });

  if (errors.length) fail("browser", errors.slice(0, 5).join("; "));
} finally {
  await browser.close();
}

console.log(JSON.stringify(report, null, 2));
process.exit(report.failures.length ? 1 : 0);
