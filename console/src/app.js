// Tollgate console: a small hash-routed page over the JSON endpoints of /console/api/. Every text from
// the service is put in the page with textContent, never as HTML.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./app.css";

const api = "/console/api";
let session = null;

// h builds an element: h("a", {href: "#"}, "text", child, ...). Attributes starting with "on" are
// listeners; null and false children are skipped.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(path, opts = {}) {
  const init = { credentials: "same-origin", headers: {}, ...opts };
  if (init.method === "POST") init.headers["X-CSRF-Token"] = session ? session.csrf_token : "";
  const resp = await fetch(path.startsWith("/console/") ? path : api + path, init);
  if (resp.status === 401) {
    location.assign("/console/login");
    throw new APIError(401, "not signed in");
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new APIError(resp.status, body.error || resp.statusText);
  return body;
}

const num = (v) => Number(v || 0);
const fmt = (n) => num(n).toLocaleString("en-US");
const pct = (r) => (num(r) * 100).toFixed(1) + " %";
const effectName = (e) => (e || "EFFECT_UNSPECIFIED").replace(/^EFFECT_/, "");
const when = (ts) => (ts ? new Date(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");

function hex(b64) {
  if (!b64) return "";
  const bin = atob(b64);
  let out = "";
  for (let i = 0; i < bin.length; i++) out += bin.charCodeAt(i).toString(16).padStart(2, "0");
  return out;
}

// duration renders a protojson Duration ("93.5s") readably.
function duration(d) {
  if (!d) return "–";
  let s = parseFloat(d);
  if (s < 1) return (s * 1000).toFixed(1) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function effectBadge(e) {
  const name = effectName(e);
  return h("span", { class: "effect effect-" + name.toLowerCase() }, name);
}

function table(caption, headers, rows, empty = "None.") {
  if (!rows.length) return h("div", {}, h("h3", {}, caption), h("p", { class: "muted" }, empty));
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
  );
}

function decisionLink(id) {
  return h("a", { href: "#/decision/" + encodeURIComponent(id) }, id);
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

const main = () => document.getElementById("main");

function show(title, ...content) {
  document.title = title + " · Tollgate console";
  const m = main();
  m.replaceChildren(h("h1", {}, title), ...content);
  for (const a of document.querySelectorAll("nav a")) {
    const href = a.getAttribute("href");
    const here = location.hash.startsWith(href) || (href === "#/overview" && location.hash === "") ||
      (href === "#/decisions" && location.hash.startsWith("#/decision/"));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// ---------- overview ----------

const ranges = { "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3, "30d": 30 * 24 * 3600e3 };

function bucketsOf(from, to, step) {
  const out = [];
  for (let t = from; t < to; t += step) out.push(t);
  return out;
}

// lineChart draws series over the buckets, as steps (each count holds for its whole bucket), with a
// dashed vertical marker at each policy change. range is [from, to) in milliseconds.
function lineChart(title, range, buckets, series, changes) {
  const markers = changes.map((c) => Date.parse(c.activated_at) / 1000);
  const box = h("figure", { class: "chart" }, h("figcaption", {}, title,
    markers.length ? h("span", { class: "muted small" }, " · dashed: policy revisions activated (listed below)") : null));
  const [from, to] = range.map((t) => t / 1000);
  const steps = uPlot.paths.stepped({ align: 1 });
  const opts = {
    height: 220,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.color + "22", paths: steps, points: { show: false } }))],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true, range: () => [from, to] } },
    plugins: [
      {
        hooks: {
          draw: (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = "#7a3db8";
            ctx.setLineDash([5, 4]);
            ctx.lineWidth = 2 * devicePixelRatio;
            for (const m of markers) {
              const x = u.valToPos(m, "x", true);
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
            ctx.restore();
          },
        },
      },
    ],
  };
  // The last bucket's step runs to the end of the range: its count repeats at `to`.
  const xs = [...buckets.map((b) => b / 1000), to];
  const data = [xs, ...series.map((s) => [...s.values, s.values[s.values.length - 1] ?? 0])];
  // uPlot needs its width: it is drawn once the figure is in the page and has one.
  queueMicrotask(() => new uPlot({ ...opts, width: Math.max(300, box.clientWidth - 16) }, data, box));
  return box;
}

function stat(id, label, value, note) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", { id: "stat-" + id }, value), note ? h("dd", { class: "muted small" }, note) : null);
}

