// The Integrations page. Every path is relative, so the page works under any Airflow base_url.
// Data comes from this plugin's read-only JSON endpoints; "Run now" calls Airflow's own REST API
// with the logged-in user's session, so Airflow decides whether the user may trigger the DAG.
"use strict";

const view = document.getElementById("view");
const AIRFLOW = "../";  // the Airflow UI and API, one level above this app's mount point
const POLL_MS = 3000;
let pollTimer = null;

// Builds DOM nodes; text always goes in as text, never as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function request(url, options) {
  const response = await fetch(url, { credentials: "same-origin", ...options,
    headers: { "Accept": "application/json", ...(options && options.headers) } });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : text;
    throw new HttpError(response.status, detail || response.statusText);
  }
  return body;
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function stateBadge(state) {
  return el("span", { class: `badge state-${state || "none"}`, "data-testid": "run-state" }, state || "no state");
}

function endpointText(endpoint) {
  if (!endpoint) return "—";
  if (endpoint.problem) return `${endpoint.connection_id}: ${endpoint.problem}`;
  return `${endpoint.host} (connection ${endpoint.connection_id})`;
}

function countsText(run) {
  if (run && run.summary_hidden) return "counts hidden: you may not read this DAG's XComs";
  if (run && run.skipped_reason) return run.skipped_reason;
  if (!run || !run.counts) return run && ["running", "queued"].includes(run.state) ? "in progress…" : "no summary";
  const unchanged = run.skipped_unchanged ? ` · ${run.skipped_unchanged} not sent: unchanged since Oomnitza confirmed them (${run.delta})` : "";
  const gone = (run.flagged_as_missing ? ` · ${run.flagged_as_missing} ${run.dry_run ? "would be " : ""}flagged gone from Kandji` : "") +
    (run.back_in_kandji ? ` · ${run.back_in_kandji} back in Kandji` : "");
  if (run.dry_run) return `dry run · would send ${run.would_send ?? 0} of ${run.kandji_records ?? 0} Kandji records${unchanged}${gone}`;
  const c = run.counts;
  return `${c.added} added · ${c.updated} updated · ${c.unchanged} unchanged in Oomnitza · ${c.skipped} skipped · ` +
    `${c.failed} failed in Oomnitza · ${run.not_loaded ?? 0} not loaded${unchanged}${gone}`;
}

function settingsList(item) {
  const rows = [
    ["Type", item.type],
    ["Kandji", endpointText(item.kandji)],
    ["Oomnitza", endpointText(item.oomnitza)],
    ["Preference", item.preference],
    item.type === "assets" ? ["Software", item.software] : ["User selection", item.user_selection],
    ["Sync key", (item.sync_key || []).join(", ")],
    ["Gone from Kandji", item.when_missing],
    ["Delta loads", item.delta],
    ["Schedule", item.schedule ? `${item.schedule.description} (${item.schedule.timezone})` : "—"],
    ["Next run", item.schedule && item.schedule.next_run ? when(item.schedule.next_run) : "—"],
    ["Paused", item.schedule && item.schedule.paused !== null ? (item.schedule.paused ? "yes" : "no") : "no DAG in Airflow"],
  ];
  return el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v ?? "—")]));
}

