// Drives the web console in Debian's Chromium, headless, as an auditor would; run by browser_test.go with
// the path of a JSON config naming the service, the tokens and what the pages must show. Any failed
// check throws, and the process exits non-zero.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const base = cfg.base;
const timeout = 15000;

// These flags are what works on this CI's machines: no sandbox as root, no GPU, and no background
// connections, which the closed network would refuse by the dozen.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

function step(name) {
  console.log(`- ${name}`);
}

// newPage opens a fresh browser context (its own cookies) at laptop size, failing on any page error.
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (err) => {
    console.error("page error:", err.message);
    process.exitCode = 1;
  });
  page.on("console", (m) => {
    if (m.type() === "error") console.error("console error:", m.text());
  });
  return page;
}

async function signIn(page, token) {
  await page.goto(base + "/console/login");
  await page.getByLabel("Bearer token").fill(token);
  // Keyboard only: Enter submits the form.
  await page.getByLabel("Bearer token").press("Enter");
  await page.waitForLoadState("domcontentloaded");
}

const text = async (page, selector) => (await page.locator(selector).textContent()).trim();

try {
  // ---- refused without a token, and with a token lacking the audit role
  {
    const page = await newPage();
    step("no session: the console sends the browser to sign in, and the API refuses");
    await page.goto(base + "/console/");
    assert.equal(new URL(page.url()).pathname, "/console/login");
    const api = await page.request.get(base + "/console/api/decisions");
    assert.equal(api.status(), 401);
    assert.ok(!(await api.text()).includes("decision_id"), "the API answered records without a session");

    step("a decide-only token is refused: no console");
    await signIn(page, cfg.decide_token);
    await page.locator("#refused").waitFor();
    await page.goto(base + "/console/");
    assert.equal(new URL(page.url()).pathname, "/console/login");

    step("an unknown token is refused");
    await signIn(page, "not-a-token");
    assert.match(await text(page, "#signin-error"), /not recognised/);
    await page.context().close();
  }

  const page = await newPage();
  step("sign in with the audit token");
  await signIn(page, cfg.audit_token);
  assert.equal(new URL(page.url()).pathname, "/console/");
  await page.locator("#caller").filter({ hasText: "auditor" }).waitFor();

  // ---- overview: the figures are the decisions the test made
  step("overview shows the decisions the test made");
  await page.goto(base + "/console/#/overview?range=24h&granularity=hour");
  const effects = cfg.effects;
  const total = Object.values(effects).reduce((a, b) => a + b, 0);
  const unavailable = page.locator("#insights-unavailable");
  const totalStat = page.locator("#stat-total");
  await Promise.race([unavailable.waitFor(), totalStat.waitFor()]);
  if (await unavailable.isVisible()) {
    throw new Error("the overview says: " + (await unavailable.textContent()));
  }
  // The roll-ups follow the commits; reload until they caught up, within the timeout.
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = {
      total: await text(page, "#stat-total"),
      ALLOW: await text(page, "#stat-allow"),
      DENY: await text(page, "#stat-deny"),
      REQUIRE_APPROVAL: await text(page, "#stat-require_approval"),
    };
    const want = { total: String(total), ALLOW: String(effects.ALLOW || 0), DENY: String(effects.DENY || 0),
      REQUIRE_APPROVAL: String(effects.REQUIRE_APPROVAL || 0) };
    if (JSON.stringify(got) === JSON.stringify(want)) break;
    if (Date.now() > deadline) assert.deepEqual(got, want, "overview totals");
    await page.waitForTimeout(500);
    await page.reload();
    await totalStat.waitFor();
  }
  assert.equal(await text(page, "#stat-replays"), String(cfg.replays), "idempotent retries");
  const approvalShare = ((effects.REQUIRE_APPROVAL || 0) / total * 100).toFixed(1) + " %";
  assert.equal(await text(page, "#stat-approval_rate"), approvalShare, "approval rate");
  await page.locator("figure.chart canvas").first().waitFor();
  await page.screenshot({ path: `${cfg.screenshots}/console-overview.png` });

  // ---- search by actor, reached with the keyboard
  step("keyboard: the skip link, then the navigation, take the focus in order");
  const focused = () => page.evaluate(() => document.activeElement.textContent.trim());
  await page.reload(); // a fresh document: the focus starts at its top
  await totalStat.waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "Skip to content");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "Overview");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "Decisions");
  await page.keyboard.press("Enter");
  await page.waitForURL(/#\/decisions$/);

  step("search the decisions of " + cfg.search_actor);
  await page.getByLabel("Actor id").fill(cfg.search_actor);
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/actor=/);
  const links = page.locator("table tbody td a");
  await links.first().waitFor();
  assert.deepEqual(await links.allTextContents(), cfg.search_ids, "search results, newest first");

  step("search by effect narrows the list");
  await page.getByLabel("Effect").selectOption("REQUIRE_APPROVAL");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/effect=REQUIRE_APPROVAL/);
  await page.locator("table tbody tr").first().waitFor();
  for (const badge of await page.locator("table tbody .effect").allTextContents()) {
    assert.equal(badge, "REQUIRE_APPROVAL");
  }

  // ---- a decision page and its replay
  const id = (await links.first().textContent()).trim();
  step("open decision " + id + " and replay it");
  await links.first().click();
  await page.locator("h1", { hasText: id }).waitFor();
  assert.equal(await text(page, "#chain-seq") !== "", true, "chain position shown");
  await page.getByRole("button", { name: "Replay" }).click();
  await page.locator("#replay-identical").waitFor();
  await page.screenshot({ path: `${cfg.screenshots}/console-decision.png` });

  // ---- chain verification and bundle history
  step("chain verification");
  await page.getByRole("link", { name: "Chain verification" }).click();
  await page.locator("#verify-status").waitFor();
  assert.match(await text(page, "#verify-status"), /^Verified/);

  step("bundle history");
  await page.getByRole("link", { name: "Bundles" }).click();
  await page.locator("#active-revision").waitFor();
  assert.match(await text(page, "#active-revision"), /@/);

  // ---- sign out
  step("sign out ends the session");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/login$/);
  assert.equal((await page.request.get(base + "/console/api/session")).status(), 401);
  console.log("ok: every check passed");
} finally {
  await browser.close();
}