async function overview(params) {
  const range = ranges[params.get("range")] ? params.get("range") : "7d";
  const asked = params.get("granularity");
  const gran = asked === "hour" || asked === "day" ? asked : range === "30d" ? "day" : "hour";
  const step = gran === "day" ? 86400e3 : 3600e3;
  const to = Math.ceil((Date.now() + 1) / 3600e3) * 3600e3;
  const from = Math.floor((to - ranges[range]) / step) * step;

  const form = h(
    "form",
    { class: "controls", onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      location.hash = "#/overview?" + new URLSearchParams(f).toString();
    } },
    h("label", { for: "range" }, "Range"),
    h("select", { id: "range", name: "range" }, Object.keys(ranges).map((r) => h("option", { value: r, selected: r === range }, "last " + r))),
    h("label", { for: "granularity" }, "Buckets"),
    h("select", { id: "granularity", name: "granularity" }, ["hour", "day"].map((g) => h("option", { value: g, selected: g === gran }, "per " + g))),
    h("button", { type: "submit" }, "Show"),
  );
  show("Overview", form, h("p", {}, "Loading figures…"));

  const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), granularity: gran });
  let o;
  try {
    o = await call("/overview?" + q);
  } catch (err) {
    show("Overview", form, errorBox(err));
    return;
  }
  if (!o.available) {
    show("Overview", form, h("p", { class: "notice", id: "insights-unavailable" }, o.reason));
    return;
  }
  const buckets = bucketsOf(from, to, step);
  const index = new Map(buckets.map((b, i) => [b, i]));
  const zeros = () => buckets.map(() => 0);
  const add = (arr, ts, v) => {
    const i = index.get(Date.parse(ts));
    if (i !== undefined) arr[i] += num(v);
  };

  const allow = zeros(), deny = zeros(), approval = zeros();
  let tAllow = 0, tDeny = 0, tApproval = 0;
  for (const p of o.volume.points || []) {
    const c = p.counts || {};
    add(allow, p.bucket, c.allow);
    add(deny, p.bucket, c.deny);
    add(approval, p.bucket, c.require_approval);
    tAllow += num(c.allow);
    tDeny += num(c.deny);
    tApproval += num(c.require_approval);
  }
  const total = tAllow + tDeny + tApproval;
  const exDeny = zeros(), exApproval = zeros();
  for (const p of o.exceptions.points || []) {
    add(exDeny, p.bucket, p.deny);
    add(exApproval, p.bucket, p.require_approval);
  }
  const replays = zeros(), conflicts = zeros();
  for (const p of o.retries.points || []) {
    add(replays, p.bucket, p.replays);
    add(conflicts, p.bucket, p.conflicts);
  }
  const changes = o.policy_changes.changes || [];
  const rates = o.approvals.rates || [];
  const decided = rates.reduce((s, r) => s + num(r.decisions), 0);
  const needed = rates.reduce((s, r) => s + num(r.require_approval), 0);

  show(
    "Overview",
    form,
    h("p", { class: "muted" }, `From ${when(new Date(from).toISOString())} to ${when(new Date(to).toISOString())}, per ${gran}.`),
    h(
      "dl",
      { class: "stats", "aria-label": "Totals in the range" },
      stat("total", "Decisions", fmt(total)),
      stat("allow", "Allow", fmt(tAllow)),
      stat("deny", "Deny", fmt(tDeny)),
      stat("require_approval", "Require approval", fmt(tApproval)),
      stat("approval_rate", "Approval rate", decided ? pct(needed / decided) : "–", "share needing a human approval"),
      stat("replays", "Retries", fmt(o.retries.replays), fmt(o.retries.conflicts) + " idempotency conflicts"),
      stat("sla", "SLA breaches", fmt(o.sla_breaches.total), o.sla_breaches.sla ? "open longer than " + duration(o.sla_breaches.sla) : null),
    ),
    h(
      "div",
      { class: "grid" },
      lineChart("Volume by effect", [from, to], buckets, [
        { label: "Allow", color: "#1f7a3a", values: allow },
        { label: "Deny", color: "#b3261e", values: deny },
        { label: "Require approval", color: "#b26a00", values: approval },
      ], changes),
      lineChart("Exceptions", [from, to], buckets, [
        { label: "Deny", color: "#b3261e", values: exDeny },
        { label: "Require approval", color: "#b26a00", values: exApproval },
      ], changes),
      lineChart("Retries", [from, to], buckets, [
        { label: "Idempotent replays", color: "#2456a6", values: replays },
        { label: "Conflicts", color: "#b3261e", values: conflicts },
      ], changes),
    ),
    h(
      "div",
      { class: "grid" },
      table("Top exception reasons", ["Reason code", "Count"], (o.exceptions.top_reasons || []).map((r) => [h("code", {}, r.code), fmt(r.count)])),
      table("Approval rate per action", ["Action", "Decisions", "Require approval", "Rate"], rates.map((r) => [r.action, fmt(r.decisions), fmt(r.require_approval), pct(r.rate)])),
      table("Approval delays", ["Action", "Approved by", "Site", "Approved", "Open", "p50", "p90"], (o.delays.delays || []).map((d) => [
        d.action, d.approval_action, d.site_id || "–", fmt(d.approved), fmt(d.open),
        num(d.approved) ? duration(d.p50 || "0s") : "–", num(d.approved) ? duration(d.p90 || "0s") : "–",
      ])),
      table("AI autonomy (EXECUTE requests)", ["Agent", "Use case", "Requests", "Allowed", "To a human", "Denied"], (o.autonomy.agents || []).map((a) => [
        a.agent_id, a.use_case, fmt(a.execute_requests), pct(a.allowed_share), pct(a.handed_to_human_share), pct(a.denied_share),
      ])),
      table("SLA breaches (oldest first)", ["Decision", "Action", "Resource", "Site", "Requested", "Open for"], (o.sla_breaches.breaches || []).map((b) => [
        decisionLink(b.decision_id), b.action, `${b.resource_type} ${b.resource_id}`, b.site_id || "–", when(b.requested_at), duration(b.open_for),
      ])),
      table("Policy revisions activated", ["Revision", "Activated"], changes.map((c) => [h("code", {}, c.revision), when(c.activated_at)])),
    ),
  );
}