function showProblem(error) {
  stopPolling();
  let text = error.message;
  if (error.status === 401) text = "Log in to Airflow to see the integrations.";
  view.replaceChildren(el("div", { class: "message bad", "data-testid": "page-error" }, text),
    error.status === 401 ? el("p", {}, el("a", { href: AIRFLOW, target: "_top" }, "Open Airflow")) : null);
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

// -- the tiles ---------------------------------------------------------------------------------------
async function showTiles() {
  stopPolling();
  const tiles = await request("api/integrations");
  if (!tiles.length) {
    view.replaceChildren(el("p", { class: "muted" }, "No integration files in the integrations folder."));
    return;
  }
  view.replaceChildren(el("div", { class: "tiles" }, tiles.map(renderTile)));
  const workflows = await request("api/workflows");
  if (workflows.length) {
    view.append(el("h2", { class: "section" }, "Workflows"),
      el("p", { class: "muted" }, "Each is a file in include/workflows/: an Oomnitza change runs a Kandji preset."),
      el("div", { class: "tiles" }, workflows.map(renderWorkflow)));
  }
}

function pairs(values) {
  const entries = Object.entries(values || {});
  return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join(" · ") : "none";
}

function pollText(item) {
  const poll = item.last_poll;
  if (!item.enabled) return "not polled (disabled)";
  if (item.last_poll_hidden) return "hidden: you may not read assets in Airflow";
  if (!poll) return "not yet (the triggerer starts the watcher)";
  if (!poll.ok) return `${when(poll.at)}: failed: ${poll.error}`;
  return `${when(poll.at)}: ${poll.matching} matching, ${poll.started ? `${poll.started} new (a run started)` : "none new (a record starts one run per entry into the condition)"}` + (poll.warnings && poll.warnings.length ? ` (${poll.warnings.join("; ")})` : "");
}

function renderWorkflow(item) {
  if (!item.valid) {
    return el("article", { class: "tile invalid", "data-testid": "workflow", "data-id": item.id },
      el("h2", {}, item.file), el("span", { class: "badge invalid-badge" }, "invalid file"),
      el("pre", { class: "error" }, item.error));
  }
  const rows = [
    ["Trigger", item.trigger], ["Action", item.action], ["Inputs", pairs(item.inputs)],
    ["Approval", item.approval], ["Write-back", pairs(item.write_back)],
    ["Last poll", pollText(item)],
  ];
  const waiting = item.approvals_waiting.map(a => el("li", { "data-testid": "approval-waiting" },
    el("a", { href: AIRFLOW + a.airflow_url, target: "_top" }, a.subject), ` waiting since ${when(a.since)}`,
    a.approvers.length ? ` (for ${a.approvers.join(", ")})` : ""));
  const runs = item.runs.map(r => el("li", {}, stateBadge(r.state), " ",
    el("a", { href: AIRFLOW + r.airflow_url, target: "_top" }, when(r.started_at)), " ",
    r.outcomes === null ? "" : (r.outcomes.length ? r.outcomes.join("; ") : "no record")));
  return el("article", { class: "tile", "data-testid": "workflow", "data-id": item.id },
    el("h2", {}, item.name),
    el("span", { class: "badge" }, item.enabled ? "enabled" : "disabled: Oomnitza not polled"),
    item.paused ? el("span", { class: "badge" }, "paused") : null,
    item.in_airflow ? null : el("span", { class: "badge" }, "not loaded by Airflow"),
    el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")])),
    item.approvals_hidden
      ? [el("h3", {}, "Approvals waiting"), el("p", { class: "muted" }, "hidden: you may not read this DAG's required actions in Airflow")]
      : [el("h3", {}, `Approvals waiting (${waiting.length})`), waiting.length ? el("ul", {}, waiting) : null],
    el("h3", {}, "Last runs"), runs.length ? el("ul", {}, runs) : el("p", { class: "muted" }, "none yet"));
}

function renderTile(item) {
  if (!item.valid) {
    return el("article", { class: "tile invalid", "data-testid": "tile", "data-id": item.id },
      el("h2", {}, item.file), el("span", { class: "badge invalid-badge" }, "invalid file"),
      el("pre", { class: "error", "data-testid": "tile-error" }, item.error));
  }
  const last = item.last_run;
  return el("a", { class: "tile", href: `#/${encodeURIComponent(item.id)}`, "data-testid": "tile", "data-id": item.id },
    el("h2", {}, item.name),
    el("span", { class: "badge" }, item.type),
    item.schedule && item.schedule.paused ? el("span", { class: "badge" }, "paused") : null,
    item.in_airflow ? null : el("span", { class: "badge", "data-testid": "not-in-airflow",
      title: "The file is valid, but Airflow has no DAG for it: it may not have parsed it yet, or see Airflow's import errors" },
      "not loaded by Airflow"),
    settingsList(item),
    el("p", { class: "muted" }, "Last run: ", last ? [stateBadge(last.state), " ", when(last.started_at || last.queued_at), " · ", countsText(last)] : "none yet"),
    safeguardNote(last));
}

// A safeguard that stopped the flagging of records gone from Kandji, or who confirmed it under Required Actions.
function safeguardNote(run) {
  if (run && run.safeguard) return el("p", { class: "warning", "data-testid": "safeguard" }, "Safeguard: ", run.safeguard);
  if (run && run.safeguard_confirmed_by) return el("p", { class: "muted", "data-testid": "safeguard" }, `A safeguard stopped the flagging; ${run.safeguard_confirmed_by} confirmed it`);
  return null;
}

// -- one integration ---------------------------------------------------------------------------------
async function showDetail(id) {
  stopPolling();
  const item = await request(`api/integrations/${encodeURIComponent(id)}`);
  if (!item.valid) {
    view.replaceChildren(el("p", {}, el("a", { href: "#/" }, "← All integrations")), renderTile(item));
    return;
  }
  const dryRun = el("input", { type: "checkbox", id: "dry-run", checked: true, "data-testid": "dry-run" });
  const runButton = el("button", { class: "primary", "data-testid": "run-now", disabled: !item.can_trigger,
    title: item.can_trigger ? null : "You may not trigger this DAG (or Airflow has not parsed it yet)",
    onclick: () => runNow(item, dryRun.checked, runButton) }, "Run now");
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← All integrations")),
    el("h2", { "data-testid": "detail-name" }, item.name),
    item.description ? el("p", { class: "muted" }, item.description) : null,
    settingsList(item),
    el("div", { class: "actions" }, runButton,
      el("label", { for: "dry-run" }, dryRun, " Dry run (extract and transform, send nothing to Oomnitza)"),
      el("a", { href: `${AIRFLOW}dags/${encodeURIComponent(item.id)}`, target: "_top" }, "Open the DAG in Airflow")),
    el("div", { id: "run-message" }),
    el("section", {}, el("h3", {}, "Last runs"), el("div", { id: "runs" }, runsTable(item))),
    el("section", {}, el("h3", {}, "Mappings"), mappingTable(item)),
    el("section", { id: "error-log" }));
  schedulePoll(item);
}