// ---------- decision search ----------

const filters = [
  ["from", "From (your local time)", "datetime-local"],
  ["to", "To (your local time)", "datetime-local"],
  ["actor", "Actor id"],
  ["action", "Action", "text", "PO.SUBMIT"],
  ["resource_type", "Resource type", "text", "purchase_order"],
  ["resource_id", "Resource id"],
  ["reason", "Reason code"],
  ["bundle", "Bundle revision"],
  ["workflow", "Workflow id"],
];

async function decisions(params) {
  const form = h(
    "form",
    { class: "filters", id: "search", onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(e.target)) if (v) q.set(k, v);
      location.hash = "#/decisions?" + q;
    } },
    filters.map(([name, label, type = "text", placeholder]) => h("div", { class: "field" },
      h("label", { for: "f-" + name }, label),
      h("input", { id: "f-" + name, name, type, value: params.get(name) || "", placeholder }))),
    h("div", { class: "field" }, h("label", { for: "f-effect" }, "Effect"),
      h("select", { id: "f-effect", name: "effect" }, ["", "ALLOW", "DENY", "REQUIRE_APPROVAL"].map((e) =>
        h("option", { value: e, selected: (params.get("effect") || "") === e }, e || "any")))),
    h("div", { class: "field" }, h("label", { for: "f-limit" }, "Page size"),
      h("input", { id: "f-limit", name: "limit", type: "number", min: 1, max: 1000, value: params.get("limit") || "50" })),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Search")),
  );
  show("Decisions", form, h("p", {}, "Searching…"));

  const q = new URLSearchParams();
  for (const [k, v] of params) {
    if (!v) continue;
    q.set(k, k === "from" || k === "to" ? new Date(v).toISOString() : v);
  }
  let page;
  try {
    page = await call("/decisions?" + q);
  } catch (err) {
    show("Decisions", form, errorBox(err));
    return;
  }
  const recs = page.records || [];
  const tokens = (params.get("prev") || "").split(",").filter(Boolean);
  const nav = h("div", { class: "pager" });
  if (params.get("page_token")) {
    const back = new URLSearchParams(params);
    const prev = tokens.pop();
    if (prev && prev !== "first") back.set("page_token", prev);
    else back.delete("page_token");
    back.set("prev", tokens.join(","));
    nav.append(h("a", { href: "#/decisions?" + back, class: "button" }, "Previous page"));
  }
  if (page.next_page_token) {
    const next = new URLSearchParams(params);
    next.set("prev", [...(params.get("prev") || "").split(",").filter(Boolean), params.get("page_token") || "first"].join(","));
    next.set("page_token", page.next_page_token);
    nav.append(h("a", { href: "#/decisions?" + next, class: "button", id: "next-page" }, "Next page"));
  }
  show(
    "Decisions",
    form,
    table(`${recs.length} decision${recs.length === 1 ? "" : "s"} on this page, newest first`,
      ["Evaluated", "Decision", "Actor", "Action", "Resource", "Effect", "Reasons"],
      recs.map((r) => {
        const req = r.request || {};
        return [
          when(r.evaluated_at), decisionLink(r.decision_id), (req.actor || {}).id || "", req.action || "",
          `${(req.resource || {}).type || ""} ${(req.resource || {}).id || ""}`, effectBadge(r.effect),
          (r.reasons || []).map((x) => x.code).join(", "),
        ];
      }), "No decision matches."),
    nav,
  );
}