function mappingTable(item) {
  return el("table", { "data-testid": "mapping-table" },
    el("thead", {}, el("tr", {}, ["Oomnitza field", "", "Kandji source", "Kandji field path", "Converter", "When empty", "Sync key"].map(h => el("th", {}, h)))),
    el("tbody", {}, item.mappings.map(m => el("tr", { "data-field": m.oomnitza_field },
      el("td", { class: m.sync_key ? "key" : null }, m.oomnitza_field),
      el("td", {}, "←"),
      el("td", {}, m.source_kind === "standard" ? m.source : `${m.source_kind}: ${m.source}`),
      el("td", {}, m.kandji_paths.join(", ") || "—"),
      el("td", {}, m.converter || "—"),
      el("td", {}, m.when_empty),
      el("td", {}, m.sync_key ? "sync key" : "")))));
}

function runsTable(item) {
  if (!item.runs.length) return el("p", { class: "muted" }, "No runs yet.");
  // Skipped (by the preference) and failed stay apart: "Not loaded" counts failures only.
  const headings = ["Run", "State", "Started", "Dry run", "Mode", "Kandji records", "Sent (dry run: would send)", "Added", "Updated", "Unchanged in Oomnitza", "Unchanged, not sent (delta)", "Skipped", "Failed in Oomnitza", "Not loaded (failures)", "Flagged gone (dry run: would flag)", "Back in Kandji", ""];
  return el("table", { "data-testid": "runs-table" },
    el("thead", {}, el("tr", {}, headings.map(h => el("th", {}, h)))),
    el("tbody", {}, item.runs.map(run => {
      const c = run.counts || {};
      const num = v => el("td", { class: "num" }, v ?? "—");
      const first = [
        el("td", {}, el("a", { href: AIRFLOW + run.airflow_url, target: "_top" }, run.run_id)),
        el("td", {}, run.skipped_reason ? el("span", { class: "badge" }, "skipped") : stateBadge(run.state)),
        el("td", {}, when(run.started_at || run.queued_at)),
        el("td", {}, run.dry_run ? "yes" : "no")];
      if (run.skipped_reason) {  // the run did nothing on purpose: say why instead of a row of dashes
        return el("tr", { "data-run-id": run.run_id }, first,
          el("td", { colspan: headings.length - first.length, "data-testid": "skipped-reason" }, run.skipped_reason));
      }
      return el("tr", { "data-run-id": run.run_id }, first,
        el("td", { "data-testid": "run-mode" }, modeText(run)),
        num(run.kandji_records), num(run.dry_run ? run.would_send : run.records_sent), num(c.added), num(c.updated), num(c.unchanged),
        num(run.skipped_unchanged), num(c.skipped), num(c.failed),
        num(run.not_loaded),
        run.safeguard
          ? el("td", { class: "num warning", title: run.safeguard, "data-testid": "safeguard-cell" }, "stopped by the safeguard")
          : el("td", { class: "num", title: run.when_missing || "" }, run.flagged_as_missing ?? "—"),
        num(run.back_in_kandji),
        el("td", {},
          run.preview ? el("button", { class: "link", "data-testid": "show-preview", onclick: () => showPreview(run) }, "Preview") : null,
          run.preview && run.has_error_log ? " · " : null,
          run.has_error_log
            ? el("button", { class: "link", "data-testid": "show-error-log", onclick: () => showErrorLog(item.id, run.run_id) }, "Error log")
            : null));
    })));
}