// ---------- decision page ----------

function factsTable(factsJSON) {
  let facts = [];
  try {
    facts = JSON.parse(factsJSON || "[]") || [];
  } catch {
    return h("p", { class: "error" }, "The recorded facts are not JSON.");
  }
  return table("Facts read", ["Built-in", "Arguments", "Answer"], facts.map((f) => [
    h("code", {}, f.builtin + (String(f.builtin).startsWith("tollgate.history") ? " (history)" : "")),
    h("pre", {}, JSON.stringify(f.args, null, 1)),
    h("pre", {}, JSON.stringify(f.result, null, 1)),
  ]), "This decision read no master data or history.");
}

async function decision(id) {
  show("Decision " + id, h("p", {}, "Loading…"));
  let d;
  try {
    d = await call("/decisions/" + encodeURIComponent(id));
  } catch (err) {
    show("Decision " + id, errorBox(err));
    return;
  }
  const r = d.record;
  const req = r.request || {};
  const result = h("div", { id: "replay-result", "aria-live": "polite" });
  const replay = h("button", { type: "button", id: "replay", onclick: async () => {
    replay.disabled = true;
    result.replaceChildren(h("p", {}, "Replaying…"));
    try {
      const rr = await call(`/decisions/${encodeURIComponent(id)}/replay`, { method: "POST" });
      result.replaceChildren(rr.identical
        ? h("p", { class: "ok", id: "replay-identical" }, "Identical: the replay gave the recorded effect, reasons and approvers.")
        : h("div", { class: "error", id: "replay-different" }, h("p", {}, "Different:"), h("ul", {}, (rr.differences || []).map((x) => h("li", {}, x)))));
    } catch (err) {
      result.replaceChildren(errorBox(err));
    } finally {
      replay.disabled = false;
    }
  } }, "Replay");
  const receipt = d.receipt
    ? h("div", {}, h("p", {}, `Covered by the signed checkpoint of tree size ${fmt((d.receipt.checkpoint || {}).tree_size)}.`),
      h("details", {}, h("summary", {}, "Receipt JSON"), h("pre", {}, d.receipt.receipt_json)))
    : h("p", { class: "muted" }, "No receipt: " + (d.receipt_note || "none"));
  show(
    "Decision " + id,
    h("p", { class: "lead" }, effectBadge(r.effect), " ", req.action || "", " on ", `${(req.resource || {}).type || ""} ${(req.resource || {}).id || ""}`,
      " by ", (req.actor || {}).id || ""),
    h("div", { class: "replay" }, replay, result),
    h("div", { class: "grid" },
      h("section", {}, h("h2", {}, "Record"), dl([
        ["Evaluated", when(r.evaluated_at)], ["Effect", effectName(r.effect)], ["Chain", h("span", { id: "chain-id" }, r.chain_id)],
        ["Sequence", h("span", { id: "chain-seq" }, r.seq)],
        ["Hash", h("code", {}, hex(r.hash))], ["Previous hash", h("code", {}, hex(r.prev_hash))],
        ["Bundle revision", h("code", {}, r.bundle_revision)], ["Master data revision", r.masterdata_revision || "0"],
        ["Caller", r.caller], ["Latency", duration(r.latency)], ["Idempotency key", r.idempotency_key || "–"],
      ])),
      h("section", {},
        table("Reasons", ["Code", "Message"], (r.reasons || []).map((x) => [h("code", {}, x.code), x.message])),
        h("h3", {}, "Approvers"),
        (r.approvers || []).length ? h("ul", { id: "approvers" }, r.approvers.map((a) => h("li", {}, a))) : h("p", { class: "muted" }, "None."),
        h("h3", {}, "Receipt"), receipt),
    ),
    h("section", {}, h("h2", {}, "Request"), h("pre", { class: "request" }, JSON.stringify(req, null, 2))),
    h("section", {}, factsTable(r.facts_json)),
  );
}

function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === undefined || v === "" ? "–" : v)]));
}

// ---------- chain verification ----------

async function verify(params) {
  const chain = params.get("chain") || "";
  const form = h("form", { class: "controls", onsubmit: (e) => {
    e.preventDefault();
    const c = new FormData(e.target).get("chain");
    location.hash = "#/verify?" + new URLSearchParams(c ? { chain: c, t: Date.now() } : { t: Date.now() });
  } },
  h("label", { for: "chain" }, "Chain id (empty: every chain)"),
  h("input", { id: "chain", name: "chain", value: chain }),
  h("button", { type: "submit" }, "Verify again"));
  show("Chain verification", form, h("p", {}, "Verifying the hash chain, Merkle tree and checkpoints…"));
  try {
    const v = await call("/verify?" + new URLSearchParams(chain ? { chain } : {}));
    show("Chain verification", form,
      v.ok ? h("p", { class: "ok big", id: "verify-status" }, "Verified: every record links and hashes as written.")
        : h("p", { class: "error big", id: "verify-status" }, "Broken: " + v.problem),
      dl([
        ["Chain", v.chain_id || "every chain"], ["Records checked", fmt(v.records_checked)], ["Checkpoints checked", fmt(v.checkpoints_checked)],
        ["Tree size", v.tree_size ? fmt(v.tree_size) : "–"], ["Root hash", h("code", {}, hex(v.root_hash) || "–")],
        ["First bad record", v.ok ? "–" : `seq ${v.first_bad_seq} (${v.first_bad_decision_id || "missing"})`],
      ]));
  } catch (err) {
    show("Chain verification", form, errorBox(err));
  }
}