// "delta" or "full: <why>" (delta loads on), "full" (off), "—" (the load did not run).
function modeText(run) {
  if (!run.delta || run.delta === "did not run") return "—";
  return run.delta === "off" ? "full" : run.delta;
}

// A dry run's first records as they would be sent, what would be refused, and where every payload is.
function showPreview(run) {
  const target = document.getElementById("error-log");
  const fields = [...new Set(run.preview.flatMap(record => Object.keys(record)))];
  const rejected = run.rejected_before_load || 0;
  target.replaceChildren(
    el("h3", {}, `Dry run ${run.run_id}: what would be sent`),
    el("p", { class: "muted" }, `${run.would_send ?? 0} of ${run.kandji_records ?? 0} Kandji records would be sent; the first ${run.preview.length}:`),
    el("table", { "data-testid": "preview-table" },
      el("thead", {}, el("tr", {}, fields.map(f => el("th", {}, f)))),
      el("tbody", {}, run.preview.map(record => el("tr", {}, fields.map(f => el("td", {}, record[f] ?? "")))))),
    el("p", { "data-testid": "preview-rejected" }, rejected
      ? `${rejected} record(s) would be refused before loading: the Error log lists each with why.`
      : "No record would be refused before loading."),
    run.dry_run_payloads ? el("p", { class: "muted" }, "Every payload that would have been sent: ", el("code", {}, run.dry_run_payloads)) : null);
}