// ---------- bundles and impact ----------

async function bundles() {
  show("Bundles", h("p", {}, "Loading…"));
  let st;
  try {
    st = await call("/bundles");
  } catch (err) {
    show("Bundles", errorBox(err));
    return;
  }
  const out = h("div", { id: "impact-result", "aria-live": "polite" });
  const form = h("form", { class: "stack", id: "impact", onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const file = fd.get("bundle");
    if (file && file.size > session.max_upload_bytes) {
      out.replaceChildren(errorBox(new Error(`The bundle is larger than the ${session.max_upload_bytes >> 20} MiB a candidate may have.`)));
      return;
    }
    out.replaceChildren(h("p", {}, "Analysing…"));
    try {
      out.replaceChildren(impactResult(await call("/impact", { method: "POST", body: fd })));
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  } },
  h("label", { for: "bundle" }, "Candidate bundle (.tar.gz)"),
  h("input", { id: "bundle", name: "bundle", type: "file", accept: ".tar.gz,.tgz,application/gzip", required: true }),
  h("label", { for: "last" }, "Newest decisions to re-evaluate"),
  h("input", { id: "last", name: "last", type: "number", min: 1, max: 100000, value: 1000 }),
  h("button", { type: "submit" }, "Analyse impact"));
  show(
    "Bundles",
    dl([["Active revision", h("code", { id: "active-revision" }, st.active_revision)], ["Activated", when(st.activated_at)]]),
    table("Bundle history, newest first", ["Revision", "Source", "Outcome", "Reason", "At"], (st.history || []).map((c) => [
      h("code", {}, c.revision), c.source, (c.outcome || "").replace(/^CANDIDATE_OUTCOME_/, ""), c.reason || "", when(c.at),
    ])),
    h("h2", {}, "Impact analysis"),
    h("p", {}, "Upload a candidate bundle to see which recorded decisions it would decide differently. Nothing is activated."),
    form,
    out,
  );
}

function impactResult(r) {
  return h("div", {},
    dl([["Candidate revision", h("code", {}, r.candidate_revision)], ["Decisions re-evaluated", fmt(r.total)],
      ["Would change", h("strong", { id: "impact-changed" }, fmt(r.changed))], ["Not comparable", fmt(r.not_comparable)]]),
    table("Effects before → after", ["Before", "After", "Decisions"], (r.matrix || []).map((m) => [effectBadge(m.from), effectBadge(m.to), fmt(m.count)])),
    table("Changed primary reason codes", ["Before", "After", "Decisions"], (r.changed_reason_codes || []).map((c) => [h("code", {}, c.from), h("code", {}, c.to), fmt(c.count)])),
    table("Decisions that would change", ["Decision", "Change"], (r.examples || []).map((x) => [decisionLink(x.decision_id), x.change]), "No decision would change."),
  );
}

// ---------- routing ----------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/overview";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/decision/")) return decision(decodeURIComponent(path.slice("/decision/".length)));
  switch (path) {
    case "/decisions": return decisions(params);
    case "/verify": return verify(params);
    case "/bundles": return bundles();
    default: return overview(params);
  }
}

async function start() {
  try {
    session = await call("/session");
  } catch (err) {
    main().replaceChildren(errorBox(err));
    return;
  }
  document.getElementById("caller").textContent = "Signed in as " + session.caller;
  document.getElementById("open-mode").hidden = !session.open;
  const out = document.getElementById("signout");
  out.hidden = session.open;
  out.addEventListener("click", async () => {
    await call("/console/logout", { method: "POST" }).catch(() => {});
    location.assign("/console/login");
  });
  window.addEventListener("hashchange", () => {
    route();
    main().focus({ preventScroll: true });
  });
  route();
}

start();