async function showErrorLog(id, runId) {
  const target = document.getElementById("error-log");
  target.replaceChildren(el("h3", {}, `Error log of ${runId}`), el("p", { class: "muted" }, "Loading…"));
  try {
    const log = await request(`api/integrations/${encodeURIComponent(id)}/runs/${encodeURIComponent(runId)}/errors`);
    const columns = log.rows.length ? Object.keys(log.rows[0]) : [];
    target.replaceChildren(el("h3", {}, `Error log of ${runId}`),
      el("p", { class: "muted" }, `${log.total_rows} record(s) listed: each not loaded (or flagged gone from Kandji), with its stage and reason. File: ${log.location}`,
        log.truncated ? ` (first ${log.rows.length} shown)` : ""),
      log.rows.length ? el("table", { "data-testid": "error-log-table" },
        el("thead", {}, el("tr", {}, columns.map(c => el("th", {}, c)))),
        el("tbody", {}, log.rows.map(row => el("tr", {}, columns.map(c => el("td", {}, row[c])))))) : null);
    target.scrollIntoView({ behavior: "smooth" });
  } catch (error) {
    target.replaceChildren(el("div", { class: "message bad" }, error.message));
  }
}

let followed = null;  // the run "Run now" started: its banner follows it to its end

function showFollowed(run) {
  const message = document.getElementById("run-message");
  if (!message || !followed) return;
  const state = run ? run.state : "queued";
  const finished = ["success", "failed"].includes(state);
  const outcome = finished && run.has_summary ? ` · ${countsText(run)}` : "";
  const dry = followed.dryRun ? " (dry run: nothing is sent to Oomnitza)" : "";
  const paused = followed.paused && !finished
    ? ` ${followed.name} is paused: Airflow starts none of its runs, this one included, until you unpause it (unpausing starts no scheduled run at once; the first comes at its next scheduled time).`
    : "";
  message.replaceChildren(el("div", { class: `message ${state === "failed" ? "bad" : "good"}`, "data-testid": "run-message",
    "data-state": state }, `Run ${followed.runId} ${state}${dry}${outcome}.${paused}`));
  if (finished && run.preview && !followed.previewShown) {  // a finished dry run: show what it would send
    followed.previewShown = true;
    showPreview(run);
  }
}

async function runNow(item, dryRun, button) {
  const message = document.getElementById("run-message");
  button.disabled = true;
  try {
    const run = await request(`${AIRFLOW}api/v2/dags/${encodeURIComponent(item.id)}/dagRuns`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ logical_date: null, conf: { dry_run: dryRun } }) });
    followed = { runId: run.dag_run_id, dryRun, name: item.name, paused: Boolean(item.schedule && item.schedule.paused) };
    showFollowed(null);
    await refreshRuns(item.id);
  } catch (error) {
    const text = error.status === 403 ? "Airflow refused: you may not trigger this DAG." : `Airflow refused the run: ${error.message}`;
    message.replaceChildren(el("div", { class: "message bad", "data-testid": "run-message" }, text));
  } finally {
    button.disabled = !item.can_trigger;
  }
}

async function refreshRuns(id) {
  const item = await request(`api/integrations/${encodeURIComponent(id)}`);
  const runs = document.getElementById("runs");
  if (runs) runs.replaceChildren(runsTable(item));
  if (followed) showFollowed(item.runs.find(r => r.run_id === followed.runId));
  schedulePoll(item);
}

function schedulePoll(item) {
  stopPolling();
  // A run just finished publishes its summary a moment later; one that never will (skipped) stops this.
  const recent = r => r.ended_at && Date.now() - Date.parse(r.ended_at) < 60000;
  const settling = r => ["success", "failed"].includes(r.state) && !r.has_summary && !r.summary_hidden && recent(r);
  const active = item.runs.some(r => ["queued", "running"].includes(r.state) || settling(r));
  if (active) pollTimer = setTimeout(() => refreshRuns(item.id).catch(showProblem), POLL_MS);
}

// -- routing -----------------------------------------------------------------------------------------
function route() {
  const id = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  (id ? showDetail(id) : showTiles()).catch(showProblem);
}
window.addEventListener("hashchange", route);
route();
